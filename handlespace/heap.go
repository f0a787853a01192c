package handlespace

// expiryHeap is an indexed 4-ary min-heap of PE records by deadline. Each
// record stores its heap position in rec.heap. The deadlines and the
// records are kept in two parallel slices, 12 bytes an entry instead of
// the 16 of a padded {int64, int32} struct.
type expiryHeap struct {
	exp []int64 // deadline, UnixNano
	idx []int32 // record
}

func (h *expiryHeap) len() int { return len(h.idx) }

// set puts entry (exp, ri) at position i and tells its record.
func (h *expiryHeap) set(i int, exp int64, ri int32, s *Store) {
	h.exp[i], h.idx[i] = exp, ri
	s.rec(ri).heap = int32(i)
}

func (h *expiryHeap) push(ri int32, exp int64, s *Store) {
	h.exp = append(h.exp, exp)
	h.idx = append(h.idx, ri)
	h.up(len(h.idx)-1, s)
}

func (h *expiryHeap) update(pos int32, exp int64, s *Store) {
	old := h.exp[pos]
	h.exp[pos] = exp
	if exp < old {
		h.up(int(pos), s)
	} else {
		h.down(int(pos), s)
	}
}

func (h *expiryHeap) remove(pos int32, s *Store) {
	s.rec(h.idx[pos]).heap = -1
	last := len(h.idx) - 1
	if int(pos) != last {
		h.set(int(pos), h.exp[last], h.idx[last], s)
	}
	h.exp, h.idx = h.exp[:last], h.idx[:last]
	if int(pos) != last {
		h.down(int(pos), s)
		h.up(int(pos), s)
	}
}

func (h *expiryHeap) up(i int, s *Store) {
	exp, ri := h.exp[i], h.idx[i]
	for i > 0 {
		p := (i - 1) / 4
		if h.exp[p] <= exp {
			break
		}
		h.set(i, h.exp[p], h.idx[p], s)
		i = p
	}
	h.set(i, exp, ri, s)
}

func (h *expiryHeap) down(i int, s *Store) {
	exp, ri := h.exp[i], h.idx[i]
	n := len(h.exp)
	for {
		c := 4*i + 1
		if c >= n {
			break
		}
		m := c
		end := min(c+4, n)
		for j := c + 1; j < end; j++ {
			if h.exp[j] < h.exp[m] {
				m = j
			}
		}
		if h.exp[m] >= exp {
			break
		}
		h.set(i, h.exp[m], h.idx[m], s)
		i = m
	}
	h.set(i, exp, ri, s)
}
