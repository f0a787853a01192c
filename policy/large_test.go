package policy

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// checkSelectorSlots: every present slot of s records a leaf that holds it; every
// slot in absent records no leaf.
func checkSelectorSlots(t *testing.T, op int, s *sortedSelector, absent []int32) {
	t.Helper()
	leafOf := func(slot int32) uint32 {
		if s.narrow {
			return s.sp.narrow[slot].leaf
		}
		return s.sp.slots[slot].leaf
	}
	for l := s.tree.first(); l != nil; l = l.next {
		for _, e := range l.items[:l.n] {
			if got := leafOf(e.slot); got != uint32(l.id) {
				t.Fatalf("op %d: slot %d in leaf %d records %d", op, e.slot, l.id, got)
			}
		}
	}
	for _, sl := range absent {
		if int(sl) < s.slots() && leafOf(sl) != 0 {
			t.Fatalf("op %d: absent slot %d records leaf %d", op, sl, leafOf(sl))
		}
	}
}

// TestLargeSelectorsMatchReference: sorted selectors of every type with trees of up to
// three levels, sharing one SlotSpace with a decoy selector of the other slot
// kind, renumbering often, against the reference.
func TestLargeSelectorsMatchReference(t *testing.T) {
	for _, typ := range Types() {
		if typ.Randomized() {
			continue
		}
		for _, maxInc := range []int{1, 16} {
			if raceEnabled && (maxInc == 1 || !(typ == LeastUsed || typ == WeightedRoundRobin || typ == PriorityLeastUsed)) {
				continue // a few minutes under the race detector otherwise
			}
			t.Run(fmt.Sprintf("%v/inc%d", typ, maxInc), func(t *testing.T) {
				t.Parallel()
				var sp SlotSpace
				sel, _ := NewShared(typ, nil, Options{MaxIncrement: maxInc}, &sp)
				decoyT := LeastUsed
				if narrowType(typ) {
					decoyT = WeightedRoundRobin
				}
				decoyO, _ := NewShared(decoyT, nil, Options{}, &sp)
				decoy, _ := NewShared(typ, nil, Options{MaxIncrement: 3}, &sp)
				decoys := []Selector{nil, nil, decoy, decoyO}
				s := sel.(*sortedSelector)
				s.seqLimit = 7000
				s.roundLimit = 3
				ref := newRef(typ, nil, maxInc)
				rng := rand.New(rand.NewPCG(uint64(typ), uint64(maxInc)))
				const slots = 6000
				where := make([]int8, slots) // 0 none, 1 sel, 2 decoy
				var inSel []int32
				var got, want []int32
				target := 0
				const ops = 14000
				for op := 0; op < ops; op++ {
					if op%3500 == 0 {
						target = []int{4500, 300, 4500, 50}[op/3500]
					}
					grow := ref.Len() < target
					k := rng.IntN(100)
					switch {
					case (grow && k < 60) || (!grow && k < 20):
						slot := int32(rng.IntN(slots))
						v := randValues(rng)
						switch where[slot] {
						case 0:
							if d := 2 + rng.IntN(2); rng.IntN(6) == 0 {
								decoys[d].Add(slot, v)
								where[slot] = int8(d)
							} else {
								sel.Add(slot, v)
								ref.Add(slot, v)
								where[slot] = 1
								inSel = append(inSel, slot)
							}
						case 1:
							sel.Update(slot, v)
							ref.Update(slot, v)
						default:
							if rng.IntN(2) == 0 {
								decoys[where[slot]].Remove(slot)
								where[slot] = 0
							} else {
								decoys[where[slot]].Update(slot, v)
							}
						}
					case k < 75 && len(inSel) > 0:
						i := rng.IntN(len(inSel))
						slot := inSel[i]
						inSel[i] = inSel[len(inSel)-1]
						inSel = inSel[:len(inSel)-1]
						sel.Remove(slot)
						ref.Remove(slot)
						where[slot] = 0
					case k < 80 && len(inSel) > 0:
						slot := inSel[rng.IntN(len(inSel))]
						v := randValues(rng)
						sel.Update(slot, v)
						ref.Update(slot, v)
					case k == 99 && rng.IntN(40) == 0:
						sel.Clear()
						ref = newRef(typ, nil, maxInc)
						// the reference's seq restarts; the selector's does not,
						// but only the relative order matters.
						for _, sl := range inSel {
							where[sl] = 0
						}
						inSel = inSel[:0]
					default:
						n := rng.IntN(8)
						if rng.IntN(20) == 0 {
							n = 40 + rng.IntN(80)
						}
						got = sel.Select(n, got[:0])
						want = ref.Select(n, want[:0])
						if !slices.Equal(got, want) {
							t.Fatalf("op %d: Select(%d) = %v, reference %v", op, n, got, want)
						}
						_ = decoy.Select(5, nil)
						_ = decoyO.Select(2, nil)
					}
					if sel.Len() != ref.Len() {
						t.Fatalf("op %d: Len %d ref %d", op, sel.Len(), ref.Len())
					}
					if op%250 == 0 || ref.Len() < 70 {
						checkTree(t, &s.tree)
						checkTree(t, &decoy.(*sortedSelector).tree)
						checkTree(t, &decoyO.(*sortedSelector).tree)
						var absent, absentO []int32
						for sl := range int32(slots) {
							if where[sl] == 0 || where[sl] == 3 {
								absent = append(absent, sl)
							}
							if where[sl] != 3 {
								absentO = append(absentO, sl)
							}
						}
						checkSelectorSlots(t, op, s, absent)
						checkSelectorSlots(t, op, decoy.(*sortedSelector), nil)
						checkSelectorSlots(t, op, decoyO.(*sortedSelector), absentO)
					}
				}
			})
		}
	}
}
