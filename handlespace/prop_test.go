package handlespace

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/go-rserpool/rserpool/policy"
	"github.com/go-rserpool/rserpool/tlv"
)

type opGen struct {
	r      *rand.Rand
	now    time.Time
	hs     []string
	ptypes []policy.Type
}

func (g *opGen) handle() string { return g.hs[g.r.IntN(len(g.hs))] }

func (g *opGen) addr() netip.Addr {
	if g.r.IntN(4) == 0 {
		var b [16]byte
		b[0], b[1], b[15] = 0x20, 0x01, byte(g.r.IntN(256))
		return netip.AddrFrom16(b)
	}
	return netip.AddrFrom4([4]byte{10, 0, byte(g.r.IntN(256)), byte(g.r.IntN(256))})
}

func putU32s(vs ...uint32) []byte {
	var b []byte
	for _, v := range vs {
		b = binary.BigEndian.AppendUint32(b, v)
	}
	return b
}

// pe builds a PE for pool h: mostly consistent with the pool's policy and
// transport, sometimes not, sometimes invalid, sometimes needing ext data.
func (g *opGen) pe(h string) *tlv.PoolElement {
	hi := slices.Index(g.hs, h)
	pt := g.ptypes[hi%len(g.ptypes)]
	if g.r.IntN(30) == 0 {
		pt = g.ptypes[g.r.IntN(len(g.ptypes))]
	}
	pe := &tlv.PoolElement{
		ID:               uint32(1 + g.r.IntN(40)),
		HomeServerID:     uint32(1 + g.r.IntN(3)),
		RegistrationLife: int32(g.r.IntN(30000)),
		Policy:           tlv.Policy{Type: uint32(pt)},
	}
	switch pt {
	case policy.LeastUsed:
		pe.Policy.Value = putU32s(uint32(g.r.IntN(4)) * (0xffffffff / 4))
	case policy.WeightedRandom:
		pe.Policy.Value = putU32s(uint32(1 + g.r.IntN(5)))
	case policy.LeastUsedDegradationDPF:
		pe.Policy.Value = putU32s(uint32(g.r.IntN(100)), 7, 8, 9)
	}
	if g.r.IntN(50) == 0 {
		pe.Policy.Value = append(pe.Policy.Value, 1, 2, 3, 4) // wrong length
	}
	if g.r.IntN(200) == 0 {
		pe.Policy.Type = 0x12345 // unknown
	}
	ut := tlv.ParamSCTPTransport
	if g.r.IntN(40) == 0 {
		ut = tlv.ParamTCPTransport
	}
	use := tlv.TransportUseDataOnly
	if g.r.IntN(40) == 0 {
		use = tlv.TransportUseDataPlusControl
	}
	pe.UserTransport = tlv.Transport{Type: ut, Port: uint16(g.r.IntN(65536)), Use: use, Addrs: []netip.Addr{g.addr()}}
	if g.r.IntN(10) == 0 {
		pe.UserTransport.Addrs = append(pe.UserTransport.Addrs, g.addr())
	}
	if g.r.IntN(100) == 0 {
		pe.UserTransport.Addrs = nil // invalid
	}
	if g.r.IntN(4) != 0 {
		pe.ASAPTransport = tlv.Transport{Type: tlv.ParamSCTPTransport, Port: uint16(g.r.IntN(65536)), Addrs: []netip.Addr{g.addr()}}
		if g.r.IntN(10) == 0 {
			pe.ASAPTransport.Addrs = append(pe.ASAPTransport.Addrs, g.addr())
		}
	}
	if g.r.IntN(20) == 0 {
		pe.Unknown = []tlv.RawParam{{Type: 0x8123, Value: []byte{1, 2, 3}, Index: 4}}
	}
	return pe
}

func causeOf(err error) (tlv.CauseCode, bool) {
	var e *Error
	if errors.As(err, &e) {
		return e.Cause, true
	}
	return 0, false
}

