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
				tb.del(id, want, s)
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

// TestIDTableShrink fills tables to thousands of entries (clustered keys
// too) and empties them again, so that they halve many times (halve
// rehashes from the recorded distances, reading only the records of
// entries at dMax or more from home): after each halving every slot's
// distance must be right and every entry found, and removed ones not.
func TestIDTableShrink(t *testing.T) {
	for _, maxPEs := range []int{1 << 14, DefaultMaxPEs, maxLimit} {
		s, err := New(Config{MaxPEs: maxPEs})
		if err != nil {
			t.Fatal(err)
		}
		r := rand.New(rand.NewPCG(5, 6))
		var tb idTable
		tb.init(777, maxPEs)
		var members []seqEnt[uint32]
		ref := map[uint32]int32{}
		for len(ref) < 6000 {
			id := r.Uint32()
			if r.IntN(4) == 0 {
				id = uint32(r.IntN(4000)) << 20 // same low bits
			}
			if _, ok := ref[id]; ok {
				continue
			}
			ri := s.allocRec()
			binary.BigEndian.PutUint32(s.rec(ri).data[4:], id)
			tb.put(id, ri, s, members)
			members = append(members, seqEnt[uint32]{idx: ri})
			ref[id] = ri
		}
		ids := make([]uint32, 0, len(ref))
		for id := range ref {
			ids = append(ids, id)
		}
		r.Shuffle(len(ids), func(i, j int) { ids[i], ids[j] = ids[j], ids[i] })
		halvings := 0
		for k, id := range ids {
			size := len(tb.slots)
			tb.del(id, ref[id], s)
			delete(ref, id)
			if len(tb.slots) == size {
				continue
			}
			halvings++
			checkIDTable(t, &tb, s)
			for _, other := range ids[k+1:] {
				if got := tb.get(other, s); got != ref[other] {
					t.Fatalf("MaxPEs %d: after halving to %d, get(%d) = %d, want %d", maxPEs, len(tb.slots), other, got, ref[other])
				}
			}
			for _, gone := range ids[:k+1] {
				if got := tb.get(gone, s); got != -1 {
					t.Fatalf("MaxPEs %d: removed %d still found (%d)", maxPEs, gone, got)
				}
			}
		}
		if halvings < 8 || tb.n != 0 || len(tb.slots) != idTableMin {
			t.Fatalf("MaxPEs %d: %d halvings, %d entries in %d slots at the end", maxPEs, halvings, tb.n, len(tb.slots))
		}
	}
}
