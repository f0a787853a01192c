package policy

import (
	"cmp"
	"fmt"
	"math"
	"math/big"
	"math/bits"
	"math/rand/v2"
	"slices"
	"testing"
)

// refSelector is the obviously-correct reference: a slice of members, keys
// recomputed from the policy values at every selection, a full sort or a
// linear cumulative-weight scan. Same semantics as RSPLIB.
type refSelector struct {
	typ    Type
	maxInc int
	rng    *rand.Rand
	mem    []*refMember
	seq    uint64
}

type refMember struct {
	slot        int32
	v           Values
	seq         uint64
	deg         uint64 // local degradation
	round, virt uint64 // WRR
}

func newRef(t Type, src rand.Source, maxInc int) *refSelector {
	r := &refSelector{typ: t, maxInc: maxInc, seq: 1}
	if src != nil {
		r.rng = rand.New(src)
	}
	return r
}

// sat clamps a (hi, lo) 128-bit number to MaxLoad.
func sat(x [2]uint64) uint64 {
	if x[0] != 0 || x[1] > MaxLoad {
		return MaxLoad
	}
	return x[1]
}

// bsum adds in 128 bits.
func bsum(xs ...uint64) [2]uint64 {
	var s [2]uint64
	for _, x := range xs {
		var c uint64
		s[1], c = bits.Add64(s[1], x, 0)
		s[0] += c
	}
	return s
}

// bmul multiplies, saturating at MaxUint64.
func bmul(a, b uint64) uint64 {
	hi, lo := bits.Mul64(a, b)
	if hi != 0 {
		return math.MaxUint64
	}
	return lo
}

// sortKey: compare lexicographically, then seq.
func (r *refSelector) sortKey(m *refMember) [2]uint64 {
	v := m.v
	switch r.typ {
	case RoundRobin:
		return [2]uint64{0, 0}
	case WeightedRoundRobin:
		return [2]uint64{m.round, m.virt}
	case Priority:
		return [2]uint64{math.MaxUint32 - uint64(v.Priority), 0}
	case LeastUsed:
		return [2]uint64{uint64(v.Load), 0}
	case LeastUsedDegradation:
		return [2]uint64{sat(bsum(uint64(v.Load), m.deg)), 0}
	case PriorityLeastUsed:
		return [2]uint64{sat(bsum(uint64(v.Load), uint64(v.LoadDegradation))), 0}
	case PriorityLeastUsedDegradation:
		return [2]uint64{sat(bsum(uint64(v.Load), uint64(v.LoadDegradation), m.deg)), 0}
	case LeastUsedDPF:
		return [2]uint64{sat(bsum(uint64(v.Load), bmul(uint64(v.Distance), uint64(v.LoadDPF)))), 0}
	case LeastUsedDegradationDPF:
		return [2]uint64{sat(bsum(uint64(v.Load), m.deg, bmul(uint64(v.Distance), uint64(v.LoadDPF)))), 0}
	}
	panic("not sorted")
}

func (r *refSelector) weight(m *refMember) uint64 {
	v := m.v
	frac := func(sub ...uint64) uint64 {
		d := bsum(sub...)
		if d[0] != 0 || d[1] >= MaxLoad {
			return 1
		}
		return MaxLoad - d[1]
	}
	switch r.typ {
	case Random:
		return 1
	case WeightedRandom:
		return uint64(v.Weight)
	case RandomizedLeastUsed:
		return frac(uint64(v.Load))
	case RandomizedPriorityLeastUsed:
		return frac(uint64(v.Load), uint64(v.LoadDegradation))
	case RandomizedLeastUsedDegradation:
		return frac(uint64(v.Load), m.deg)
	case RandomizedPriorityLeastUsedDegradation:
		return frac(uint64(v.Load), uint64(v.LoadDegradation), m.deg)
	case WeightedRandomDPF:
		if v.Weight == 0 {
			return 0
		}
		// penalty = round(W × D × WDPF / 0xffffffff), half up
		p := new(big.Int).SetUint64(uint64(v.Weight))
		p.Mul(p, big.NewInt(int64(v.Distance)))
		p.Mul(p, big.NewInt(int64(v.WeightDPF)))
		p.Add(p, big.NewInt(MaxLoad/2))
		p.Div(p, big.NewInt(MaxLoad))
		if p.Cmp(big.NewInt(int64(v.Weight))) >= 0 {
			return 1
		}
		return uint64(v.Weight) - p.Uint64()
	}
	panic("not random")
}