// TestAgainstReference runs a seeded random sequence of 100k operations on a
// Store and on refStore and compares every answer (RFC 5352 §3.2-3.5,
// RFC 5353 §3.5-3.10).
func TestAgainstReference(t *testing.T) {
	ops := 100000
	if testing.Short() {
		ops = 20000
	}
	for _, seed := range []uint64{1, 2} {
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) { runAgainstReference(t, seed, ops) })
	}
}

func runAgainstReference(t *testing.T, seed uint64, ops int) {
	g := &opGen{
		r:   rand.New(rand.NewPCG(seed, 99)),
		now: time.Unix(1000, 0),
		// odd and even lengths, one at the handle size limit, one over it
		hs:     []string{"a", "pool-1", "pool-22", "rr", "lu", "wr", "x", "0123456789abcdef0123456789abcdef", "0123456789abcdef0123456789abcdef!", ""},
		ptypes: []policy.Type{policy.RoundRobin, policy.LeastUsed, policy.LeastUsed, policy.RoundRobin, policy.LeastUsed, policy.WeightedRandom, policy.LeastUsedDegradationDPF},
	}
	cfg := Config{MaxPools: 6, MaxPEsPerPool: 30, MaxPEs: 120, MaxPoolHandleSize: 32,
		Rand: rand.NewPCG(seed, 7)}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ref := newRef(cfg)
	var buf []tlv.PoolElement
	stats := map[string]int{}
	defer func() { t.Logf("stats: %v", stats) }()
	for op := 0; op < ops; op++ {
		g.now = g.now.Add(time.Duration(g.r.IntN(200)) * time.Millisecond)
		h := g.handle()
		id := uint32(1 + g.r.IntN(40))
		switch k := g.r.IntN(100); {
		case k < 40: // register
			pe := g.pe(h)
			var exp time.Time
			if g.r.IntN(8) != 0 {
				exp = g.now.Add(time.Duration(g.r.IntN(20000)) * time.Millisecond)
			}
			created, err := s.Register(g.now, tlv.PoolHandle(h), pe, exp)
			rc, rcause, rok := ref.register(h, pe, exp, g.now)
			cause, isErr := causeOf(err)
			if (err == nil) != rok || created != rc || (isErr && cause != rcause) || (err != nil && !isErr) {
				t.Fatalf("op %d register %q %+v: got (%v, %v), want (%v, cause %v ok %v)", op, h, pe, created, err, rc, rcause, rok)
			}
			stats[fmt.Sprint("register created=", created, " cause=", cause)]++
			if err != nil && !errors.Is(err, &Error{Cause: rcause}) {
				t.Fatalf("op %d: errors.Is fails for %v", op, err)
			}
			// The store must not alias the caller's PE.
			if len(pe.UserTransport.Addrs) > 0 {
				pe.UserTransport.Addrs[0] = netip.MustParseAddr("192.0.2.99")
			}
			if len(pe.Policy.Value) > 0 {
				pe.Policy.Value[0] ^= 0xff
			}
		case k < 48: // deregister
			got, ok := s.Deregister(g.now, tlv.PoolHandle(h), id)
			want, rok := ref.remove(h, id)
			if ok != rok || (ok && !samePE(got, want)) {
				t.Fatalf("op %d deregister %q/%d: got %v %+v, want %v %+v", op, h, id, ok, got, rok, want)
			}
		case k < 56: // lookup
			got, info, ok := s.Lookup(tlv.PoolHandle(h), id)
			e := ref.get(h, id)
			if ok != (e != nil) {
				t.Fatalf("op %d lookup %q/%d: got %v", op, h, id, ok)
			}
			if ok {
				want := Info{LastUpdate: e.updated, Expiry: e.expiry, UnreachableReports: e.reports, Marked: e.marked}
				if !samePE(got, e.pe) || !info.LastUpdate.Equal(want.LastUpdate) || !info.Expiry.Equal(want.Expiry) ||
					info.UnreachableReports != want.UnreachableReports || info.Marked != want.Marked {
					t.Fatalf("op %d lookup %q/%d: got %+v %+v, want %+v %+v", op, h, id, got, info, e.pe, want)
				}
			}
		case k < 64: // select
			n := []int{1, 3, 16, 0, 50}[g.r.IntN(5)]
			got, pol, err := s.Select(tlv.PoolHandle(h), n, buf)
			buf = got
			p := ref.pools[h]
			if p == nil {
				if !errors.Is(err, ErrUnknownPoolHandle) {
					t.Fatalf("op %d select %q: err %v, want unknown pool handle", op, h, err)
				}
				break
			}
			if err != nil || pol.Type != p.ptype || len(got) != min(n, len(p.pes)) {
				t.Fatalf("op %d select %q n=%d: %d PEs, policy %v, err %v; pool has %d", op, h, n, len(got), pol, err, len(p.pes))
			}
			if len(got) > 0 && !slices.Equal(pol.Value, got[0].Policy.Value) {
				t.Fatalf("op %d select: overall policy %v, first PE %v", op, pol, got[0].Policy)
			}
			switch policy.Type(p.ptype) {
			case policy.RoundRobin, policy.LeastUsed:
				want := ref.selectDet(h, n)
				stats[fmt.Sprint("select-det-items")] += len(want)
				for i := range want {
					if !samePE(got[i], want[i]) {
						t.Fatalf("op %d select %q (%v) n=%d item %d: got PE %d, want %d", op, h, policy.Type(p.ptype), n, i, got[i].ID, want[i].ID)
					}
				}
			default:
				seen := map[uint32]bool{}
				for _, pe := range got {
					e := ref.get(h, pe.ID)
					if e == nil || seen[pe.ID] || !samePE(pe, e.pe) {
						t.Fatalf("op %d select %q: bad or repeated PE %+v", op, h, pe)
					}
					seen[pe.ID] = true
				}
			}
		case k < 68: // unreachable
			n, ok := s.ReportUnreachable(g.now, tlv.PoolHandle(h), id)
			e := ref.get(h, id)
			if e != nil {
				e.reports++
			}
			if ok != (e != nil) || (ok && n != e.reports) {
				t.Fatalf("op %d unreachable: got %d %v", op, n, ok)
			}
		case k < 74: // set expiry
			var exp time.Time
			if g.r.IntN(5) != 0 {
				exp = g.now.Add(time.Duration(g.r.IntN(20000)) * time.Millisecond)
			}
			ok := s.SetExpiry(g.now, tlv.PoolHandle(h), id, exp)
			e := ref.get(h, id)
			if e != nil {
				e.expiry = exp
			}
			if ok != (e != nil) {
				t.Fatalf("op %d setexpiry: got %v", op, ok)
			}
		case k < 80: // expire
			var got []refItem
			var lastExp time.Time
			n := s.PopExpired(g.now, func(hh tlv.PoolHandle, pe tlv.PoolElement) {
				got = append(got, refItem{string(hh), ClonePoolElement(pe)})
			})
			_ = lastExp
			want := ref.popExpired(g.now)
			stats["expired"] += len(want)
			if n != len(want) || len(got) != n {
				t.Fatalf("op %d expire: %d (%d), want %d", op, n, len(got), len(want))
			}
			sort.Slice(got, func(i, j int) bool {
				if got[i].handle != got[j].handle {
					return got[i].handle < got[j].handle
				}
				return got[i].pe.ID < got[j].pe.ID
			})
			sort.Slice(want, func(i, j int) bool {
				if want[i].handle != want[j].handle {
					return want[i].handle < want[j].handle
				}
				return want[i].pe.ID < want[j].pe.ID
			})
			for i := range want {
				if got[i].handle != want[i].handle || !samePE(got[i].pe, want[i].pe) {
					t.Fatalf("op %d expire item %d: got %v, want %v", op, i, got[i], want[i])
				}
			}
		case k < 83: // set owner
			home := uint32(1 + g.r.IntN(4))
			ok := s.SetOwner(g.now, tlv.PoolHandle(h), id, home)
			e := ref.get(h, id)
			if e != nil {
				e.pe.HomeServerID = home
			}
			if ok != (e != nil) {
				t.Fatalf("op %d setowner: %v", op, ok)
			}
		case k < 84: // transfer owner
			from, to := uint32(1+g.r.IntN(4)), uint32(1+g.r.IntN(4))
			n := s.TransferOwner(g.now, from, to)
			want := 0
			if from != to {
				for _, p := range ref.pools {
					for _, e := range p.pes {
						if e.pe.HomeServerID == from {
							e.pe.HomeServerID = to
							want++
						}
					}
				}
			}
			if n != want {
				t.Fatalf("op %d transfer %d->%d: %d, want %d", op, from, to, n, want)
			}
		case k < 86: // mark
			home := uint32(1 + g.r.IntN(4))
			n := s.Mark(g.now, home)
			want := 0
			for _, p := range ref.pools {
				for _, e := range p.pes {
					if e.pe.HomeServerID == home {
						e.marked = true
						want++
					}
				}
			}
			if n != want {
				t.Fatalf("op %d mark: %d want %d", op, n, want)
			}
		case k < 87: // sweep
			home := uint32(1 + g.r.IntN(4))
			var got []uint32
			n := s.Sweep(g.now, home, func(_ tlv.PoolHandle, pe tlv.PoolElement) { got = append(got, pe.ID) })
			var want []uint32
			for _, hh := range slices.Clone(ref.order) {
				for _, e := range slices.Clone(ref.pools[hh].pes) {
					if e.pe.HomeServerID == home && e.marked {
						want = append(want, e.pe.ID)
						ref.remove(hh, e.pe.ID)
					}
				}
			}
			slices.Sort(got)
			slices.Sort(want)
			if n != len(want) || !slices.Equal(got, want) {
				t.Fatalf("op %d sweep: %v want %v", op, got, want)
			}
		case k < 90: // paging, whole walk
			owner := uint32(g.r.IntN(4))
			size := 1 + g.r.IntN(20)
			var got []refItem
			var c Cursor
			for pages := 0; ; pages++ {
				entries, next, more := s.Page(c, size, owner)
				cnt := 0
				for _, e := range entries {
					for _, pe := range e.PEs {
						got = append(got, refItem{string(e.PoolHandle), pe})
						cnt++
					}
				}
				if cnt > size || (more && cnt != size) || pages > 1000 {
					t.Fatalf("op %d page: %d PEs of %d, more %v", op, cnt, size, more)
				}
				if !more {
					break
				}
				c = next
			}
			want := ref.all(owner)
			stats["page-items"] += len(want)
			if len(got) != len(want) {
				t.Fatalf("op %d page walk: %d PEs, want %d", op, len(got), len(want))
			}
			for i := range want {
				if got[i].handle != want[i].handle || !samePE(got[i].pe, want[i].pe) {
					t.Fatalf("op %d page item %d: %v, want %v", op, i, got[i], want[i])
				}
			}
		default: // checksums, counts, next expiry
			for home := uint32(0); home <= 4; home++ {
				if got, want := s.Checksum(home), ref.checksum(home); got != want {
					t.Fatalf("op %d checksum(%d) = %#04x, want %#04x", op, home, got, want)
				}
			}
			if s.PEs() != ref.numPEs() || s.Pools() != len(ref.pools) {
				t.Fatalf("op %d counts: %d PEs %d pools, want %d %d", op, s.PEs(), s.Pools(), ref.numPEs(), len(ref.pools))
			}
			if got := lazyCount(s); got != s.lazy {
				t.Fatalf("op %d: %d records postponed, Store.lazy %d", op, got, s.lazy)
			}
			gt, gok := s.NextExpiry()
			wt, wok := ref.nextExpiry()
			if gok != wok || !gt.Equal(wt) {
				t.Fatalf("op %d next expiry %v %v, want %v %v", op, gt, gok, wt, wok)
			}
		}
	}
}
