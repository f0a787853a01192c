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