func (r *refSelector) find(slot int32) int {
	return slices.IndexFunc(r.mem, func(m *refMember) bool { return m.slot == slot })
}

func (r *refSelector) Len() int { return len(r.mem) }

func (r *refSelector) Add(slot int32, v Values) {
	m := &refMember{slot: slot, v: v, seq: r.seq}
	r.seq++
	if r.typ == WeightedRoundRobin {
		m.virt = uint64(v.Weight)
		if len(r.mem) > 0 {
			m.round = math.MaxUint64
			for _, o := range r.mem {
				m.round = min(m.round, o.round)
			}
		}
	}
	r.mem = append(r.mem, m)
}

func (r *refSelector) Remove(slot int32) {
	if i := r.find(slot); i >= 0 {
		r.mem = slices.Delete(r.mem, i, i+1)
	}
}

func (r *refSelector) Update(slot int32, v Values) {
	r.Remove(slot)
	r.Add(slot, v)
}

func (r *refSelector) ordered() []*refMember {
	type keyed struct {
		k [3]uint64
		m *refMember
	}
	ks := make([]keyed, len(r.mem))
	for i, m := range r.mem {
		k := r.sortKey(m)
		ks[i] = keyed{[3]uint64{k[0], k[1], m.seq}, m}
	}
	slices.SortFunc(ks, func(a, b keyed) int { return slices.Compare(a.k[:], b.k[:]) })
	out := make([]*refMember, len(ks))
	for i := range ks {
		out[i] = ks[i].m
	}
	return out
}

func (r *refSelector) degrade(m *refMember) {
	m.deg = sat(bsum(m.deg, uint64(m.v.LoadDegradation)))
}

func (r *refSelector) Select(n int, dst []int32) []int32 {
	if r.typ.Randomized() {
		var drawn []*refMember
		bySlot := slices.Clone(r.mem)
		slices.SortFunc(bySlot, func(a, b *refMember) int { return cmp.Compare(a.slot, b.slot) })
		weights := make([]uint64, len(bySlot))
		var total uint64
		for i, m := range bySlot {
			weights[i] = r.weight(m)
			total += weights[i]
		}
		taken := make([]bool, len(bySlot))
		for len(drawn) < n && total > 0 {
			u := r.rng.Uint64N(total)
			for i, m := range bySlot {
				if taken[i] {
					continue
				}
				if u < weights[i] {
					drawn = append(drawn, m)
					taken[i] = true
					total -= weights[i]
					break
				}
				u -= weights[i]
			}
		}
		for i, m := range drawn {
			dst = append(dst, m.slot)
			if i < r.maxInc && (r.typ == RandomizedLeastUsedDegradation || r.typ == RandomizedPriorityLeastUsedDegradation) {
				r.degrade(m)
			}
		}
		return dst
	}
	// The first n in (key, seq) order by repeated linear minimum scans.
	keys := make([][3]uint64, len(r.mem))
	for i, m := range r.mem {
		k := r.sortKey(m)
		keys[i] = [3]uint64{k[0], k[1], m.seq}
	}
	taken := make([]bool, len(r.mem))
	var ord []*refMember
	for len(ord) < n && len(ord) < len(r.mem) {
		best := -1
		for i := range r.mem {
			if !taken[i] && (best < 0 || slices.Compare(keys[i][:], keys[best][:]) < 0) {
				best = i
			}
		}
		taken[best] = true
		ord = append(ord, r.mem[best])
	}
	for i, m := range ord {
		dst = append(dst, m.slot)
		if i >= r.maxInc {
			continue
		}
		m.seq = r.seq
		r.seq++
		switch r.typ {
		case WeightedRoundRobin:
			if m.virt > 1 {
				m.virt--
			} else {
				m.round++
				m.virt = uint64(m.v.Weight)
			}
		case LeastUsedDegradation, PriorityLeastUsedDegradation, LeastUsedDegradationDPF:
			r.degrade(m)
		}
	}
	return dst
}

