package handlespace

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/go-rserpool/rserpool/tlv"
)

// checkHeap verifies the expiry heap against the records: the heap order
// over every entry (tombstones keep their keys, so they are ordered too),
// the tombstone count, each live entry's record pointing back at it, and
// every record with a deadline being in the heap.
func checkHeap(t *testing.T, s *Store) {
	t.Helper()
	h := &s.heap
	dead := 0
	for i, ri := range h.idx {
		if i > 0 && h.exp[(i-1)/heapArity] > h.exp[i] {
			t.Fatalf("heap order broken at %d", i)
		}
		if ri < 0 {
			dead++
			continue
		}
		if r := s.rec(ri); r.pool < 0 || int(r.heap) != i {
			t.Fatalf("entry %d: record %d (pool %d) says position %d", i, ri, r.pool, r.heap)
		}
	}
	if dead != h.dead {
		t.Fatalf("%d tombstones, counted %d", dead, h.dead)
	}
	inHeap := 0
	for i := int32(0); i < s.nrec; i++ {
		if r := s.rec(i); r.pool >= 0 && r.heap >= 0 {
			inHeap++
			if h.idx[r.heap] != i {
				t.Fatalf("record %d at heap position %d, which holds %d", i, r.heap, h.idx[r.heap])
			}
		}
	}
	if inHeap != h.live() {
		t.Fatalf("%d records in the heap, %d live entries", inHeap, h.live())
	}
}

// TestExpiryHeapTombstones drives deregistrations (in deadline order, the
// order that leaves tombstones at the top, and at random), deadline
// changes and removals, NextExpiry and PopExpired against a map of
// deadlines, checking the heap after every operation: tombstones must
// never be seen as PEs, and compaction must keep every record's heap
// position right.
func TestExpiryHeapTombstones(t *testing.T) {
	for _, seed := range []uint64{1, 2, 3} {
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 5))
			s := newTestStore(t, Config{})
			deadline := map[uint32]time.Time{} // PEs with a deadline
			present := map[uint32]bool{}
			now := t0
			nextID := uint32(1)
			for op := 0; op < 6000; op++ {
				switch k := rng.IntN(100); {
				case k < 35 || len(present) == 0:
					id := nextID
					nextID++
					exp := now.Add(time.Duration(1+rng.IntN(100000)) * time.Millisecond)
					if rng.IntN(10) == 0 {
						exp = time.Time{}
					}
					mustRegister(t, s, "p", testPE(id, 1), exp)
					present[id] = true
					if !exp.IsZero() {
						deadline[id] = exp
					}
				case k < 65: // deregister: the earliest deadline, or any PE
					var id uint32
					if rng.IntN(2) == 0 && len(deadline) > 0 {
						var first time.Time
						for i, d := range deadline {
							if first.IsZero() || d.Before(first) || (d.Equal(first) && i < id) {
								id, first = i, d
							}
						}
					} else {
						ids := make([]uint32, 0, len(present))
						for i := range present {
							ids = append(ids, i)
						}
						slices.Sort(ids)
						id = ids[rng.IntN(len(ids))]
					}
					if _, ok := s.Deregister(now, tlv.PoolHandle("p"), id); !ok {
						t.Fatalf("op %d: PE %d missing", op, id)
					}
					delete(present, id)
					delete(deadline, id)
				case k < 75: // move a deadline (earlier, later or none)
					ids := make([]uint32, 0, len(present))
					for i := range present {
						ids = append(ids, i)
					}
					slices.Sort(ids)
					id := ids[rng.IntN(len(ids))]
					exp := now.Add(time.Duration(1+rng.IntN(100000)) * time.Millisecond)
					if rng.IntN(5) == 0 {
						exp = time.Time{}
					}
					s.SetExpiry(now, tlv.PoolHandle("p"), id, exp)
					if exp.IsZero() {
						delete(deadline, id)
					} else {
						deadline[id] = exp
					}
				case k < 90:
					var first time.Time
					for _, d := range deadline {
						if first.IsZero() || d.Before(first) {
							first = d
						}
					}
					got, ok := s.NextExpiry()
					if ok != !first.IsZero() || !got.Equal(first) {
						t.Fatalf("op %d: NextExpiry %v %v, want %v", op, got, ok, first)
					}
				default:
					now = now.Add(time.Duration(rng.IntN(3000)) * time.Millisecond)
					var want []uint32
					for id, d := range deadline {
						if !d.After(now) {
							want = append(want, id)
						}
					}
					got := popIDs(s, now)
					slices.Sort(got)
					slices.Sort(want)
					if !slices.Equal(got, want) {
						t.Fatalf("op %d: PopExpired removed %v, want %v", op, got, want)
					}
					for _, id := range want {
						delete(deadline, id)
						delete(present, id)
					}
				}
				checkHeap(t, s)
				if s.PEs() != len(present) {
					t.Fatalf("op %d: %d PEs, want %d", op, s.PEs(), len(present))
				}
			}
		})
	}
}

// TestExpiryHeapDeregisterInOrder: PEs leaving in the order of their
// deadlines leave tombstones at the top; NextExpiry in between skips them
// and reports the earliest deadline left, and compaction keeps the heap
// right, down to an empty heap.
func TestExpiryHeapDeregisterInOrder(t *testing.T) {
	s := newTestStore(t, Config{})
	const n = 500
	for i := uint32(1); i <= n; i++ {
		mustRegister(t, s, "p", testPE(i, 1), t0.Add(time.Duration(i)*time.Second))
	}
	for i := uint32(1); i <= n; i++ {
		if _, ok := s.Deregister(t0, tlv.PoolHandle("p"), i); !ok {
			t.Fatalf("PE %d missing", i)
		}
		checkHeap(t, s)
		if i%7 == 0 || i == n {
			got, ok := s.NextExpiry()
			if want := t0.Add(time.Duration(i+1) * time.Second); i < n && (!ok || !got.Equal(want)) {
				t.Fatalf("after %d: NextExpiry %v %v, want %v", i, got, ok, want)
			}
			if i == n && ok {
				t.Fatalf("empty store: NextExpiry %v", got)
			}
			checkHeap(t, s)
		}
	}
	if s.heap.len() != 0 {
		t.Fatalf("empty store keeps %d heap entries", s.heap.len())
	}
}
