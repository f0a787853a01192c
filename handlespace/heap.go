package handlespace

// expiryHeap is an indexed 4-ary min-heap of PE records by deadline. Each
// record stores its heap position in rec.heap.
type expiryHeap []heapEnt

type heapEnt struct {
	exp int64
	idx int32
}

func (h *expiryHeap) push(ri int32, exp int64, s *Store) {
	*h = append(*h, heapEnt{exp: exp, idx: ri})
	h.up(len(*h)-1, s)
}

func (h *expiryHeap) update(pos int32, exp int64, s *Store) {
	old := (*h)[pos].exp
	(*h)[pos].exp = exp
	if exp < old {
		h.up(int(pos), s)
	} else {
		h.down(int(pos), s)
	}
}

func (h *expiryHeap) remove(pos int32, s *Store) {
	a := *h
	s.rec(a[pos].idx).heap = -1
	last := len(a) - 1
	if int(pos) != last {
		a[pos] = a[last]
		s.rec(a[pos].idx).heap = pos
	}
	*h = a[:last]
	if int(pos) != last {
		h.down(int(pos), s)
		h.up(int(pos), s)
	}
}

func (h expiryHeap) up(i int, s *Store) {
	e := h[i]
	for i > 0 {
		p := (i - 1) / 4
		if h[p].exp <= e.exp {
			break
		}
		h[i] = h[p]
		s.rec(h[i].idx).heap = int32(i)
		i = p
	}
	h[i] = e
	s.rec(e.idx).heap = int32(i)
}

func (h expiryHeap) down(i int, s *Store) {
	e := h[i]
	n := len(h)
	for {
		c := 4*i + 1
		if c >= n {
			break
		}
		m := c
		end := min(c+4, n)
		for j := c + 1; j < end; j++ {
			if h[j].exp < h[m].exp {
				m = j
			}
		}
		if h[m].exp >= e.exp {
			break
		}
		h[i] = h[m]
		s.rec(h[i].idx).heap = int32(i)
		i = m
	}
	h[i] = e
	s.rec(e.idx).heap = int32(i)
}