// checkTree verifies the B+ tree invariants: order, separators, fill, leaf
// links and size.
func checkTree(t *testing.T, bt *btree) {
	t.Helper()
	if bt.root == nil {
		if bt.size != 0 {
			t.Fatalf("nil root, size %d", bt.size)
		}
		return
	}
	var leaves []*node
	var walk func(nd *node, lo, hi *entry, depth int, root bool) int
	walk = func(nd *node, lo, hi *entry, depth int, root bool) int {
		if nd.leaf {
			leaves = append(leaves, nd)
			for i := 0; i < nd.n; i++ {
				e := nd.items[i]
				if (lo != nil && e.less(*lo)) || (hi != nil && !e.less(*hi)) {
					t.Fatalf("entry %v outside [%v,%v)", e, lo, hi)
				}
				if i > 0 && !nd.items[i-1].less(e) {
					t.Fatalf("leaf out of order")
				}
			}
			if !root && nd.n == 0 {
				t.Fatalf("empty non-root leaf")
			}
			return depth
		}
		if nd.n < 2 {
			t.Fatalf("internal node with %d kids", nd.n)
		}
		if !root && nd.n < nodeMin {
			t.Fatalf("internal node underfull: %d", nd.n)
		}
		d := -1
		for i := 0; i < nd.n; i++ {
			l, h := lo, hi
			if i > 0 {
				l = &nd.items[i]
			}
			if i+1 < nd.n {
				h = &nd.items[i+1]
			}
			if dd := walk(nd.kids[i], l, h, depth+1, false); d >= 0 && dd != d {
				t.Fatalf("unbalanced")
			} else {
				d = dd
			}
		}
		for i := nd.n; i < nodeCap; i++ {
			if nd.kids[i] != nil {
				t.Fatalf("stale kid pointer")
			}
		}
		return d
	}
	walk(bt.root, nil, nil, 0, true)
	total := 0
	for i, l := range leaves {
		total += l.n
		var want *node
		if i+1 < len(leaves) {
			want = leaves[i+1]
		}
		if l.next != want {
			t.Fatalf("leaf link %d broken", i)
		}
	}
	if total != bt.size {
		t.Fatalf("size %d, counted %d", bt.size, total)
	}
	if leaves[0] != bt.head || leaves[len(leaves)-1] != bt.tail {
		t.Fatalf("head or tail is not the first or last leaf")
	}
	checkLeafIDs(t, bt, leaves)
}

// checkLeafIDs verifies the leaf ids of a tree made with a SlotSpace: each
// leaf is bt.leaves[its id], the ids are distinct, each entry's slot
// records its leaf, and a freed id is nil in bt.leaves.
func checkLeafIDs(t *testing.T, bt *btree, leaves []*node) {
	t.Helper()
	if bt.sp == nil {
		return
	}
	seen := map[int32]bool{}
	for _, l := range append(slices.Clip(leaves), bt.freeLeaves...) {
		if l.id <= 0 || int(l.id) >= len(bt.leaves) || bt.leaves[l.id] != l || seen[l.id] {
			t.Fatalf("leaf with id %d: not leaves[%d], or the id is taken twice", l.id, l.id)
		}
		seen[l.id] = true
	}
	for _, id := range bt.freeIDs {
		if bt.leaves[id] != nil || seen[id] {
			t.Fatalf("free leaf id %d in use", id)
		}
	}
	for _, l := range leaves {
		for _, e := range l.items[:l.n] {
			var got uint32
			if bt.narrow {
				got = bt.sp.narrow[e.slot].leaf
			} else {
				got = bt.sp.slots[e.slot].leaf
			}
			if got != uint32(l.id) {
				t.Fatalf("slot %d (entry %v) records leaf %d, is in leaf %d", e.slot, e, got, l.id)
			}
		}
	}
}

