package handlespace

// heapArity is the expiry heap's number of children per entry: eight
// deadlines fill one cache line, and an entry sinks from the top to the
// bottom of a heap of 1,000 in 4 moves instead of 5 (each moves an entry
// and writes its record).
const heapArity = 8

// expiryHeap is an indexed heapArity-ary min-heap of PE records by key:
// the record's deadline or, while the deadline is postponed (setExpiry),
// an earlier lower bound of it. Each record stores its heap position in
// rec.heap. The keys and the records are kept in two parallel slices, 12
// bytes an entry instead of the 16 of a padded {int64, int32} struct.
type expiryHeap struct {
	exp []int64 // key, UnixNano
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
	exp, ri := h.exp[last], h.idx[last]
	h.exp, h.idx = h.exp[:last], h.idx[:last]
	if int(pos) == last {
		return
	}
	// The last entry fills the hole, sifted from there without being
	// stored in it first.
	if i := int(pos); i > 0 && exp < h.exp[(i-1)/heapArity] {
		h.upFrom(i, exp, ri, s)
	} else {
		h.downFrom(i, exp, ri, s)
	}
}

func (h *expiryHeap) up(i int, s *Store) { h.upFrom(i, h.exp[i], h.idx[i], s) }

// upFrom puts entry (exp, ri) into the hole at i, sifting it up.
func (h *expiryHeap) upFrom(i int, exp int64, ri int32, s *Store) {
	for i > 0 {
		p := (i - 1) / heapArity
		if h.exp[p] <= exp {
			break
		}
		h.set(i, h.exp[p], h.idx[p], s)
		i = p
	}
	h.set(i, exp, ri, s)
}

func (h *expiryHeap) down(i int, s *Store) { h.downFrom(i, h.exp[i], h.idx[i], s) }

// downFrom puts entry (exp, ri) into the hole at i, sifting it down.
func (h *expiryHeap) downFrom(i int, exp int64, ri int32, s *Store) {
	e := h.exp
	n := len(e)
	for {
		c := heapArity*i + 1
		if c >= n {
			break
		}
		m, me := c, e[c]
		if c+heapArity <= n { // all children: a fixed-length loop
			k := e[c : c+heapArity : c+heapArity]
			for j := 1; j < heapArity; j++ {
				if k[j] < me {
					m, me = c+j, k[j]
				}
			}
		} else {
			for j := c + 1; j < n; j++ {
				if e[j] < me {
					m, me = j, e[j]
				}
			}
		}
		if me >= exp {
			break
		}
		h.set(i, me, h.idx[m], s)
		i = m
	}
	h.set(i, exp, ri, s)
}
