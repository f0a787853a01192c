package handlespace

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/go-rserpool/rserpool/policy"
	"github.com/go-rserpool/rserpool/tlv"
)

type largePE struct {
	val []byte
	exp time.Time
}

type largePool struct {
	typ policy.Type
	sel policy.Selector
	pes map[uint32]*largePE
}

// TestStoreLargePools: big pools of the sorted policies sharing the
// store's slot space (records move between pools), re-registrations with
// changed values, deadline changes, PopExpired (bulk and one by one,
// sometimes with a panicking callback) and selections, against selectors
// of their own fed the same operations.
func TestStoreLargePools(t *testing.T) {
	seeds := []uint64{1, 2}
	if raceEnabled {
		seeds = seeds[:1] // half a minute under the race detector otherwise
	}
	for _, seed := range seeds {
		for _, noBulk := range []bool{false, true} {
			t.Run(fmt.Sprint(seed, noBulk), func(t *testing.T) { runLargePools(t, seed, noBulk) })
		}
	}
}

func runLargePools(t *testing.T, seed uint64, noBulk bool) {
	rng := rand.New(rand.NewPCG(seed, 3))
	s := newTestStore(t, Config{})
	s.noBulk = noBulk
	types := []policy.Type{policy.LeastUsed, policy.WeightedRoundRobin, policy.LeastUsedDegradation, policy.RoundRobin, policy.Priority, policy.PriorityLeastUsedDegradation}
	names := []string{"lu", "wrr", "lud", "rr", "pri", "plud"}
	maxID := []int{3000, 800, 2500, 400, 1500, 300}
	mirror := map[string]*largePool{}
	now := t0
	vals := func(typ policy.Type) []byte {
		v := policy.Values{Weight: uint32(1 + rng.IntN(4)), Priority: uint32(rng.IntN(3)),
			Load: uint32(rng.IntN(4)) * 0x10000000, LoadDegradation: uint32(rng.IntN(3)) * 0x01000000}
		return policy.Encode(typ, v).Value
	}
	resync := func(op int) {
		// PEs gone from the store (expired) leave the mirror too.
		for h, p := range mirror {
			for id := range p.pes {
				if _, _, ok := s.View(tlv.PoolHandle(h), id); !ok {
					p.sel.Remove(int32(id))
					delete(p.pes, id)
				}
			}
			if len(p.pes) == 0 {
				delete(mirror, h)
			}
		}
		n := 0
		for _, p := range mirror {
			n += len(p.pes)
		}
		if n != s.PEs() {
			t.Fatalf("op %d: store has %d PEs, mirror %d", op, s.PEs(), n)
		}
	}
	var buf []tlv.PoolElement
	var got, want []int32
	const ops = 60000
	for op := 0; op < ops; op++ {
		now = now.Add(time.Duration(rng.IntN(5)) * time.Millisecond)
		pi := rng.IntN(len(names))
		h, typ := names[pi], types[pi]
		id := uint32(1 + rng.IntN(maxID[pi]))
		switch k := rng.IntN(100); {
		case k < 45:
			pe := testPE(id, 1)
			pe.Policy = tlv.Policy{Type: uint32(typ), Value: vals(typ)}
			var exp time.Time
			if rng.IntN(10) != 0 {
				exp = now.Add(time.Duration(rng.IntN(300000)) * time.Millisecond)
			}
			if _, err := s.Register(now, tlv.PoolHandle(h), pe, exp); err != nil {
				t.Fatalf("op %d: %v", op, err)
			}
			p := mirror[h]
			if p == nil {
				sel, _ := policy.New(typ, nil)
				p = &largePool{typ: typ, sel: sel, pes: map[uint32]*largePE{}}
				mirror[h] = p
			}
			if e := p.pes[id]; e != nil {
				if string(e.val) != string(pe.Policy.Value) {
					_, vv, _ := policy.Decode(pe.Policy)
					p.sel.Update(int32(id), vv)
				}
				e.val, e.exp = pe.Policy.Value, exp
			} else {
				_, vv, _ := policy.Decode(pe.Policy)
				p.sel.Add(int32(id), vv)
				p.pes[id] = &largePE{val: pe.Policy.Value, exp: exp}
			}
		case k < 60:
			_, ok := s.Deregister(now, tlv.PoolHandle(h), id)
			p := mirror[h]
			if (p != nil && p.pes[id] != nil) != ok {
				t.Fatalf("op %d: deregister %s/%d: %v", op, h, id, ok)
			}
			if ok {
				p.sel.Remove(int32(id))
				delete(p.pes, id)
				if len(p.pes) == 0 {
					delete(mirror, h)
				}
			}
		case k < 61 && rng.IntN(30) == 0:
			// A burst: most PEs leave (tombstones pile up, compaction).
			for h, p := range mirror {
				for id := range p.pes {
					if rng.IntN(10) < 7 {
						if _, ok := s.Deregister(now, tlv.PoolHandle(h), id); !ok {
							t.Fatalf("op %d: burst: %s/%d missing", op, h, id)
						}
						p.sel.Remove(int32(id))
						delete(p.pes, id)
					}
				}
				if len(p.pes) == 0 {
					delete(mirror, h)
				}
			}
			checkHeap(t, s)
		case k < 68:
			exp := now.Add(time.Duration(rng.IntN(30000)) * time.Millisecond)
			if rng.IntN(6) == 0 {
				exp = time.Time{}
			}
			ok := s.SetExpiry(now, tlv.PoolHandle(h), id, exp)
			p := mirror[h]
			if (p != nil && p.pes[id] != nil) != ok {
				t.Fatalf("op %d: SetExpiry %s/%d: %v", op, h, id, ok)
			}
			if ok {
				p.pes[id].exp = exp
			}
		case k < 72:
			if rng.IntN(300) == 0 {
				now = now.Add(time.Duration(rng.IntN(150000)) * time.Millisecond)
			}
			// NextExpiry against the mirror.
			var first time.Time
			for _, p := range mirror {
				for _, e := range p.pes {
					if !e.exp.IsZero() && (first.IsZero() || e.exp.Before(first)) {
						first = e.exp
					}
				}
			}
			if gotT, ok := s.NextExpiry(); ok != !first.IsZero() || !gotT.Equal(first) {
				t.Fatalf("op %d: NextExpiry %v %v, want %v", op, gotT, ok, first)
			}
			seen := map[string]bool{}
			panicAt := -1
			if rng.IntN(4) == 0 {
				panicAt = rng.IntN(5)
			}
			calls := 0
			func() {
				defer func() { _ = recover() }()
				s.PopExpired(now, func(hb tlv.PoolHandle, pe tlv.PoolElement) {
					if calls == panicAt {
						panic("x")
					}
					calls++
					key := fmt.Sprint(string(hb), "/", pe.ID)
					if seen[key] {
						t.Errorf("op %d: %s handed out twice", op, key)
					}
					seen[key] = true
					e := mirror[string(hb)].pes[pe.ID]
					if e == nil || e.exp.IsZero() || e.exp.After(now) {
						t.Errorf("op %d: %s expired, not due", op, key)
					}
				})
			}()
			resync(op)
			if panicAt < 0 {
				for h, p := range mirror {
					for id, e := range p.pes {
						if !e.exp.IsZero() && !e.exp.After(now) {
							t.Fatalf("op %d: %s/%d due at %v, kept (now %v)", op, h, id, e.exp, now)
						}
					}
				}
			}
		default:
			n := []int{1, 2, 5, 30}[rng.IntN(4)]
			out, _, err := s.Select(tlv.PoolHandle(h), n, buf)
			buf = out
			p := mirror[h]
			if p == nil {
				if err == nil {
					t.Fatalf("op %d: select of a missing pool", op)
				}
				break
			}
			got = got[:0]
			for _, pe := range out {
				got = append(got, int32(pe.ID))
			}
			want = p.sel.Select(min(n, len(p.pes)), want[:0])
			if !slices.Equal(got, want) {
				t.Fatalf("op %d: %s Select(%d) = %v, want %v", op, h, n, got, want)
			}
		}
		if op%2000 == 0 {
			checkHeap(t, s)
			if op%10000 == 0 {
				t.Logf("op %d: %d PEs", op, s.PEs())
			}
		}
	}
	t.Logf("PEs at the end: %d", s.PEs())
}
