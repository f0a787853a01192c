package handlespace

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/go-rserpool/rserpool/policy"
	"github.com/go-rserpool/rserpool/tlv"
)

// noTailPE is a PE whose record has no room for a postponed deadline: an
// IPv6 user transport fills the inline data.
func noTailPE(id uint32) *tlv.PoolElement {
	pe := testPE(id, 1)
	a := []netip.Addr{netip.MustParseAddr("2001:db8::1")}
	pe.UserTransport.Addrs, pe.ASAPTransport.Addrs = a, a
	return pe
}

func expiryOf(t *testing.T, s *Store, id uint32) time.Time {
	t.Helper()
	_, in, ok := s.Lookup(tlv.PoolHandle("p"), id)
	if !ok {
		t.Fatalf("PE %d missing", id)
	}
	return in.Expiry
}

func lazy(s *Store, id uint32) bool {
	_, ri := s.find(tlv.PoolHandle("p"), id)
	return ri >= 0 && s.rec(ri).flags&flagLazyExp != 0
}

// lazyCount counts the records with a postponed deadline, which must be
// Store.lazy.
func lazyCount(s *Store) int {
	n := 0
	for i := int32(0); i < s.nrec; i++ {
		if r := s.rec(i); r.pool >= 0 && r.flags&flagLazyExp != 0 {
			n++
		}
	}
	return n
}

func popIDs(s *Store, now time.Time) []uint32 {
	var got []uint32
	s.PopExpired(now, func(_ tlv.PoolHandle, pe tlv.PoolElement) { got = append(got, pe.ID) })
	return got
}

// TestExpiryMovedLater: a deadline moved later (keep-alive) keeps the
// PE's place in the expiry heap until it comes first (setExpiry), and
// still the PE expires exactly at its new deadline, NextExpiry and Info
// report it, and a deadline moved back earlier takes effect. Both kinds of
// record are checked: those with room for the postponed deadline and
// those without (which move at once).
func TestExpiryMovedLater(t *testing.T) {
	sec := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Second) }
	for _, tc := range []struct {
		name string
		pe   func(id uint32) *tlv.PoolElement
		lazy bool
	}{
		{"room", func(id uint32) *tlv.PoolElement { return testPE(id, 1) }, true},
		{"no-room", noTailPE, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newTestStore(t, Config{})
			for i := uint32(1); i <= 3; i++ {
				mustRegister(t, s, "p", tc.pe(i), sec(int(i)))
			}
			s.SetExpiry(t0, tlv.PoolHandle("p"), 1, sec(5)) // was 1 s
			if lazy(s, 1) != tc.lazy {
				t.Fatalf("PE 1 postponed in place: %v, want %v", lazy(s, 1), tc.lazy)
			}
			if got := expiryOf(t, s, 1); !got.Equal(sec(5)) {
				t.Fatalf("Info.Expiry %v, want %v", got, sec(5))
			}
			if next, _ := s.NextExpiry(); !next.Equal(sec(2)) {
				t.Fatalf("NextExpiry %v, want %v", next, sec(2))
			}
			if got := popIDs(s, sec(1)); len(got) != 0 {
				t.Fatalf("at the old deadline PopExpired removed %v", got)
			}
			if got := popIDs(s, sec(3)); !slices.Equal(got, []uint32{2, 3}) {
				t.Fatalf("at 3 s PopExpired removed %v, want [2 3]", got)
			}
			if next, _ := s.NextExpiry(); !next.Equal(sec(5)) {
				t.Fatalf("NextExpiry %v, want %v", next, sec(5))
			}

			// Later twice, then back between: the last one counts.
			s.SetExpiry(t0, tlv.PoolHandle("p"), 1, sec(8))
			s.SetExpiry(t0, tlv.PoolHandle("p"), 1, sec(6))
			if next, _ := s.NextExpiry(); !next.Equal(sec(6)) {
				t.Fatalf("NextExpiry %v, want %v", next, sec(6))
			}
			// Later, then earlier than before.
			s.SetExpiry(t0, tlv.PoolHandle("p"), 1, sec(9))
			s.SetExpiry(t0, tlv.PoolHandle("p"), 1, sec(4))
			if lazy(s, 1) {
				t.Fatal("a deadline moved earlier stays postponed")
			}
			if got := expiryOf(t, s, 1); !got.Equal(sec(4)) {
				t.Fatalf("Info.Expiry %v, want %v", got, sec(4))
			}
			if next, _ := s.NextExpiry(); !next.Equal(sec(4)) {
				t.Fatalf("NextExpiry %v, want %v", next, sec(4))
			}
			// Later, then cleared: never expires.
			s.SetExpiry(t0, tlv.PoolHandle("p"), 1, sec(10))
			s.SetExpiry(t0, tlv.PoolHandle("p"), 1, time.Time{})
			if _, ok := s.NextExpiry(); ok {
				t.Fatal("NextExpiry after clearing the only deadline")
			}
			if got := popIDs(s, sec(100)); len(got) != 0 {
				t.Fatalf("PopExpired removed %v after the deadline was cleared", got)
			}
			// Later, then exactly at the time: removed at it, not before.
			s.SetExpiry(t0, tlv.PoolHandle("p"), 1, sec(11))
			s.SetExpiry(t0, tlv.PoolHandle("p"), 1, sec(12))
			if got := popIDs(s, sec(12).Add(-1)); len(got) != 0 {
				t.Fatalf("removed %v 1 ns before the deadline", got)
			}
			if got := popIDs(s, sec(12)); !slices.Equal(got, []uint32{1}) {
				t.Fatalf("at the deadline PopExpired removed %v, want [1]", got)
			}
		})
	}
}

