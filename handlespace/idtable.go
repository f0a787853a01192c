package handlespace

import "math/bits"

// idTable maps PE identifiers to record indexes within one pool: open
// addressing with linear probing and backward-shift deletion (no
// tombstones), 4 bytes a slot. A slot holds the record index plus one in
// its low bits and, in the bits the store's largest index leaves free, the
// entry's distance from its home slot (up to dMax; dMax means "that or
// more") and a tag of the identifier's hash; the identifier itself is the
// record's (rec.id), read only when the tag matches, when a distance is not
// known, and when the table is resized. PE identifiers are chosen by PEs,
// so the hash is keyed by a per-store random seed.
type idTable struct {
	slots  []uint32 // power-of-two length; 0 marks an empty slot
	n      int
	shift  uint32 // 32 - log2(len(slots)): the hash's top bits index
	seed   uint32
	riBits uint8  // low bits of a slot that hold the record index + 1
	dBits  uint8  // then the distance from the home slot
	tagMsk uint32 // the hash bits kept as the tag (low bits), above both
}

const idTableMin = 8

// idDistBits is the most bits a slot gives the distance from home.
const idDistBits = 3

// idSlotBits is the number of bits a slot needs for record indexes below
// maxRecs, plus one (0 is the empty slot).
func idSlotBits(maxRecs int) uint8 { return uint8(bits.Len32(uint32(maxRecs))) }

func (t *idTable) hash(id uint32) uint32 {
	// murmur3 fmix32 of the seeded key.
	h := id ^ t.seed
	h ^= h >> 16
	h *= 0x85ebca6b
	h ^= h >> 13
	h *= 0xc2b2ae35
	h ^= h >> 16
	return h
}

// tag is the part of hash h a slot keeps, in place.
func (t *idTable) tag(h uint32) uint32 { return (h & t.tagMsk) << (t.riBits + t.dBits) }

// tagOf is the tag of a slot, in place.
func (t *idTable) tagOf(sl uint32) uint32 { return sl &^ (1<<(t.riBits+t.dBits) - 1) }

func (t *idTable) dMax() uint32 { return 1<<t.dBits - 1 }

// dist returns the distance a slot records; dMax means at least dMax.
func (t *idTable) dist(sl uint32) uint32 { return sl >> t.riBits & t.dMax() }

// withDist returns slot sl with distance d recorded (dMax if larger).
func (t *idTable) withDist(sl, d uint32) uint32 {
	d = min(d, t.dMax())
	return sl&^(t.dMax()<<t.riBits) | d<<t.riBits
}

// init empties the table for record indexes below maxRecs.
func (t *idTable) init(seed uint32, maxRecs int) {
	t.seed = seed
	t.riBits = idSlotBits(maxRecs)
	free := 32 - t.riBits
	t.dBits = min(idDistBits, free)
	t.tagMsk = 1<<(free-t.dBits) - 1
	t.slots, t.n = nil, 0
	t.resize(idTableMin, nil, nil)
}

func (t *idTable) ri(slot uint32) int32 { return int32(slot&(1<<t.riBits-1)) - 1 }

// home returns the home slot of the entry in slot j.
func (t *idTable) home(j uint32, s *Store) uint32 {
	sl := t.slots[j]
	if d := t.dist(sl); d < t.dMax() {
		return (j - d) & uint32(len(t.slots)-1)
	}
	return t.hash(s.rec(t.ri(sl)).id()) >> t.shift
}

// resize rehashes the table into size slots (growing it, or for init).
// Its entries are the live records of members (the pool's members list,
// read in order so that the records are too, rather than in the table's
// hash order).
func (t *idTable) resize(size int, s *Store, members []seqEnt[uint32]) {
	t.slots = make([]uint32, size)
	t.shift = 32 - uint32(bits.Len(uint(size-1)))
	mask := uint32(size - 1)
	for _, e := range members {
		if e.idx < 0 {
			continue
		}
		h := t.hash(s.rec(e.idx).id())
		home := h >> t.shift
		i := home
		for t.slots[i] != 0 {
			i = (i + 1) & mask
		}
		t.slots[i] = t.withDist(t.tag(h)|uint32(e.idx+1), (i-home)&mask)
	}
}

// get returns the record of id, or -1.
func (t *idTable) get(id uint32, s *Store) int32 {
	h := t.hash(id)
	tag := t.tag(h)
	mask := uint32(len(t.slots) - 1)
	for i := h >> t.shift; ; i = (i + 1) & mask {
		sl := t.slots[i]
		if sl == 0 {
			return -1
		}
		if t.tagOf(sl) == tag {
			if ri := t.ri(sl); s.rec(ri).id() == id {
				return ri
			}
		}
	}
}

// put adds id (not present) -> ri, the record that holds id. members are
// the records the table holds (the pool's members, without ri).
func (t *idTable) put(id uint32, ri int32, s *Store, members []seqEnt[uint32]) {
	if (t.n+1)*4 > len(t.slots)*3 {
		t.resize(2*len(t.slots), s, members)
	}
	h := t.hash(id)
	mask := uint32(len(t.slots) - 1)
	home := h >> t.shift
	i := home
	for t.slots[i] != 0 {
		i = (i + 1) & mask
	}
	t.slots[i] = t.withDist(t.tag(h)|uint32(ri+1), (i-home)&mask)
	t.n++
}

// del removes id, held by record ri, which must be present.
func (t *idTable) del(id uint32, ri int32, s *Store) {
	mask := uint32(len(t.slots) - 1)
	i := t.hash(id) >> t.shift
	for t.ri(t.slots[i]) != ri {
		i = (i + 1) & mask
	}
	// Backward-shift: move later members of the cluster into the hole when
	// their home slot does not lie cyclically in (hole, j], that is when
	// their distance from home is at least the hole's distance from them.
	for j := (i + 1) & mask; t.slots[j] != 0; j = (j + 1) & mask {
		d := (j - t.home(j, s)) & mask
		if back := (j - i) & mask; d >= back {
			t.slots[i] = t.withDist(t.slots[j], d-back)
			i = j
		}
	}
	t.slots[i] = 0
	t.n--
	if len(t.slots) > idTableMin && t.n*8 < len(t.slots) {
		t.halve(s)
	}
}

// halve rehashes the table into half its slots. The home of an entry
// there is its home here halved (a home is the hash's top bits), which its
// recorded distance gives, so only the entries at dMax or more from home
// have their record read.
func (t *idTable) halve(s *Store) {
	old := t.slots
	oldMask := uint32(len(old) - 1)
	t.slots = make([]uint32, len(old)/2)
	t.shift++
	mask := uint32(len(t.slots) - 1)
	for j, sl := range old {
		if sl == 0 {
			continue
		}
		var home uint32
		if d := t.dist(sl); d < t.dMax() {
			home = ((uint32(j) - d) & oldMask) >> 1
		} else {
			home = t.hash(s.rec(t.ri(sl)).id()) >> t.shift
		}
		i := home
		for t.slots[i] != 0 {
			i = (i + 1) & mask
		}
		t.slots[i] = t.withDist(sl, (i-home)&mask)
	}
}