func TestBtreeRandomOps(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var bt btree
	var ref []entry
	seq := uint32(1)
	for op := 0; op < 200000; op++ {
		if rng.IntN(100) < 55 || len(ref) == 0 {
			e := entry{key: uint64(rng.IntN(50)), seq: seq, slot: int32(seq)}
			if rng.IntN(3) == 0 {
				e.key = 1000 // append-heavy
			}
			seq++
			bt.insert(e)
			i, _ := slices.BinarySearchFunc(ref, e, func(a, b entry) int {
				if a.less(b) {
					return -1
				} else if b.less(a) {
					return 1
				}
				return 0
			})
			ref = slices.Insert(ref, i, e)
		} else {
			i := rng.IntN(len(ref))
			if rng.IntN(2) == 0 {
				i = 0
			}
			if !bt.delete(ref[i]) {
				t.Fatalf("op %d: delete of present entry failed", op)
			}
			ref = slices.Delete(ref, i, i+1)
			if bt.delete(entry{key: 7, seq: 0}) {
				t.Fatalf("delete of absent entry succeeded")
			}
		}
		if op%1000 == 0 || op > 199000 {
			checkTree(t, &bt)
			if got := bt.all(); !slices.Equal(got, ref) && !(len(got) == 0 && len(ref) == 0) {
				t.Fatalf("op %d: contents differ", op)
			}
		}
	}
}

func randValues(rng *rand.Rand) Values {
	pick := func() uint32 {
		switch rng.IntN(6) {
		case 0:
			return 0
		case 1:
			return MaxLoad - uint32(rng.IntN(3))
		case 2:
			return rng.Uint32()
		default:
			return uint32(rng.IntN(8)) * 0x10000000
		}
	}
	return Values{
		Weight:          uint32(rng.IntN(5)),
		Priority:        uint32(rng.IntN(4)),
		Load:            pick(),
		LoadDegradation: pick(),
		LoadDPF:         uint32(rng.IntN(3)) * 0x01000000,
		WeightDPF:       pick(),
		Distance:        uint32(rng.IntN(300)),
	}
}

// TestSelectorsMatchReference runs a seeded sequence of 100k operations on
// every policy's selector and on the reference and requires identical
// selections (RSPLIB 3.4.4 semantics).
func TestSelectorsMatchReference(t *testing.T) {
	ops := 100000
	if testing.Short() || raceEnabled {
		ops = 10000
	}
	for _, typ := range Types() {
		for _, variant := range []string{"default", "maxinc3+wrap"} {
			t.Run(fmt.Sprintf("%v/%s", typ, variant), func(t *testing.T) {
				t.Parallel()
				maxInc := 1
				ops := ops
				if variant != "default" {
					maxInc = 3
					ops /= 3
				}
				sel, err := NewWithOptions(typ, rand.NewPCG(7, uint64(typ)), Options{MaxIncrement: maxInc})
				if err != nil {
					t.Fatal(err)
				}
				if variant != "default" {
					if s, ok := sel.(*sortedSelector); ok {
						s.seqLimit = 500 // force renumbering often
						s.roundLimit = 3
					}
				}
				ref := newRef(typ, rand.NewPCG(7, uint64(typ)), maxInc)
				rng := rand.New(rand.NewPCG(99, uint64(typ)))
				present := map[int32]bool{}
				var keys []int32 // present slots, for picking one
				var got, want []int32
				for op := 0; op < ops; op++ {
					// Pool size drifts between 0 and ~300.
					switch k := rng.IntN(100); {
					case k < 30:
						slot := int32(rng.IntN(320))
						if present[slot] {
							continue
						}
						v := randValues(rng)
						sel.Add(slot, v)
						ref.Add(slot, v)
						present[slot] = true
						keys = append(keys, slot)
					case k < 40 && len(present) > 0:
						slot := keys[rng.IntN(len(keys))]
						v := randValues(rng)
						sel.Update(slot, v)
						ref.Update(slot, v)
					case k < 55 && len(present) > 0:
						i := rng.IntN(len(keys))
						slot := keys[i]
						keys[i] = keys[len(keys)-1]
						keys = keys[:len(keys)-1]
						sel.Remove(slot)
						ref.Remove(slot)
						delete(present, slot)
					default:
						n := rng.IntN(20)
						got = sel.Select(n, got[:0])
						want = ref.Select(n, want[:0])
						if !slices.Equal(got, want) {
							t.Fatalf("op %d: Select(%d) = %v, reference %v", op, n, got, want)
						}
					}
					if sel.Len() != ref.Len() {
						t.Fatalf("op %d: Len %d, reference %d", op, sel.Len(), ref.Len())
					}
					if s, ok := sel.(*sortedSelector); ok && op%500 == 0 {
						checkTree(t, &s.tree)
						var order []int32
						for _, e := range s.tree.all() {
							order = append(order, e.slot)
						}
						var rorder []int32
						for _, m := range ref.ordered() {
							rorder = append(rorder, m.slot)
						}
						if !slices.Equal(order, rorder) && len(order)+len(rorder) > 0 {
							t.Fatalf("op %d: order differs", op)
						}
					}
				}
			})
		}
	}
}

