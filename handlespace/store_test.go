package handlespace

import (
	"errors"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"github.com/go-rserpool/rserpool/policy"
	"github.com/go-rserpool/rserpool/tlv"
)

var t0 = time.Unix(5000, 0)

func newTestStore(t *testing.T, cfg Config) *Store {
	t.Helper()
	if cfg.Rand == nil {
		cfg.Rand = rand.NewPCG(1, 1)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func testPE(id, home uint32) *tlv.PoolElement {
	return &tlv.PoolElement{
		ID: id, HomeServerID: home, RegistrationLife: 30000,
		UserTransport: tlv.Transport{Type: tlv.ParamSCTPTransport, Port: 9000, Addrs: []netip.Addr{netip.MustParseAddr("10.0.0.1")}},
		ASAPTransport: tlv.Transport{Type: tlv.ParamSCTPTransport, Port: 9001, Addrs: []netip.Addr{netip.MustParseAddr("10.0.0.1")}},
		Policy:        tlv.Policy{Type: uint32(policy.RoundRobin)},
	}
}

func mustRegister(t *testing.T, s *Store, h string, pe *tlv.PoolElement, exp time.Time) {
	t.Helper()
	if _, err := s.Register(t0, tlv.PoolHandle(h), pe, exp); err != nil {
		t.Fatal(err)
	}
}

// TestChecksumGolden checks the RFC 5353 PE checksum against values worked
// out by hand: 16-bit big-endian words of the pool handle (odd length padded
// with a zero byte, per PE) and of the PE identifier, one's complement sum
// with end-around carry, then complemented.
func TestChecksumGolden(t *testing.T) {
	s := newTestStore(t, Config{})
	if got := s.Checksum(7); got != 0xffff {
		t.Fatalf("empty owner: %#04x, want 0xffff", got)
	}
	// "ab" = 0x6162; ID 0x00010002 = 0x0001 + 0x0002; sum 0x6165; ~ = 0x9e9a.
	mustRegister(t, s, "ab", testPE(0x00010002, 7), time.Time{})
	if got := s.Checksum(7); got != 0x9e9a {
		t.Fatalf("one PE: %#04x, want 0x9e9a", got)
	}
	// "xyz" = 0x7879 + 0x7a00 (pad); ID 0xffff0001 = 0xffff + 0x0001.
	// 0x6165 + 0x7879 + 0x7a00 + 0xffff + 0x0001 = 0x253de; fold: 0x53de +
	// 0x2 = 0x53e0; ~ = 0xac1f.
	mustRegister(t, s, "xyz", testPE(0xffff0001, 7), time.Time{})
	if got := s.Checksum(7); got != 0xac1f {
		t.Fatalf("two PEs: %#04x, want 0xac1f", got)
	}
	// Another owner does not count; re-registration does not double count.
	mustRegister(t, s, "xyz", testPE(5, 8), time.Time{})
	mustRegister(t, s, "xyz", testPE(0xffff0001, 7), time.Time{})
	if got := s.Checksum(7); got != 0xac1f {
		t.Fatalf("after unrelated changes: %#04x, want 0xac1f", got)
	}
	// Owner 8: "xyz" + ID 5: 0x7879 + 0x7a00 + 0x0000 + 0x0005 = 0xf27e; ~ = 0x0d81.
	if got := s.Checksum(8); got != 0x0d81 {
		t.Fatalf("owner 8: %#04x, want 0x0d81", got)
	}
	// Takeover moves the sums (RFC 5353 §3.9).
	if n := s.TransferOwner(t0, 8, 7); n != 1 {
		t.Fatalf("TransferOwner moved %d, want 1", n)
	}
	// 0x253de + 0xf27e = 0x3465c; fold 0x465c + 3 = 0x465f; ~ = 0xb9a0.
	if got, got8 := s.Checksum(7), s.Checksum(8); got != 0xb9a0 || got8 != 0xffff {
		t.Fatalf("after takeover: %#04x %#04x, want 0xb9a0 0xffff", got, got8)
	}
	s.Deregister(t0, tlv.PoolHandle("xyz"), 5)
	s.Deregister(t0, tlv.PoolHandle("xyz"), 0xffff0001)
	if got := s.Checksum(7); got != 0x9e9a {
		t.Fatalf("after deregistrations: %#04x, want 0x9e9a", got)
	}
}

// TestRegisterConsistency checks the registrar-side rules of RFC 5352 §3.2:
// one policy type and one transport per pool, with the RFC 5354 causes.
func TestRegisterConsistency(t *testing.T) {
	s := newTestStore(t, Config{})
	mustRegister(t, s, "p", testPE(1, 1), time.Time{})
	cases := []struct {
		name string
		mod  func(pe *tlv.PoolElement)
		want *Error
	}{
		{"policy", func(pe *tlv.PoolElement) { pe.Policy = tlv.Policy{Type: uint32(policy.Random)} }, ErrInconsistentPoolingPolicy},
		{"transport", func(pe *tlv.PoolElement) { pe.UserTransport.Type = tlv.ParamTCPTransport }, ErrInconsistentTransportType},
		{"use", func(pe *tlv.PoolElement) { pe.UserTransport.Use = tlv.TransportUseDataPlusControl }, ErrInconsistentDataControlConfig},
		{"no address", func(pe *tlv.PoolElement) { pe.UserTransport.Addrs = nil }, ErrInvalidValues},
		{"bad transport", func(pe *tlv.PoolElement) { pe.UserTransport.Type = tlv.ParamPolicy }, ErrInvalidValues},
		{"unknown policy", func(pe *tlv.PoolElement) { pe.Policy.Type = 0x7777 }, ErrInvalidValues},
		{"policy length", func(pe *tlv.PoolElement) { pe.Policy.Value = []byte{0, 0, 0, 1} }, ErrInvalidValues},
	}
	for _, c := range cases {
		for _, id := range []uint32{1, 2} { // update and insert
			pe := testPE(id, 1)
			c.mod(pe)
			created, err := s.Register(t0, tlv.PoolHandle("p"), pe, time.Time{})
			if created || !errors.Is(err, c.want) {
				t.Errorf("%s id %d: (%v, %v), want %v", c.name, id, created, err, c.want)
			}
			var e *Error
			if !errors.As(err, &e) || e.Cause != c.want.Cause {
				t.Errorf("%s: cause of %v", c.name, err)
			}
		}
	}
	if s.PEs() != 1 {
		t.Fatalf("rejected registrations changed the store: %d PEs", s.PEs())
	}
	if _, err := s.Register(t0, nil, testPE(1, 1), time.Time{}); !errors.Is(err, ErrInvalidValues) {
		t.Fatalf("empty handle: %v", err)
	}
	if _, err := s.Register(t0, tlv.PoolHandle("p"), nil, time.Time{}); !errors.Is(err, ErrInvalidValues) {
		t.Fatalf("nil PE: %v", err)
	}
}

// TestLimits checks that every Config limit is enforced with Lack of
// Resources (RFC 5352 §3.2) and that updates of stored PEs still pass.
func TestLimits(t *testing.T) {
	s := newTestStore(t, Config{MaxPools: 2, MaxPEsPerPool: 2, MaxPEs: 3, MaxPoolHandleSize: 4})
	mustRegister(t, s, "a", testPE(1, 1), time.Time{})
	mustRegister(t, s, "a", testPE(2, 1), time.Time{})
	if _, err := s.Register(t0, tlv.PoolHandle("a"), testPE(3, 1), time.Time{}); !errors.Is(err, ErrLackOfResources) {
		t.Fatalf("MaxPEsPerPool: %v", err)
	}
	mustRegister(t, s, "a", testPE(2, 1), time.Time{}) // update at the limit
	mustRegister(t, s, "b", testPE(1, 1), time.Time{})
	if _, err := s.Register(t0, tlv.PoolHandle("c"), testPE(1, 1), time.Time{}); !errors.Is(err, ErrLackOfResources) {
		t.Fatalf("MaxPools: %v", err)
	}
	if _, err := s.Register(t0, tlv.PoolHandle("b"), testPE(2, 1), time.Time{}); !errors.Is(err, ErrLackOfResources) {
		t.Fatalf("MaxPEs: %v", err)
	}
	if _, err := s.Register(t0, tlv.PoolHandle("abcde"), testPE(2, 1), time.Time{}); !errors.Is(err, ErrInvalidValues) {
		t.Fatalf("MaxPoolHandleSize: %v", err)
	}
	if s.PEs() != 3 || s.Pools() != 2 {
		t.Fatalf("store has %d PEs in %d pools", s.PEs(), s.Pools())
	}
	// Freed room can be used again.
	s.Deregister(t0, tlv.PoolHandle("b"), 1)
	mustRegister(t, s, "c", testPE(1, 1), time.Time{})

	for _, bad := range []Config{{MaxPools: -1}, {MaxPEs: 1 << 31}, {MaxPoolHandleSize: 70000}} {
		if _, err := New(bad); err == nil {
			t.Errorf("New(%+v) accepted", bad)
		}
	}
}

// TestCopies checks that the store does not keep the caller's slices and
// that Lookup returns an independent copy.
func TestCopies(t *testing.T) {
	s := newTestStore(t, Config{})
	pe := testPE(1, 1)
	pe.UserTransport.Addrs = append(pe.UserTransport.Addrs, netip.MustParseAddr("2001:db8::1")) // ext path
	mustRegister(t, s, "p", pe, time.Time{})
	pe.UserTransport.Addrs[0] = netip.MustParseAddr("192.0.2.1")
	got, _, _ := s.Lookup(tlv.PoolHandle("p"), 1)
	if got.UserTransport.Addrs[0] != netip.MustParseAddr("10.0.0.1") || len(got.UserTransport.Addrs) != 2 {
		t.Fatalf("store aliased the caller's addresses: %v", got.UserTransport.Addrs)
	}
	got.UserTransport.Addrs[1] = netip.MustParseAddr("192.0.2.2")
	again, _, _ := s.Lookup(tlv.PoolHandle("p"), 1)
	if again.UserTransport.Addrs[1] != netip.MustParseAddr("2001:db8::1") {
		t.Fatal("Lookup result aliases the store")
	}
}

// TestUnreachableAndSelect: reports count up and a re-registration resets
// them (RFC 5352 §3.5); an unknown pool fails selection with Unknown Pool
// Handle (RFC 5352 §3.5).
func TestUnreachableAndSelect(t *testing.T) {
	s := newTestStore(t, Config{})
	if _, _, err := s.Select(tlv.PoolHandle("none"), 3, nil); !errors.Is(err, ErrUnknownPoolHandle) {
		t.Fatalf("select on unknown pool: %v", err)
	}
	mustRegister(t, s, "p", testPE(1, 1), time.Time{})
	for i := 1; i <= 3; i++ {
		if n, ok := s.ReportUnreachable(t0, tlv.PoolHandle("p"), 1); !ok || n != i {
			t.Fatalf("report %d: %d %v", i, n, ok)
		}
	}
	if _, ok := s.ReportUnreachable(t0, tlv.PoolHandle("p"), 2); ok {
		t.Fatal("report for an unknown PE succeeded")
	}
	if _, info, _ := s.Lookup(tlv.PoolHandle("p"), 1); info.UnreachableReports != 3 {
		t.Fatalf("Lookup after 3 reports: %+v", info)
	}
	mustRegister(t, s, "p", testPE(1, 1), time.Time{})
	if _, info, _ := s.Lookup(tlv.PoolHandle("p"), 1); info.UnreachableReports != 0 || !info.LastUpdate.Equal(t0) {
		t.Fatalf("after re-registration: %+v", info)
	}
	// A removed PE's count goes with it: the PE stored next in its record
	// starts from none.
	s.ReportUnreachable(t0, tlv.PoolHandle("p"), 1)
	mustRegister(t, s, "p", testPE(5, 1), time.Time{})
	s.ReportUnreachable(t0, tlv.PoolHandle("p"), 5)
	s.Deregister(t0, tlv.PoolHandle("p"), 5)
	mustRegister(t, s, "p", testPE(6, 1), time.Time{})
	if _, info, _ := s.Lookup(tlv.PoolHandle("p"), 6); info.UnreachableReports != 0 {
		t.Fatalf("new PE in a removed one's record: %+v", info)
	}
	if n, _ := s.ReportUnreachable(t0, tlv.PoolHandle("p"), 6); n != 1 {
		t.Fatalf("first report of the new PE: %d", n)
	}
	if _, info, _ := s.Lookup(tlv.PoolHandle("p"), 1); info.UnreachableReports != 1 {
		t.Fatalf("PE 1 after one more report: %+v", info)
	}
	s.Deregister(t0, tlv.PoolHandle("p"), 6)
	pes, pol, err := s.Select(tlv.PoolHandle("p"), 5, nil)
	if err != nil || len(pes) != 1 || pes[0].ID != 1 || pol.Type != uint32(policy.RoundRobin) {
		t.Fatalf("select: %v %v %v", pes, pol, err)
	}
}

// TestExpiry checks deadlines: NextExpiry, PopExpired in deadline order,
// SetExpiry moving and clearing a deadline (RFC 5352 §3.3 lifetime expiry).
func TestExpiry(t *testing.T) {
	s := newTestStore(t, Config{})
	for i := uint32(1); i <= 5; i++ {
		mustRegister(t, s, "p", testPE(i, 1), t0.Add(time.Duration(6-i)*time.Second))
	}
	mustRegister(t, s, "p", testPE(9, 1), time.Time{}) // never expires
	if next, ok := s.NextExpiry(); !ok || !next.Equal(t0.Add(time.Second)) {
		t.Fatalf("NextExpiry %v %v", next, ok)
	}
	s.SetExpiry(t0, tlv.PoolHandle("p"), 5, t0.Add(10*time.Second)) // was 1s
	s.SetExpiry(t0, tlv.PoolHandle("p"), 4, time.Time{})            // was 2s: cleared
	var got []uint32
	n := s.PopExpired(t0.Add(5*time.Second), func(h tlv.PoolHandle, pe tlv.PoolElement) {
		if string(h) != "p" {
			t.Errorf("handle %q", h)
		}
		got = append(got, pe.ID)
	})
	if n != 3 || len(got) != 3 || got[0] != 3 || got[1] != 2 || got[2] != 1 {
		t.Fatalf("PopExpired: %d %v, want [3 2 1]", n, got)
	}
	if next, ok := s.NextExpiry(); !ok || !next.Equal(t0.Add(10*time.Second)) {
		t.Fatalf("NextExpiry after pop %v %v", next, ok)
	}
	if s.PEs() != 3 {
		t.Fatalf("%d PEs left, want 3", s.PEs())
	}
}

// TestPageUnderMutation walks the handle table page by page (RFC 5353 §3.5)
// while PEs come and go: a PE stored during the whole walk is returned
// exactly once, and no PE is returned twice.
func TestPageUnderMutation(t *testing.T) {
	s := newTestStore(t, Config{})
	r := rand.New(rand.NewPCG(5, 6))
	pools := []string{"p0", "p1", "p2", "p3"}
	for i := uint32(1); i <= 200; i++ {
		mustRegister(t, s, pools[i%4], testPE(i, 1+i%2), time.Time{})
	}
	stable := map[[2]any]bool{} // PEs never touched during the walk
	for i := uint32(1); i <= 200; i += 2 {
		stable[[2]any{pools[i%4], i}] = true
	}
	seen := map[[2]any]int{}
	var c Cursor
	for {
		entries, next, more := s.Page(c, 7, 0)
		for _, e := range entries {
			for _, pe := range e.PEs {
				seen[[2]any{string(e.PoolHandle), pe.ID}]++
			}
		}
		// Mutate only even IDs: remove some, add new ones, re-create pools.
		for k := 0; k < 5; k++ {
			id := uint32(2 * (1 + r.IntN(150)))
			p := pools[id%4]
			if r.IntN(2) == 0 {
				s.Deregister(t0, tlv.PoolHandle(p), id)
			} else {
				mustRegister(t, s, p, testPE(id, 1), time.Time{})
			}
		}
		if !more {
			break
		}
		c = next
	}
	for k, n := range seen {
		if n != 1 {
			t.Errorf("PE %v returned %d times", k, n)
		}
	}
	for k := range stable {
		if seen[k] != 1 {
			t.Errorf("stable PE %v returned %d times", k, seen[k])
		}
	}
}

// TestOwnersAndAudit: owner iteration, SetOwner, and the mark-and-sweep of
// the RFC 5353 §3.10 audit, where a registration clears the mark.
func TestOwnersAndAudit(t *testing.T) {
	s := newTestStore(t, Config{})
	for i := uint32(1); i <= 6; i++ {
		mustRegister(t, s, "p", testPE(i, 1+i%2), time.Time{})
	}
	count := func(home uint32) int {
		n := 0
		s.ForEachOwnedBy(home, func(_ tlv.PoolHandle, pe tlv.PoolElement) bool {
			if pe.HomeServerID != home {
				t.Errorf("PE %d has home %d, want %d", pe.ID, pe.HomeServerID, home)
			}
			n++
			return true
		})
		return n
	}
	if count(1) != 3 || count(2) != 3 || s.Owned(1) != 3 {
		t.Fatalf("owners: %d %d", count(1), count(2))
	}
	s.SetOwner(t0, tlv.PoolHandle("p"), 1, 1)
	if count(1) != 4 || count(2) != 2 {
		t.Fatalf("after SetOwner: %d %d", count(1), count(2))
	}
	if n := s.Mark(t0, 1); n != 4 {
		t.Fatalf("Mark = %d", n)
	}
	mustRegister(t, s, "p", testPE(2, 1), time.Time{}) // received again: unmarked
	var swept []uint32
	if n := s.Sweep(t0, 1, func(_ tlv.PoolHandle, pe tlv.PoolElement) { swept = append(swept, pe.ID) }); n != 3 {
		t.Fatalf("Sweep = %d (%v)", n, swept)
	}
	if _, _, ok := s.Lookup(tlv.PoolHandle("p"), 2); !ok || s.PEs() != 3 || count(2) != 2 {
		t.Fatalf("after sweep: %d PEs", s.PEs())
	}
}
