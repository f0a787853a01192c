package handlespace

// idTable maps PE identifiers to record indexes within one pool: open
// addressing with linear probing and backward-shift deletion (no
// tombstones), 8 bytes a slot. PE identifiers are chosen by PEs, so the hash
// is keyed by a per-store random seed.
type idTable struct {
	slots []idSlot // power-of-two length; ri < 0 marks an empty slot
	n     int
	shift uint32
	seed  uint32
}

type idSlot struct {
	id uint32
	ri int32
}

const idTableMin = 8

func (t *idTable) hash(id uint32) uint32 {
	// murmur3 fmix32 of the seeded key, then take the top bits.
	h := id ^ t.seed
	h ^= h >> 16
	h *= 0x85ebca6b
	h ^= h >> 13
	h *= 0xc2b2ae35
	h ^= h >> 16
	return h >> t.shift
}

func (t *idTable) init(seed uint32) {
	t.seed = seed
	t.resize(idTableMin)
}

func (t *idTable) resize(size int) {
	old := t.slots
	t.slots = make([]idSlot, size)
	for i := range t.slots {
		t.slots[i].ri = -1
	}
	bits := uint32(0)
	for 1<<bits < size {
		bits++
	}
	t.shift = 32 - bits
	mask := uint32(size - 1)
	for _, s := range old {
		if s.ri < 0 {
			continue
		}
		i := t.hash(s.id)
		for t.slots[i].ri >= 0 {
			i = (i + 1) & mask
		}
		t.slots[i] = s
	}
}

// get returns the record of id, or -1.
func (t *idTable) get(id uint32) int32 {
	mask := uint32(len(t.slots) - 1)
	for i := t.hash(id); ; i = (i + 1) & mask {
		s := t.slots[i]
		if s.ri < 0 {
			return -1
		}
		if s.id == id {
			return s.ri
		}
	}
}

// put adds id (not present) -> ri.
func (t *idTable) put(id uint32, ri int32) {
	if (t.n+1)*4 > len(t.slots)*3 {
		t.resize(2 * len(t.slots))
	}
	mask := uint32(len(t.slots) - 1)
	i := t.hash(id)
	for t.slots[i].ri >= 0 {
		i = (i + 1) & mask
	}
	t.slots[i] = idSlot{id: id, ri: ri}
	t.n++
}

// del removes id, which must be present.
func (t *idTable) del(id uint32) {
	mask := uint32(len(t.slots) - 1)
	i := t.hash(id)
	for t.slots[i].id != id || t.slots[i].ri < 0 {
		i = (i + 1) & mask
	}
	// Backward-shift: move later members of the cluster into the hole when
	// their home slot does not lie cyclically in (hole, j].
	for j := (i + 1) & mask; t.slots[j].ri >= 0; j = (j + 1) & mask {
		h := t.hash(t.slots[j].id)
		if (j-h)&mask >= (j-i)&mask {
			t.slots[i] = t.slots[j]
			i = j
		}
	}
	t.slots[i].ri = -1
	t.n--
	if len(t.slots) > idTableMin && t.n*8 < len(t.slots) {
		t.resize(len(t.slots) / 2)
	}
}
