package handlespace

import "math/bits"

// idTable maps PE identifiers to record indexes within one pool: open
// addressing with linear probing and backward-shift deletion (no
// tombstones), 4 bytes a slot. A slot holds the record index plus one and,
// in the bits the store's largest index leaves free, a tag of the
// identifier's hash; the identifier itself is the record's (rec.id), read
// only when the tag matches. PE identifiers are chosen by PEs, so the hash
// is keyed by a per-store random seed.
type idTable struct {
	slots  []uint32 // power-of-two length; 0 marks an empty slot
	n      int
	shift  uint32 // 32 - log2(len(slots)): the hash's top bits index
	seed   uint32
	riBits uint8  // low bits of a slot that hold the record index + 1
	tagMsk uint32 // the hash bits kept as the tag (low bits)
}

const idTableMin = 8

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

// tag is the part of hash h a slot keeps.
func (t *idTable) tag(h uint32) uint32 { return (h & t.tagMsk) << t.riBits }

// init empties the table for record indexes below maxRecs.
func (t *idTable) init(seed uint32, maxRecs int) {
	t.seed = seed
	t.riBits = idSlotBits(maxRecs)
	t.tagMsk = 0
	if t.riBits < 32 {
		t.tagMsk = 1<<(32-t.riBits) - 1
	}
	t.slots, t.n = nil, 0
	t.resize(idTableMin, nil)
}

func (t *idTable) ri(slot uint32) int32 { return int32(slot&(1<<t.riBits-1)) - 1 }

func (t *idTable) resize(size int, s *Store) {
	old := t.slots
	t.slots = make([]uint32, size)
	t.shift = 32 - uint32(bits.Len(uint(size-1)))
	mask := uint32(size - 1)
	for _, sl := range old {
		if sl == 0 {
			continue
		}
		i := t.hash(s.rec(t.ri(sl)).id()) >> t.shift
		for t.slots[i] != 0 {
			i = (i + 1) & mask
		}
		t.slots[i] = sl
	}
}

// get returns the record of id, or -1.
func (t *idTable) get(id uint32, s *Store) int32 {
	h := t.hash(id)
	tag, tm := t.tag(h), ^uint32(0)<<t.riBits
	mask := uint32(len(t.slots) - 1)
	for i := h >> t.shift; ; i = (i + 1) & mask {
		sl := t.slots[i]
		if sl == 0 {
			return -1
		}
		if sl&tm == tag {
			if ri := t.ri(sl); s.rec(ri).id() == id {
				return ri
			}
		}
	}
}

// put adds id (not present) -> ri, the record that holds id.
func (t *idTable) put(id uint32, ri int32, s *Store) {
	if (t.n+1)*4 > len(t.slots)*3 {
		t.resize(2*len(t.slots), s)
	}
	h := t.hash(id)
	mask := uint32(len(t.slots) - 1)
	i := h >> t.shift
	for t.slots[i] != 0 {
		i = (i + 1) & mask
	}
	t.slots[i] = t.tag(h) | uint32(ri+1)
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
	// their home slot does not lie cyclically in (hole, j].
	for j := (i + 1) & mask; t.slots[j] != 0; j = (j + 1) & mask {
		h := t.hash(s.rec(t.ri(t.slots[j])).id()) >> t.shift
		if (j-h)&mask >= (j-i)&mask {
			t.slots[i] = t.slots[j]
			i = j
		}
	}
	t.slots[i] = 0
	t.n--
	if len(t.slots) > idTableMin && t.n*8 < len(t.slots) {
		t.resize(len(t.slots)/2, s)
	}
}