// TestBtreeClusteredInserts drives the tree the way least-used selection
// does (take the first entry, put it back at the end of its run of equal
// keys, each after the previous one, which the insertion hint serves),
// mixed with removals anywhere and fresh members, against a sorted slice.
func TestBtreeClusteredInserts(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	var bt btree
	var ref []entry
	seq := uint32(1)
	cmp := compareEntries
	ins := func(e entry, hinted bool) {
		if hinted {
			bt.insertHinted(e)
		} else {
			bt.insert(e)
		}
		i, _ := slices.BinarySearchFunc(ref, e, cmp)
		ref = slices.Insert(ref, i, e)
	}
	for i := 0; i < 5000; i++ {
		ins(entry{key: uint64(rng.IntN(20)), seq: seq, slot: int32(seq)}, false)
		seq++
	}
	for op := 0; op < 100000; op++ {
		switch r := rng.IntN(100); {
		case r < 80 && len(ref) > 0: // select: first to the end of its run
			e := ref[0]
			if !bt.delete(e) {
				t.Fatalf("op %d: delete of the first entry failed", op)
			}
			ref = ref[1:]
			e.seq = seq
			seq++
			ins(e, true)
		case r < 90 && len(ref) > 0:
			i := rng.IntN(len(ref))
			if !bt.delete(ref[i]) {
				t.Fatalf("op %d: delete of present entry failed", op)
			}
			ref = slices.Delete(ref, i, i+1)
		default:
			ins(entry{key: uint64(rng.IntN(20)), seq: seq, slot: int32(seq)}, rng.IntN(2) == 0)
			seq++
		}
		if op%500 == 0 {
			checkTree(t, &bt)
			if got := bt.all(); !slices.Equal(got, ref) {
				t.Fatalf("op %d: contents differ", op)
			}
		}
	}
	checkTree(t, &bt)
	if got := bt.all(); !slices.Equal(got, ref) {
		t.Fatalf("contents differ")
	}
}

