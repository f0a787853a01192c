package enrp

import (
	"errors"
	"fmt"
	"net/netip"
	"testing"

	"github.com/go-rserpool/rserpool/handlespace"
	"github.com/go-rserpool/rserpool/tlv"
	"github.com/go-rserpool/rserpool/transport"
)

// refused registers pe and returns the cause of a refusal, or 0 for R=0.
func (f *srvFixture) refused(aid AssocID, h string, pe tlv.PoolElement) tlv.CauseCode {
	f.t.Helper()
	r := srvOne[*tlv.RegistrationResponse](f.t, f.feed(aid, reg(h, pe)))
	if !r.Reject {
		return 0
	}
	return r.Error.First()
}

// The pool limits count, per association and per source address, the
// pools in which it holds PEs of its own (ASAPConfig.MaxPoolsPerAssoc):
// a pool joined by B stays charged to B after its creator A left it, and
// A may then create another; re-registrations at the limit are accepted.
func TestServerPoolLimitRule(t *testing.T) {
	f := newSrv(t, func(c *ASAPConfig) { c.MaxPoolsPerAssoc, c.MaxPoolsPerSource = 2, 3 }, handlespace.Config{})
	f.accept(1, "10.0.0.2") // A
	f.accept(2, "10.0.0.3") // B
	f.accept(3, "10.0.0.2") // A's neighbour on the same source
	f.register(1, "p1", rrPE(1, "10.0.0.2"))
	f.register(1, "p2", rrPE(2, "10.0.0.2"))
	f.register(1, "p2", rrPE(3, "10.0.0.2")) // same pool: no new charge
	f.register(1, "p2", rrPE(3, "10.0.0.2")) // re-registration
	if c := f.refused(1, "p3", rrPE(4, "10.0.0.2")); c != tlv.CauseLackOfResources {
		t.Fatalf("third pool of one association: cause %v, want Lack of Resources", c)
	}
	f.register(2, "p1", rrPE(10, "10.0.0.3")) // B joins p1
	f.feed(1, &tlv.Deregistration{PoolHandle: tlv.PoolHandle("p1"), PEID: 1})
	f.register(1, "p3", rrPE(4, "10.0.0.2")) // A left p1: room for p3
	// B holds p1 alone now and is charged for it.
	f.register(2, "p4", rrPE(11, "10.0.0.3"))
	if c := f.refused(2, "p5", rrPE(12, "10.0.0.3")); c != tlv.CauseLackOfResources {
		t.Errorf("B's third pool (p1 kept alive, p4): cause %v", c)
	}
	// Source 10.0.0.2 holds p2 and p3; its other association may add one
	// more pool, not two.
	f.register(3, "p6", rrPE(20, "10.0.0.2"))
	if c := f.refused(3, "p7", rrPE(21, "10.0.0.2")); c != tlv.CauseLackOfResources {
		t.Errorf("fourth pool of one source: cause %v", c)
	}
	f.register(3, "p2", rrPE(22, "10.0.0.2")) // joining a pool of the source: no new charge
	// Losing A frees the source's share.
	f.c.HandleLost(f.now, 1)
	f.c.Outbox()
	f.accept(4, "10.0.0.2")
	f.register(4, "p7", rrPE(21, "10.0.0.2"))
	if len(f.c.srcs) != 2 {
		t.Errorf("%d sources counted, want 2", len(f.c.srcs))
	}
	f.c.HandleLost(f.now, 3)
	f.c.HandleLost(f.now, 4)
	f.c.HandleLost(f.now, 2)
	if len(f.c.srcs) != 0 {
		t.Errorf("%d sources still counted after every association left", len(f.c.srcs))
	}
}

// Unlimited turns each limit off; the defaults apply to zero fields and
// other negative values are configuration errors.
func TestServerLimitsConfig(t *testing.T) {
	c, err := newTestCore(ASAPConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if c.cfg.MaxPESize != DefaultMaxPESize || c.cfg.MaxPoolsPerAssoc != DefaultMaxPoolsPerAssoc ||
		c.cfg.MaxPoolsPerSource != DefaultMaxPoolsPerSource || c.cfg.MaxPEsPerSource != DefaultMaxPEsPerSource {
		t.Errorf("defaults not applied: %+v", c.cfg)
	}
	for _, cfg := range []ASAPConfig{
		{MaxPESize: -2},
		{MaxPoolsPerAssoc: -2},
		{MaxPoolsPerSource: -5},
		{MaxPEsPerSource: -2},
		{AnnounceAddrs: announceAddrs(3000)},
	} {
		if _, err := newTestCore(cfg); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%+v: err %v", cfg, err)
		}
	}

	f := newSrv(t, func(c *ASAPConfig) {
		c.AddressCheck = AddressCheckOff
		c.MaxPESize, c.MaxPoolsPerAssoc, c.MaxPoolsPerSource, c.MaxPEsPerSource = Unlimited, Unlimited, Unlimited, Unlimited
		c.MaxPEsPerAssoc, c.AssocRate = Unlimited, Unlimited
	}, handlespace.Config{})
	f.accept(1, "10.0.0.2")
	pe := rrPE(1, "10.0.0.2")
	pe.UserTransport = tlv.NewSCTPTransport(7000, tlv.TransportUseDataOnly, ipv6s(200)...)
	f.register(1, "p", pe)
	for i := range DefaultMaxPoolsPerSource + 1 {
		f.register(1, fmt.Sprintf("q%d", i), rrPE(uint32(i+2), "10.0.0.2"))
	}

	g := newSrv(t, func(c *ASAPConfig) { c.MaxPEsPerSource = 2 }, handlespace.Config{})
	g.accept(1, "10.0.0.2")
	g.accept(2, "10.0.0.2")
	g.register(1, "p", rrPE(1, "10.0.0.2"))
	g.register(2, "p", rrPE(2, "10.0.0.2"))
	if c := g.refused(2, "p", rrPE(3, "10.0.0.2")); c != tlv.CauseLackOfResources {
		t.Errorf("third PE of a source limited to 2: cause %v", c)
	}
}

// Stats count the PEs left out of resolutions.
func TestServerStatsPEsLeftOut(t *testing.T) {
	f := newSrv(t, func(c *ASAPConfig) { c.AddressCheck = AddressCheckOff }, handlespace.Config{})
	f.accept(1, "10.0.0.2")
	for id := uint32(1); id <= 60; id++ {
		pe := rrPE(id, "10.0.0.2")
		pe.UserTransport = tlv.NewSCTPTransport(7000, tlv.TransportUseDataOnly, ipv6s(60)...)
		f.register(1, "big", pe)
	}
	r := srvOne[*tlv.HandleResolutionResponse](t, f.sendRaw(1, &tlv.HandleResolution{PoolHandle: tlv.PoolHandle("big"), HasItems: true, Items: 60}))
	if got := f.c.Stats().PEsLeftOut; got != uint64(60-len(r.PEs)) || got == 0 {
		t.Errorf("PEsLeftOut = %d with %d of 60 PEs sent", got, len(r.PEs))
	}
}

// newTestCore returns a core with server ID 1 and an empty store.
func newTestCore(cfg ASAPConfig) (*Core, error) {
	return newCore(1, cfg, handlespace.Config{}, false, logger(nil))
}

// announceAddrs returns n SCTP addresses, too many for one Server
// Announce when n is in the thousands.
func announceAddrs(n int) []transport.Addr {
	as := make([]transport.Addr, n)
	for i, a := range ipv6s(n) {
		as[i] = transport.Addr{Kind: transport.KindSCTP, AddrPort: netip.AddrPortFrom(a, 3863)}
	}
	return as
}
