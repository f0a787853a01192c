package policy

import "math"

// sortedSlot is a member of a sorted selector: the leaf of the selector's
// tree that holds its entry, and one policy-specific number. 8 bytes.
type sortedSlot struct {
	leaf uint32 // the leaf's id in the tree (btree.place); 0: not present
	aux  uint32 // WRR: Weight; degradation policies: LoadDegradation
}

// sortedSelector implements the policies that take the first n members in a
// sort order (RFC 5356 round robin, weighted round robin, priority, least
// used and its variants). The order is (key, seq): key comes from the policy
// values and seq is the pool's sequence number, handed out anew whenever a
// member is added, updated or selected, which serves ties round robin.
type sortedSelector struct {
	typ      Type
	maxInc   int
	tree     btree
	sp       *SlotSpace // per-slot positions, maybe shared with other selectors
	narrow   bool       // sp.narrow holds the slots (narrowType)
	seq      uint32     // next sequence number, >= 1
	seqLimit uint32     // renumber when seq would pass it (lowered by tests)
	// WRR keeps the round in the key's upper half; rounds are shifted down
	// once the smallest passes roundLimit (lowered by tests).
	roundLimit uint32
}

// SlotSpace holds the per-member data of sorted selectors so that several
// of them can share one slot space: see NewShared. Selectors of the
// policies whose members keep the key they joined with and whose key fits
// 32 bits (round robin, priority, least used, priority least used, least
// used with DPF) keep 4 bytes a slot; the others (weighted round robin and
// the degradation policies, whose hook reads a number of the member) 8 bytes.
// The two kinds have a slot array each, as long as the largest slot of
// that kind in use. The zero value is empty and ready to use.
type SlotSpace struct {
	slots  []sortedSlot
	narrow []narrowSlot
}

// narrowSlot is sortedSlot for a selector with narrow set: there is no aux.
type narrowSlot struct {
	leaf uint32 // as sortedSlot.leaf
}

// narrowType tells whether policy t's members need no number of their own
// (aux): their hook leaves the key as it is (see hookUsesAux).
func narrowType(t Type) bool {
	switch t {
	case RoundRobin, Priority, LeastUsed, PriorityLeastUsed, LeastUsedDPF:
		return true
	}
	return false
}

func newSortedSelector(t Type, maxInc int, sp *SlotSpace) *sortedSelector {
	if sp == nil {
		sp = &SlotSpace{}
	}
	narrow := narrowType(t)
	return &sortedSelector{
		typ: t, maxInc: maxInc, seq: 1, sp: sp, narrow: narrow,
		tree:       newBtree(sp, narrow),
		seqLimit:   math.MaxUint32 - 1,
		roundLimit: math.MaxUint32 / 2,
	}
}

// slot returns the member data of slot, which grow has made room for.
func (s *sortedSelector) slot(slot int32) sortedSlot {
	if s.narrow {
		return sortedSlot{leaf: s.sp.narrow[slot].leaf}
	}
	return s.sp.slots[slot]
}

// clearSlot marks slot not present.
func (s *sortedSelector) clearSlot(slot int32) {
	if s.narrow {
		s.sp.narrow[slot] = narrowSlot{}
		return
	}
	s.sp.slots[slot] = sortedSlot{}
}

// aux returns the aux value of present slot.
func (s *sortedSelector) aux(slot int32) uint32 {
	if s.narrow {
		return 0
	}
	return s.sp.slots[slot].aux
}

// slots is the length of the selector's kind of slot array.
func (s *sortedSelector) slots() int {
	if s.narrow {
		return len(s.sp.narrow)
	}
	return len(s.sp.slots)
}

// Type returns the selector's policy type.
func (s *sortedSelector) Type() Type { return s.typ }

func (s *sortedSelector) Len() int { return s.tree.size }

func satAdd(a, b uint64) uint64 {
	if a+b > MaxLoad {
		return MaxLoad
	}
	return a + b
}

// dpfPenalty is Distance × DPF in load units (RSPLIB: Distance ×
// (DPF/0xffffffff) × 0xffffffff), saturated at MaxLoad.
func dpfPenalty(distance, dpf uint32) uint64 {
	p := uint64(distance) * uint64(dpf)
	if p > MaxLoad {
		return MaxLoad
	}
	return p
}