// TestBtreeLeafIDs drives a tree that records each entry's leaf (as the
// sorted selectors' trees do) through growth to three levels and back,
// with insertions anywhere, at the ends of key runs (hinted) and at the
// right end, removals by slot (deleteSlot, which trusts the recorded
// leaf), by entry and of the first entry, so that leaves split, merge and
// share their entries, against a sorted slice; after every operation (or
// every 50th on a large tree) every slot's recorded leaf must hold it and
// a removed slot's entry must be gone. Both slot arrays are tried.
func TestBtreeLeafIDs(t *testing.T) {
	for _, narrow := range []bool{true, false} {
		t.Run(fmt.Sprint("narrow=", narrow), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(11, 12))
			const slots = 6000
			sp := &SlotSpace{narrow: make([]narrowSlot, slots), slots: make([]sortedSlot, slots)}
			bt := newBtree(sp, narrow)
			leafOf := func(slot int32) uint32 {
				if narrow {
					return sp.narrow[slot].leaf
				}
				return sp.slots[slot].leaf
			}
			clearSlot := func(slot int32) {
				sp.narrow[slot], sp.slots[slot] = narrowSlot{}, sortedSlot{}
			}
			cmp := compareEntries
			var ref []entry
			var free []int32 // slots not in the tree
			for i := int32(slots - 1); i >= 0; i-- {
				free = append(free, i)
			}
			seq := uint32(1)
			ins := func(key uint64, how int) {
				slot := free[len(free)-1]
				free = free[:len(free)-1]
				e := entry{key: key, seq: seq, slot: slot}
				seq++
				switch how {
				case 0:
					bt.insert(e)
				default:
					bt.insertHinted(e)
				}
				i, _ := slices.BinarySearchFunc(ref, e, cmp)
				ref = slices.Insert(ref, i, e)
			}
			gone := func(i int) {
				clearSlot(ref[i].slot)
				free = append(free, ref[i].slot)
				ref = slices.Delete(ref, i, i+1)
			}
			target := 0
			for op := 0; op < 60000; op++ {
				if op%15000 == 0 {
					target = []int{400, 5000, 100, 3000}[op/15000]
				}
				grow := len(ref) < target
				switch k := rng.IntN(100); {
				case len(ref) == 0 || (grow && k < 60) || (!grow && k < 35):
					switch rng.IntN(4) {
					case 0:
						ins(1<<40, 0) // right end
					case 1:
						ins(uint64(rng.IntN(30)), 1) // the end of a run
					default:
						ins(uint64(rng.IntN(1000)), 0)
					}
				case k < 80:
					i := rng.IntN(len(ref))
					e := ref[i]
					// A wrong leaf id (another leaf, an id past the
					// table) removes nothing (checked now and then: the
					// comparison reads the whole tree).
					other := leafOf(ref[rng.IntN(len(ref))].slot)
					for _, id := range []uint32{other, uint32(len(bt.leaves)) + 3} {
						if id == leafOf(e.slot) || op%20 != 0 {
							continue
						}
						if got, ok := bt.deleteSlot(e.slot, id); ok {
							t.Fatalf("op %d: deleteSlot(%d) in leaf %d, which does not hold it, removed %v", op, e.slot, id, got)
						}
						if got := bt.all(); !slices.Equal(got, ref) {
							t.Fatalf("op %d: deleteSlot with a wrong leaf id changed the tree", op)
						}
					}
					if got, ok := bt.deleteSlot(e.slot, leafOf(e.slot)); !ok || got != e {
						t.Fatalf("op %d: deleteSlot(%d) removed %v, want %v", op, e.slot, got, e)
					}
					gone(i)
				case k < 90:
					i := rng.IntN(len(ref))
					if !bt.delete(ref[i]) {
						t.Fatalf("op %d: delete of present entry failed", op)
					}
					gone(i)
				default:
					l, _ := bt.firstBound()
					bt.deleteFirst(l)
					gone(0)
				}
				if len(ref) < 300 || op%50 == 0 {
					checkTree(t, &bt)
					if got := bt.all(); !slices.Equal(got, ref) && len(got)+len(ref) > 0 {
						t.Fatalf("op %d: contents differ", op)
					}
					for _, sl := range free {
						if leafOf(sl) != 0 {
							t.Fatalf("op %d: removed slot %d records leaf %d", op, sl, leafOf(sl))
						}
					}
				}
			}
			if len(bt.leaves) > 2*(slots/nodeMin)+maxFree+2 {
				t.Errorf("%d leaf ids for at most %d entries: ids are not reused", len(bt.leaves), slots)
			}
		})
	}
}

// compareEntries orders entries as the tree does, for slices.SortFunc and
// the like.
func compareEntries(a, b entry) int {
	if a.less(b) {
		return -1
	} else if b.less(a) {
		return 1
	}
	return 0
}

// A slot added to a second selector of the same SlotSpace while the first
// holds it breaks the Selector contract; it must not panic (the second
// selector's Add removes the slot with a leaf id of the first's tree).
func TestSharedSlotInTwoSelectors(t *testing.T) {
	var sp SlotSpace
	a, err := NewShared(LeastUsed, nil, Options{}, &sp)
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewShared(LeastUsed, nil, Options{}, &sp)
	if err != nil {
		t.Fatal(err)
	}
	for i := range int32(200) {
		a.Add(i, Values{Load: uint32(i)})
	}
	b.Add(150, Values{})
	b.Update(150, Values{Load: 7})
	if a.Len() != 200 || b.Len() != 1 {
		t.Fatalf("Len: a %d (want 200), b %d (want 1)", a.Len(), b.Len())
	}
}
