package policy

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestSharedSlotSpace runs three sorted selectors over one SlotSpace, each
// with its own members drawn from one slot space (a slot leaves one
// selector and may join another), against three selectors of their own,
// and requires identical selections: of one policy, and of policies with
// 8-byte slots (least used, priority) and 16-byte ones (weighted round
// robin, degradation) in one space.
func TestSharedSlotSpace(t *testing.T) {
	for _, types := range [][3]Type{
		{LeastUsed, LeastUsed, LeastUsed}, {RoundRobin, RoundRobin, RoundRobin},
		{WeightedRoundRobin, WeightedRoundRobin, WeightedRoundRobin},
		{LeastUsedDegradation, LeastUsedDegradation, LeastUsedDegradation}, {Priority, Priority, Priority},
		{LeastUsed, WeightedRoundRobin, Priority}, {LeastUsedDPF, PriorityLeastUsedDegradation, PriorityLeastUsed},
	} {
		t.Run(fmt.Sprint(types), func(t *testing.T) {
			var sp SlotSpace
			var shared, own [3]Selector
			for i, typ := range types {
				var err error
				if shared[i], err = NewShared(typ, nil, Options{}, &sp); err != nil {
					t.Fatal(err)
				}
				if own[i], err = New(typ, nil); err != nil {
					t.Fatal(err)
				}
			}
			rng := rand.New(rand.NewPCG(5, uint64(types[0])^uint64(types[1])<<32))
			where := map[int32]int{} // slot -> selector holding it
			var got, want []int32
			for op := 0; op < 20000; op++ {
				slot := int32(rng.IntN(200))
				j, in := where[slot]
				switch k := rng.IntN(10); {
				case k < 4 && !in:
					j = rng.IntN(3)
					v := randValues(rng)
					shared[j].Add(slot, v)
					own[j].Add(slot, v)
					where[slot] = j
				case k < 5 && in:
					v := randValues(rng)
					shared[j].Update(slot, v)
					own[j].Update(slot, v)
				case k < 7 && in:
					shared[j].Remove(slot)
					own[j].Remove(slot)
					delete(where, slot)
				case k == 7 && rng.IntN(100) == 0:
					// Clear one selector: the others keep their members.
					j = rng.IntN(3)
					shared[j].Clear()
					own[j].Clear()
					for sl, jj := range where {
						if jj == j {
							delete(where, sl)
						}
					}
				default:
					j = rng.IntN(3)
					n := rng.IntN(8)
					got = shared[j].Select(n, got[:0])
					want = own[j].Select(n, want[:0])
					if !slices.Equal(got, want) {
						t.Fatalf("op %d selector %d: shared space selected %v, own space %v", op, j, got, want)
					}
				}
			}
			for j := range shared {
				if shared[j].Len() != own[j].Len() {
					t.Fatalf("selector %d: Len %d, want %d", j, shared[j].Len(), own[j].Len())
				}
				checkTree(t, &shared[j].(*sortedSelector).tree)
			}
		})
	}
}

// TestClear: after Clear a selector of any policy is empty, and members
// added afterwards (on slots used before, too) are selected as by a new
// selector given the same members and the same random source.
func TestClear(t *testing.T) {
	for _, typ := range Types() {
		t.Run(typ.String(), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(9, uint64(typ)))
			sel, err := New(typ, rand.NewPCG(1, 1))
			if err != nil {
				t.Fatal(err)
			}
			for slot := range int32(300) {
				sel.Add(slot, randValues(rng))
			}
			sel.Select(10, nil)
			sel.Clear()
			if sel.Len() != 0 {
				t.Fatalf("Len %d after Clear", sel.Len())
			}
			if got := sel.Select(5, nil); len(got) != 0 {
				t.Fatalf("selected %v after Clear", got)
			}
			if ss, ok := sel.(*sortedSelector); ok {
				for slot := range int32(300) {
					if st := ss.slot(slot); st.leaf != 0 {
						t.Fatalf("slot %d still holds %+v after Clear", slot, st)
					}
				}
			}
			fresh, _ := New(typ, rand.NewPCG(1, 1))
			re, _ := New(typ, rand.NewPCG(1, 1))
			for slot := range int32(300) {
				re.Add(slot, randValues(rng))
			}
			re.Clear()
			for slot := int32(0); slot < 300; slot += 7 {
				v := randValues(rng)
				re.Add(slot, v)
				fresh.Add(slot, v)
			}
			for range 50 {
				got, want := re.Select(4, nil), fresh.Select(4, nil)
				if !slices.Equal(got, want) {
					t.Fatalf("after Clear selected %v, a new selector %v", got, want)
				}
			}
			if re.Len() != fresh.Len() {
				t.Fatalf("Len %d, want %d", re.Len(), fresh.Len())
			}
		})
	}
}
