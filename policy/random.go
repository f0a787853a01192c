package policy

import (
	"math/bits"
	"math/rand/v2"
)

// randomSelector implements the policies that draw members at random, each
// with probability weight/Σweight and without repeats within one Select
// (RFC 5356 random, weighted random, randomized least used and RSPLIB's
// variants). Weights live in a Fenwick tree over slots, so a draw, a
// temporary removal and an update are O(log n).
//
// One draw takes u = Uint64N(Σweight) from the source and picks the first
// slot, in slot order, whose cumulative weight exceeds u.
type randomSelector struct {
	typ     Type
	maxInc  int
	rng     *rand.Rand
	n       int
	fen     []uint64 // 1-based Fenwick tree; len(fen) = capacity+1, capacity a power of two
	w       []uint32 // current weight per slot
	present []uint64 // bitset
	// Degradation policies only (RLUD, RPLUD):
	used []uint32 // min(Load (+ LoadDegradation for RPLUD), max)
	ld   []uint32 // LoadDegradation
	deg  []uint32 // local degradation counter
}

func newRandomSelector(t Type, src rand.Source, maxInc int) *randomSelector {
	return &randomSelector{typ: t, maxInc: maxInc, rng: rand.New(src), fen: make([]uint64, 1)}
}

// Type returns the selector's policy type.
func (s *randomSelector) Type() Type { return s.typ }

func (s *randomSelector) Len() int { return s.n }

func (s *randomSelector) degrades() bool {
	return s.typ == RandomizedLeastUsedDegradation || s.typ == RandomizedPriorityLeastUsedDegradation
}

// fraction returns max(0xffffffff - used - deg, 1) (RSPLIB getValueFraction).
func fraction(used, deg uint64) uint32 {
	if used+deg >= MaxLoad {
		return 1
	}
	return uint32(MaxLoad - used - deg)
}

// dpfWeight is WRAND-DPF's weight: Weight - round(Weight × Distance ×
// WeightDPF/0xffffffff), at least 1 unless Weight is 0.
func dpfWeight(v Values) uint32 {
	if v.Weight == 0 {
		return 0
	}
	hi, lo := bits.Mul64(uint64(v.Weight)*uint64(v.Distance), uint64(v.WeightDPF))
	var c uint64
	lo, c = bits.Add64(lo, MaxLoad/2, 0)
	hi += c
	if hi >= MaxLoad {
		return 1
	}
	q, _ := bits.Div64(hi, lo, MaxLoad)
	if q >= uint64(v.Weight) {
		return 1
	}
	return v.Weight - uint32(q)
}

// weightOf returns the draw weight of a member joining with v (and sets the
// degradation state of slot).
func (s *randomSelector) weightOf(slot int32, v Values) uint32 {
	switch s.typ {
	case Random:
		return 1
	case WeightedRandom:
		return v.Weight
	case RandomizedLeastUsed:
		return fraction(uint64(v.Load), 0)
	case RandomizedPriorityLeastUsed:
		return fraction(uint64(v.Load)+uint64(v.LoadDegradation), 0)
	case RandomizedLeastUsedDegradation, RandomizedPriorityLeastUsedDegradation:
		used := uint64(v.Load)
		if s.typ == RandomizedPriorityLeastUsedDegradation {
			used = satAdd(used, uint64(v.LoadDegradation))
		}
		s.used[slot], s.ld[slot], s.deg[slot] = uint32(used), v.LoadDegradation, 0
		return fraction(used, 0)
	case WeightedRandomDPF:
		return dpfWeight(v)
	}
	return 0
}

func (s *randomSelector) add(slot int32, delta uint64) {
	for i := int(slot) + 1; i < len(s.fen); i += i & -i {
		s.fen[i] += delta
	}
}

func (s *randomSelector) total() uint64 { return s.fen[len(s.fen)-1] }

// find returns the first slot whose cumulative weight exceeds u < total().
func (s *randomSelector) find(u uint64) int32 {
	pos := 0
	fen := s.fen
	for step := len(fen) - 1; step > 0; step >>= 1 {
		if next := pos + step; next < len(fen) && fen[next] <= u {
			pos = next
			u -= fen[next]
		}
	}
	return int32(pos)
}

func (s *randomSelector) grow(slot int32) {
	capacity := len(s.fen) - 1
	if int(slot) < capacity {
		return
	}
	nc := max(16, capacity)
	for nc <= int(slot) {
		nc *= 2
	}
	w := make([]uint32, nc)
	copy(w, s.w)
	s.w = w
	p := make([]uint64, (nc+63)/64)
	copy(p, s.present)
	s.present = p
	if s.degrades() {
		for _, a := range []*[]uint32{&s.used, &s.ld, &s.deg} {
			x := make([]uint32, nc)
			copy(x, *a)
			*a = x
		}
	}
	fen := make([]uint64, nc+1)
	for i := 1; i <= nc; i++ {
		fen[i] += uint64(w[i-1])
		if j := i + i&-i; j <= nc {
			fen[j] += fen[i]
		}
	}
	s.fen = fen
}

func (s *randomSelector) has(slot int32) bool {
	return slot >= 0 && int(slot) < len(s.fen)-1 && s.present[slot>>6]&(1<<(slot&63)) != 0
}

func (s *randomSelector) Add(slot int32, v Values) {
	if slot < 0 {
		return
	}
	if s.has(slot) {
		s.Remove(slot)
	}
	s.grow(slot)
	w := s.weightOf(slot, v)
	s.w[slot] = w
	s.present[slot>>6] |= 1 << (slot & 63)
	s.add(slot, uint64(w))
	s.n++
}

// Update gives the member its new weight and resets its degradation.
func (s *randomSelector) Update(slot int32, v Values) {
	s.Remove(slot)
	s.Add(slot, v)
}

func (s *randomSelector) Remove(slot int32) {
	if !s.has(slot) {
		return
	}
	s.add(slot, -uint64(s.w[slot]))
	s.w[slot] = 0
	s.present[slot>>6] &^= 1 << (slot & 63)
	s.n--
}

func (s *randomSelector) Select(n int, dst []int32) []int32 {
	start := len(dst)
	removed := 0 // dst[start:start+removed] are temporarily out of the tree
	for len(dst)-start < n {
		t := s.total()
		if t == 0 {
			break
		}
		slot := s.find(s.rng.Uint64N(t))
		dst = append(dst, slot)
		if len(dst)-start == n {
			break // last draw: no need to take it out
		}
		s.add(slot, -uint64(s.w[slot]))
		removed++
	}
	deg := s.degrades()
	for i, slot := range dst[start:] {
		old := s.w[slot]
		if deg && i < s.maxInc {
			// Degradation applied after selection (RFC 5356 LUD semantics,
			// extended by RSPLIB to the randomized variants).
			d := satAdd(uint64(s.deg[slot]), uint64(s.ld[slot]))
			s.deg[slot] = uint32(d)
			s.w[slot] = fraction(uint64(s.used[slot]), d)
		}
		if i < removed {
			s.add(slot, uint64(s.w[slot]))
		} else if s.w[slot] != old {
			s.add(slot, uint64(s.w[slot])-uint64(old))
		}
	}
	return dst
}