// initial returns the key and aux of a member joining with values v.
func (s *sortedSelector) initial(v Values) (key uint64, aux uint32) {
	switch s.typ {
	case RoundRobin:
		return 0, 0
	case WeightedRoundRobin:
		// RSPLIB: a new PE joins the current round (the smallest) with its
		// full weight as virtual counter.
		var round uint64
		if e, ok := s.tree.min(); ok {
			round = e.key >> 32
		}
		return round<<32 | uint64(v.Weight), v.Weight
	case Priority:
		return uint64(^v.Priority), 0 // higher priority first
	case LeastUsed:
		return uint64(v.Load), 0
	case LeastUsedDegradation:
		return uint64(v.Load), v.LoadDegradation
	case PriorityLeastUsed:
		return satAdd(uint64(v.Load), uint64(v.LoadDegradation)), 0
	case PriorityLeastUsedDegradation:
		return satAdd(uint64(v.Load), uint64(v.LoadDegradation)), v.LoadDegradation
	case LeastUsedDPF:
		return satAdd(uint64(v.Load), dpfPenalty(v.Distance, v.LoadDPF)), 0
	case LeastUsedDegradationDPF:
		return satAdd(uint64(v.Load), dpfPenalty(v.Distance, v.LoadDPF)), v.LoadDegradation
	}
	return 0, 0
}

// hook is the per-selection update of a member's key.
func (s *sortedSelector) hook(key uint64, aux uint32) uint64 {
	switch s.typ {
	case WeightedRoundRobin:
		// Each PE is picked Weight times per round (RFC 5356 WRR; RSPLIB
		// VirtualCounter/RoundCounter).
		if uint32(key) > 1 {
			return key - 1
		}
		return (key>>32+1)<<32 | uint64(aux)
	case LeastUsedDegradation, PriorityLeastUsedDegradation, LeastUsedDegradationDPF:
		// key = min(base + Degradation, max); Degradation += LoadDegradation
		// (saturating) gives min(key + LoadDegradation, max).
		return satAdd(key, uint64(aux))
	}
	return key
}

func (s *sortedSelector) grow(slot int32) {
	if int(slot) < s.slots() {
		return
	}
	n := max(2*s.slots(), int(slot)+1, 16)
	if s.narrow {
		ns := make([]narrowSlot, n)
		copy(ns, s.sp.narrow)
		s.sp.narrow = ns
		return
	}
	ns := make([]sortedSlot, n)
	copy(ns, s.sp.slots)
	s.sp.slots = ns
}

// reserve makes sure that k sequence numbers can be handed out without
// wrapping, renumbering the members (in order) when needed.
func (s *sortedSelector) reserve(k int) {
	if uint64(s.seq)+uint64(k) < uint64(s.seqLimit) {
		return
	}
	s.rebuild(0)
}

// rebuild renumbers every member 1..n in order and subtracts sub from every
// key. Both keep the order; it costs O(n) and runs once per ~2^32 sequence
// numbers or WRR rounds.
func (s *sortedSelector) rebuild(sub uint64) {
	all := s.tree.all()
	s.tree = newBtree(s.sp, s.narrow)
	for i, e := range all {
		e.seq = uint32(i + 1)
		e.key -= sub
		s.tree.insert(e) // records the entry's new leaf
	}
	s.seq = uint32(len(all) + 1)
}

func (s *sortedSelector) Add(slot int32, v Values) {
	if slot < 0 {
		return
	}
	s.grow(slot)
	if s.slot(slot).leaf != 0 {
		s.Remove(slot)
	}
	s.reserve(1)
	key, aux := s.initial(v)
	e := entry{key: key, seq: s.seq, slot: slot}
	s.seq++
	if !s.narrow {
		s.sp.slots[slot].aux = aux
	}
	s.tree.insert(e) // records the leaf
}