// TestExpiryPostponedOrder: PopExpired hands out PEs in the order of their
// current deadlines when many were moved later, some of them several times.
func TestExpiryPostponedOrder(t *testing.T) {
	s := newTestStore(t, Config{})
	const n = 200
	want := make([]time.Time, n+1)
	for i := uint32(1); i <= n; i++ {
		want[i] = t0.Add(time.Duration(i) * time.Millisecond)
		mustRegister(t, s, "p", testPE(i, 1), want[i])
	}
	// Move every third PE later, past others, some of them twice.
	for i := uint32(1); i <= n; i += 3 {
		want[i] = t0.Add(time.Duration(n+int(i*7%n)) * time.Millisecond)
		s.SetExpiry(t0, tlv.PoolHandle("p"), i, want[i])
		if i%2 == 0 {
			want[i] = want[i].Add(time.Duration(i) * time.Millisecond)
			s.SetExpiry(t0, tlv.PoolHandle("p"), i, want[i])
		}
	}
	var got []time.Time
	s.PopExpired(t0.Add(time.Hour), func(_ tlv.PoolHandle, pe tlv.PoolElement) {
		got = append(got, want[pe.ID])
	})
	if len(got) != n {
		t.Fatalf("expired %d of %d", len(got), n)
	}
	if !slices.IsSortedFunc(got, func(a, b time.Time) int { return a.Compare(b) }) {
		t.Fatalf("PopExpired out of deadline order: %v", got)
	}
}

// TestExpiryPostponedThenReregistered: a re-registration that leaves the
// record no room for a postponed deadline (its encoding grew) still gives
// the PE its new deadline.
func TestExpiryPostponedThenReregistered(t *testing.T) {
	s := newTestStore(t, Config{})
	mustRegister(t, s, "p", testPE(1, 1), t0.Add(time.Second))
	mustRegister(t, s, "p", testPE(2, 1), t0.Add(2*time.Second))
	s.SetExpiry(t0, tlv.PoolHandle("p"), 1, t0.Add(3*time.Second))
	if !lazy(s, 1) {
		t.Fatal("deadline not postponed in place")
	}
	mustRegister(t, s, "p", noTailPE(1), t0.Add(4*time.Second))
	if lazy(s, 1) {
		t.Fatal("postponed in a record without room")
	}
	if got := expiryOf(t, s, 1); !got.Equal(t0.Add(4 * time.Second)) {
		t.Fatalf("Info.Expiry %v", got)
	}
	if got := popIDs(s, t0.Add(3*time.Second)); !slices.Equal(got, []uint32{2}) {
		t.Fatalf("at 3 s removed %v, want [2]", got)
	}
	if got := popIDs(s, t0.Add(4*time.Second)); !slices.Equal(got, []uint32{1}) {
		t.Fatalf("at 4 s removed %v, want [1]", got)
	}
}

