package handlespace

import (
	"encoding/binary"
	"math/rand/v2"
	"testing"
)

// TestIDTable checks the PE-ID hash table against a map under random
// inserts and deletes, including colliding and clustered keys, with slot
// tags of several widths (the store's MaxPEs sets how many bits are left
// for them: down to one).
func TestIDTable(t *testing.T) {
	for _, maxPEs := range []int{1 << 12, DefaultMaxPEs, maxLimit} {
		s, err := New(Config{MaxPEs: maxPEs})
		if err != nil {
			t.Fatal(err)
		}
		r := rand.New(rand.NewPCG(3, 4))
		var tb idTable
		tb.init(12345, maxPEs)
		ref := map[uint32]int32{}
		// The table's records, as a pool's members list: in insertion
		// order, removed ones left as tombstones.
		var members []seqEnt[uint32]
		pos := map[int32]int{}
		for op := 0; op < 200000; op++ {
			id := uint32(r.IntN(3000))
			if r.IntN(3) == 0 {
				id = uint32(r.IntN(50)) << 26 // same low bits
			}
			got := tb.get(id, s)
			want, ok := ref[id]
			if !ok {
				want = -1
			}
			if got != want {
				t.Fatalf("MaxPEs %d op %d get(%d) = %d, want %d", maxPEs, op, id, got, want)
			}
			if ok && r.IntN(2) == 0 {
				tb.del(id, want, s, members)
				members[pos[want]].idx = -1
				s.freeRec(want)
				delete(ref, id)
			} else if !ok {
				ri := s.allocRec()
				binary.BigEndian.PutUint32(s.rec(ri).data[4:], id)
				tb.put(id, ri, s, members)
				pos[ri] = len(members)
				members = append(members, seqEnt[uint32]{idx: ri})
				ref[id] = ri
			}
			if tb.n != len(ref) {
				t.Fatalf("MaxPEs %d op %d: n %d, want %d", maxPEs, op, tb.n, len(ref))
			}
			if op%1000 == 0 {
				checkIDTable(t, &tb, s)
			}
		}
	}
}

// checkIDTable checks every slot's recorded distance from home (exact
// below dMax, at least dMax at it) and that no empty slot lies between an
// entry and its home.
func checkIDTable(t *testing.T, tb *idTable, s *Store) {
	t.Helper()
	mask := uint32(len(tb.slots) - 1)
	for j, sl := range tb.slots {
		if sl == 0 {
			continue
		}
		home := tb.hash(s.rec(tb.ri(sl)).id()) >> tb.shift
		d := (uint32(j) - home) & mask
		if got := tb.dist(sl); got != min(d, tb.dMax()) {
			t.Fatalf("slot %d: distance %d recorded, %d from home", j, got, d)
		}
		for k := home; k != uint32(j); k = (k + 1) & mask {
			if tb.slots[k] == 0 {
				t.Fatalf("slot %d: empty slot %d after its home %d", j, k, home)
			}
		}
	}
}
