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
//
// Removal leaves a tombstone (record -1) with the entry's key, which keeps
// the heap ordered as it was: no sift, and no record written but the
// removed one. Tombstones at the top are popped by top (before the first
// entry is read), and when they make up half the heap the live entries are
// gathered and heapified again (O(n) for n/2 removals), as seqList does
// with its tombstones. A burst of deregistrations then costs O(1) a PE
// instead of a sift-down each. A tombstone at the top is popped (one
// sift-down) by the next top, though, and a registrar asks for the next
// deadline after every batch of work: PEs that leave in deadline order, one
// batch each, still pay one sift-down apiece there, only later.
type expiryHeap struct {
	exp  []int64 // key, UnixNano
	idx  []int32 // record; -1: a tombstone
	dead int     // tombstones
}

// len is the number of entries, tombstones included.
func (h *expiryHeap) len() int { return len(h.idx) }

// live is the number of entries that are not tombstones.
func (h *expiryHeap) live() int { return len(h.idx) - h.dead }

// set puts entry (exp, ri) at position i and tells its record.
func (h *expiryHeap) set(i int, exp int64, ri int32, s *Store) {
	h.exp[i], h.idx[i] = exp, ri
	if ri >= 0 {
		s.rec(ri).heap = int32(i)
	}
}

// top pops the tombstones at the top, so that the first entry, if any, is
// a record's.
func (h *expiryHeap) top(s *Store) {
	if len(h.idx) > 0 && h.idx[0] < 0 { // inlined: usually false
		h.popDead(s)
	}
}

//go:noinline (keeps top inlinable)
func (h *expiryHeap) popDead(s *Store) {
	for len(h.idx) > 0 && h.idx[0] < 0 {
		h.dead--
		h.removeAt(0, s)
	}
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

// remove takes the entry at pos, a record's, out of the heap.
func (h *expiryHeap) remove(pos int32, s *Store) {
	s.rec(h.idx[pos]).heap = -1
	if last := len(h.idx) - 1; int(pos) == last {
		h.exp, h.idx = h.exp[:last], h.idx[:last]
		return
	}
	h.idx[pos] = -1
	h.dead++
	if h.dead > 16 && 2*h.dead >= len(h.idx) {
		h.compact(s)
	}
}

// compact drops the tombstones and heapifies the rest.
func (h *expiryHeap) compact(s *Store) {
	j := 0
	for i, ri := range h.idx {
		if ri < 0 {
			continue
		}
		if i != j {
			h.exp[j], h.idx[j] = h.exp[i], ri
			s.rec(ri).heap = int32(j)
		}
		j++
	}
	h.exp, h.idx, h.dead = h.exp[:j], h.idx[:j], 0
	for i := (j - 2) / heapArity; i >= 0 && j > 1; i-- {
		h.down(i, s)
	}
}

// removeAt takes the entry at pos (a record's, whose heap position the
// caller has cleared, or a tombstone) out of the heap, filling the hole.
func (h *expiryHeap) removeAt(pos int32, s *Store) {
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