// TestPopExpiredBulk runs the same registrations, deadline changes and
// expiries on two stores, one of which always pops expired PEs one by one,
// and requires the same results: PopExpired's PEs in the same order, and
// afterwards the same PEs, deadlines, pools, selections and checksums. The
// expiries are large enough for the one-pass path (popExpiredBulk): pools
// whose PEs all go at once, pools that keep some, postponed deadlines,
// PEs without one, and registrations into the records and pools freed.
func TestPopExpiredBulk(t *testing.T) {
	bulk, single := newTestStore(t, Config{}), newTestStore(t, Config{})
	single.noBulk = true
	stores := []*Store{bulk, single}
	rng := rand.New(rand.NewPCG(3, 4))
	ms := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Millisecond) }
	pools := []string{"a", "b", "c", "d", "e"} // e: every PE has a deadline
	used := map[int]bool{}
	nextID := uint32(1)
	register := func(n int) {
		for range n {
			h := pools[rng.IntN(len(pools))]
			pe := testPE(nextID, uint32(1+rng.IntN(3)))
			pe.Policy = tlv.Policy{Type: uint32(policy.LeastUsed), Value: policy.AppendValue(nil, policy.LeastUsed, policy.Values{Load: rng.Uint32N(4) << 20})}
			var exp time.Time
			if rng.IntN(10) != 0 || h == "e" {
				d := rng.IntN(1_000_000)
				for used[d] { // distinct deadlines: one order for both stores
					d = rng.IntN(1_000_000)
				}
				used[d] = true
				exp = ms(d)
			}
			for _, s := range stores {
				if _, err := s.Register(t0, tlv.PoolHandle(h), pe, exp); err != nil {
					t.Fatal(err)
				}
			}
			nextID++
		}
	}
	postpone := func() {
		for id := uint32(1); id < nextID; id++ {
			if rng.IntN(3) != 0 {
				continue
			}
			d := 1_000_000 + rng.IntN(1_000_000)
			for used[d] {
				d = 1_000_000 + rng.IntN(1_000_000)
			}
			used[d] = true
			for _, s := range stores {
				for _, h := range pools {
					s.SetExpiry(t0, tlv.PoolHandle(h), id, ms(d))
				}
			}
		}
	}
	compare := func(step string) {
		t.Helper()
		for _, h := range pools {
			var got [2][]uint32
			for i, s := range stores {
				s.ForEachPE(tlv.PoolHandle(h), func(pe tlv.PoolElement, in Info) bool {
					got[i] = append(got[i], pe.ID, uint32(in.Expiry.UnixMilli()))
					return true
				})
				sel, _, _ := s.Select(tlv.PoolHandle(h), 5, nil)
				for _, pe := range sel {
					got[i] = append(got[i], pe.ID)
				}
			}
			if !slices.Equal(got[0], got[1]) {
				t.Fatalf("%s: pool %s: bulk %v, one by one %v", step, h, got[0], got[1])
			}
		}
		for home := uint32(1); home <= 3; home++ {
			if a, b := bulk.Checksum(home), single.Checksum(home); a != b {
				t.Fatalf("%s: checksum of %d: %#x, %#x", step, home, a, b)
			}
		}
		na, oka := bulk.NextExpiry()
		nb, okb := single.NextExpiry()
		if bulk.PEs() != single.PEs() || bulk.Pools() != single.Pools() || oka != okb || !na.Equal(nb) {
			t.Fatalf("%s: %d PEs %d pools next %v; one by one %d %d %v", step, bulk.PEs(), bulk.Pools(), na, single.PEs(), single.Pools(), nb)
		}
		if got := lazyCount(bulk); got != bulk.lazy {
			t.Fatalf("%s: %d postponed, Store.lazy %d", step, got, bulk.lazy)
		}
	}
	register(600)
	for round, until := range []int{200_000, 500_000, 1_500_000, 1_600_000, 3_000_000} {
		postpone()
		var got [2][]uint32
		for i, s := range stores {
			s.PopExpired(ms(until), func(_ tlv.PoolHandle, pe tlv.PoolElement) { got[i] = append(got[i], pe.ID) })
		}
		if !slices.Equal(got[0], got[1]) || len(got[0]) == 0 {
			t.Fatalf("round %d: bulk expired %v, one by one %v", round, got[0], got[1])
		}
		compare(fmt.Sprintf("round %d", round))
		register(300)
		compare(fmt.Sprintf("round %d, registered", round))
	}
}