// Update re-inserts the member as if it had just been added: degradation is
// reset, a WRR member restarts in the current round, and the member goes
// behind the others of equal key.
func (s *sortedSelector) Update(slot int32, v Values) {
	if slot < 0 || int(slot) >= s.slots() || s.slot(slot).leaf == 0 {
		s.Add(slot, v)
		return
	}
	// Remove and Add, without clearing the slot in between: insert
	// records the new leaf.
	if _, ok := s.tree.deleteSlot(slot, s.slot(slot).leaf); !ok {
		s.clearSlot(slot) // not in this tree (see deleteSlot): add it
	}
	s.reserve(1)
	key, aux := s.initial(v)
	if !s.narrow {
		s.sp.slots[slot].aux = aux
	}
	s.tree.insert(entry{key: key, seq: s.seq, slot: slot})
	s.seq++
}

func (s *sortedSelector) Remove(slot int32) {
	if slot < 0 || int(slot) >= s.slots() {
		return
	}
	leaf := s.slot(slot).leaf
	if leaf == 0 {
		return
	}
	s.tree.deleteSlot(slot, leaf) // false: not in this tree; clear it anyway
	s.clearSlot(slot)
}

func (s *sortedSelector) Clear() {
	for l := s.tree.first(); l != nil; l = l.next {
		for _, e := range l.items[:l.n] {
			s.clearSlot(e.slot)
		}
	}
	s.tree = newBtree(s.sp, s.narrow)
}

func (s *sortedSelector) Select(n int, dst []int32) []int32 {
	if n <= 0 || s.tree.size == 0 {
		return dst
	}
	if s.typ == WeightedRoundRobin {
		if e, _ := s.tree.min(); uint32(e.key>>32) >= s.roundLimit {
			s.rebuild(e.key >> 32 << 32)
		}
	}
	s.reserve(s.maxInc)
	start := len(dst)
	dst = s.tree.appendFirst(n, dst)
	upd := dst[start:]
	if len(upd) > s.maxInc {
		upd = upd[:s.maxInc]
	}
	for i, slot := range upd {
		if i == 0 {
			s.updateFirst()
			continue
		}
		e, ok := s.tree.deleteSlot(slot, s.slot(slot).leaf)
		if !ok {
			continue // cannot happen: appendFirst read slot from the tree
		}
		e.key = s.hook(e.key, s.aux(slot))
		e.seq = s.seq
		s.seq++
		s.tree.insertHinted(e) // records the leaf
	}
	return dst
}

// hookUsesAux tells whether hook reads the member's aux value.
func (s *sortedSelector) hookUsesAux() bool {
	switch s.typ {
	case WeightedRoundRobin, LeastUsedDegradation, PriorityLeastUsedDegradation, LeastUsedDegradationDPF:
		return true
	}
	return false
}

// updateFirst applies the per-selection update to the tree's first member.
// It reads the member's position from the leaf rather than from s.sp.slots
// (which, for a large pool, is a cache miss), and when the updated entry
// still sorts before its successor it is rewritten in place: the leftmost
// leaf's first entry is never a separator, so no other node changes, and
// the member stays in its leaf, so its slot is not written either.
func (s *sortedSelector) updateFirst() {
	l, bound := s.tree.firstBound()
	e := l.items[0]
	var aux uint32
	if s.hookUsesAux() {
		aux = s.aux(e.slot)
	}
	ne := entry{key: s.hook(e.key, aux), seq: s.seq, slot: e.slot}
	s.seq++
	var succ *entry
	if l.n > 1 {
		succ = &l.items[1]
	} else if l.next != nil {
		succ = &l.next.items[0]
	}
	switch {
	case succ == nil || ne.less(*succ):
		l.items[0] = ne
	case bound == nil || ne.less(*bound):
		// It still belongs in the first leaf (below the separator of the
		// second): move it there, past its equals, without a descent.
		// One pass shifts the entries before its place down over it
		// (a least-used member goes to the end of its run of equal keys,
		// usually a few entries away).
		j := 1
		for ; j < l.n && l.items[j].less(ne); j++ {
			l.items[j-1] = l.items[j]
		}
		l.items[j-1] = ne
	default:
		s.tree.deleteFirst(l)
		s.tree.insertHinted(ne) // records the new leaf
	}
}
