package policy

import (
	"math/bits"
	"math/rand/v2"
)

// randomSelector implements the policies that draw members at random, each
// with probability weight/Σweight and without repeats within one Select
// (RFC 5356 random, weighted random, randomized least used and RSPLIB's
// variants). Slots are grouped in blocks of 64; a Fenwick tree holds the
// block sums (1/64 of the slots, so it stays in cache) and a draw scans one
// block's weights linearly. A draw, a temporary removal and an update are
// O(log n); memory is about 4 bytes per slot.
//
// One draw takes u = Uint64N(Σweight) from the source and picks the first
// slot, in slot order, whose cumulative weight exceeds u.
type randomSelector struct {
	typ     Type
	maxInc  int
	rng     *rand.Rand
	n       int
	fen     []uint64 // 1-based Fenwick tree over block sums; len(fen) = blocks+1, blocks a power of two
	w       []uint32 // current weight per slot; len(w) = 64 × blocks
	present []uint64 // bitset
	// Degradation policies only (RLUD, RPLUD):
	used []uint32 // min(Load (+ LoadDegradation for RPLUD), max)
	ld   []uint32 // LoadDegradation
	deg  []uint32 // local degradation counter

	saved []uint32 // scratch for Select
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

const blockShift = 6 // 64 slots per block

func (s *randomSelector) add(slot int32, delta uint64) {
	for i := int(slot>>blockShift) + 1; i < len(s.fen); i += i & -i {
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
	// pos is the block; scan its weights.
	base := pos << blockShift
	blk := s.w[base : base+1<<blockShift]
	for i, w := range blk {
		if u < uint64(w) {
			return int32(base + i)
		}
		u -= uint64(w)
	}
	return int32(base + len(blk) - 1) // unreachable while the sums are right
}

func (s *randomSelector) grow(slot int32) {
	capacity := len(s.w)
	if int(slot) < capacity {
		return
	}
	nc := max(1<<blockShift, capacity)
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
	nb := nc >> blockShift
	fen := make([]uint64, nb+1)
	for i, x := range w {
		fen[i>>blockShift+1] += uint64(x)
	}
	for i := 1; i <= nb; i++ {
		if j := i + i&-i; j <= nb {
			fen[j] += fen[i]
		}
	}
	s.fen = fen
}

func (s *randomSelector) has(slot int32) bool {
	return slot >= 0 && int(slot) < len(s.w) && s.present[slot>>6]&(1<<(slot&63)) != 0
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

func (s *randomSelector) Clear() {
	clear(s.fen)
	clear(s.w)
	clear(s.present)
	clear(s.deg)
	s.n = 0
}

func (s *randomSelector) Select(n int, dst []int32) []int32 {
	start := len(dst)
	s.saved = s.saved[:0] // weights of the slots temporarily taken out
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
		w := s.w[slot]
		s.saved = append(s.saved, w)
		s.add(slot, -uint64(w))
		s.w[slot] = 0
	}
	deg := s.degrades()
	for i, slot := range dst[start:] {
		old := s.w[slot] // 0 if taken out
		w := old
		if i < len(s.saved) {
			w = s.saved[i]
		}
		if deg && i < s.maxInc {
			// Degradation applied after selection (RFC 5356 LUD semantics,
			// extended by RSPLIB to the randomized variants).
			d := satAdd(uint64(s.deg[slot]), uint64(s.ld[slot]))
			s.deg[slot] = uint32(d)
			w = fraction(uint64(s.used[slot]), d)
		}
		if w != old {
			s.w[slot] = w
			s.add(slot, uint64(w)-uint64(old))
		}
	}
	return dst
}
