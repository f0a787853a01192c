package handlespace

import (
	"math/rand/v2"
	"testing"
)

// TestIDTable checks the PE-ID hash table against a map under random
// inserts and deletes, including colliding and clustered keys.
func TestIDTable(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	var tb idTable
	tb.init(12345)
	ref := map[uint32]int32{}
	for op := 0; op < 200000; op++ {
		id := uint32(r.IntN(3000))
		if r.IntN(3) == 0 {
			id = uint32(r.IntN(50)) << 26 // same low bits
		}
		got := tb.get(id)
		want, ok := ref[id]
		if !ok {
			want = -1
		}
		if got != want {
			t.Fatalf("op %d get(%d) = %d, want %d", op, id, got, want)
		}
		if ok && r.IntN(2) == 0 {
			tb.del(id)
			delete(ref, id)
		} else if !ok {
			tb.put(id, int32(op))
			ref[id] = int32(op)
		}
		if tb.n != len(ref) {
			t.Fatalf("op %d: n %d, want %d", op, tb.n, len(ref))
		}
	}
}
