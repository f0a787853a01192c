package enrp

import (
	"bytes"
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/go-rserpool/rserpool/asap"
	"github.com/go-rserpool/rserpool/handlespace"
	"github.com/go-rserpool/rserpool/policy"
	"github.com/go-rserpool/rserpool/tlv"
	"github.com/go-rserpool/rserpool/transport"
)

// Tests of the registrar side of ASAP (RFC 5352 §3.2-3.7), driving the
// Core message by message with an explicit now.

const srvID = 0x5e4e4001

var srvT0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

type srvFixture struct {
	t   *testing.T
	c   *Core
	st  *handlespace.Store
	now time.Time
}

func newSrv(t *testing.T, mod func(*ASAPConfig), hs handlespace.Config) *srvFixture {
	t.Helper()
	f := &srvFixture{t: t, now: srvT0}
	var cfg ASAPConfig
	if mod != nil {
		mod(&cfg)
	}
	c, err := newCore(srvID, cfg, hs, false, logger(nil))
	if err != nil {
		t.Fatal(err)
	}
	f.c, f.st = c, c.store
	return f
}

func srvMem(s string) transport.Addr {
	return transport.Addr{Kind: transport.KindMem, AddrPort: netip.MustParseAddrPort(s)}
}

// accept opens association id from ip.
func (f *srvFixture) accept(id AssocID, ip string) {
	f.c.HandleAccepted(f.now, id, AssocInfo{Local: srvMem("10.0.0.1:3863"), Remote: srvMem(ip + ":40000")})
}

// feed sends m through the codec into the core and returns the outputs.
func (f *srvFixture) feed(id AssocID, m tlv.ASAPMessage) []Output {
	f.t.Helper()
	b, err := tlv.Marshal(m)
	if err != nil {
		f.t.Fatalf("marshal %T: %v", m, err)
	}
	return f.raw(id, b)
}

func (f *srvFixture) raw(id AssocID, b []byte) []Output {
	f.c.HandleASAP(f.now, id, b)
	return srvCopy(f.t, f.c.Outbox())
}

func (f *srvFixture) tick(d time.Duration) []Output {
	f.now = f.now.Add(d)
	f.c.HandleTimeout(f.now)
	return srvCopy(f.t, f.c.Outbox())
}

// srvCopy re-parses every sent message, so that the outputs outlive the
// next call (as a driver encodes them at once) and are known to encode.
func srvCopy(t *testing.T, outs []Output) []Output {
	t.Helper()
	r := make([]Output, 0, len(outs))
	for _, o := range outs {
		if s, ok := o.(SendASAP); ok {
			b, err := tlv.Marshal(s.Msg)
			if err != nil {
				t.Fatalf("marshal %T: %v", s.Msg, err)
			}
			m, err := tlv.ParseASAP(b)
			if err != nil {
				t.Fatalf("reparse %T: %v", s.Msg, err)
			}
			o = SendASAP{Assoc: s.Assoc, Msg: m}
		}
		r = append(r, o)
	}
	return r
}

func srvOnly[T any](outs []Output) []T {
	var r []T
	for _, o := range outs {
		if v, ok := o.(T); ok {
			r = append(r, v)
		}
	}
	return r
}

func srvMsgs[M tlv.ASAPMessage](outs []Output) []M {
	var r []M
	for _, s := range srvOnly[SendASAP](outs) {
		if m, ok := s.Msg.(M); ok {
			r = append(r, m)
		}
	}
	return r
}

func srvOne[M tlv.ASAPMessage](t *testing.T, outs []Output) M {
	t.Helper()
	ms := srvMsgs[M](outs)
	if len(ms) != 1 {
		t.Fatalf("want one %T, got %d in %#v", *new(M), len(ms), outs)
	}
	return ms[0]
}

func rrPE(id uint32, ip string) tlv.PoolElement {
	return tlv.PoolElement{
		ID:               id,
		RegistrationLife: 60000,
		UserTransport:    tlv.NewSCTPTransport(7000, tlv.TransportUseDataOnly, netip.MustParseAddr(ip)),
		Policy:           policy.Encode(policy.RoundRobin, policy.Values{}),
	}
}

func reg(h string, pe tlv.PoolElement) *tlv.Registration {
	return &tlv.Registration{PoolHandle: tlv.PoolHandle(h), PE: pe}
}

// register registers PE id from association aid at ip and checks R=0.
func (f *srvFixture) register(aid AssocID, h string, pe tlv.PoolElement) []Output {
	f.t.Helper()
	outs := f.feed(aid, reg(h, pe))
	r := srvOne[*tlv.RegistrationResponse](f.t, outs)
	if r.Reject || r.Error != nil {
		f.t.Fatalf("registration of %d refused: %v", pe.ID, r.Error)
	}
	return outs
}

// RFC 5352 §3.2: an accepted registration is answered with R=0, the pool
// handle and PE ID; the registrar becomes the PE's home and takes the ASAP
// transport from the association.
func TestServerRegistrationAccepted(t *testing.T) {
	f := newSrv(t, nil, handlespace.Config{})
	f.accept(1, "10.0.0.2")
	outs := f.register(1, "echo", rrPE(42, "10.0.0.2"))
	r := srvOne[*tlv.RegistrationResponse](t, outs)
	if string(r.PoolHandle) != "echo" || r.PEID != 42 {
		t.Fatalf("response names %q/%d", r.PoolHandle, r.PEID)
	}
	if ev := storedEvs(outs); len(ev) != 1 || !(ev[0].Kind == EventRegistered) || ev[0].PEID != 42 {
		t.Fatalf("stored events %v", ev)
	}
	pe, info, ok := f.st.Lookup(tlv.PoolHandle("echo"), 42)
	if !ok {
		t.Fatal("PE not stored")
	}
	if pe.HomeServerID != srvID {
		t.Errorf("home %x, want %x", pe.HomeServerID, srvID)
	}
	if want := srvT0.Add(60 * time.Second); !info.Expiry.Equal(want) {
		t.Errorf("expiry %v, want %v", info.Expiry, want)
	}
	if pe.ASAPTransport.Type != tlv.ParamSCTPTransport || pe.ASAPTransport.Addrs[0] != netip.MustParseAddr("10.0.0.2") || pe.ASAPTransport.Port != 40000 {
		t.Errorf("ASAP transport %+v", pe.ASAPTransport)
	}

	// Re-registration with a new life updates the PE (RFC 5352 §3.2).
	f.now = f.now.Add(10 * time.Second)
	pe2 := rrPE(42, "10.0.0.2")
	pe2.RegistrationLife = 120000
	outs = f.register(1, "echo", pe2)
	if ev := storedEvs(outs); len(ev) != 1 || (ev[0].Kind == EventRegistered) {
		t.Fatalf("re-registration events %v", ev)
	}
	_, info, _ = f.st.Lookup(tlv.PoolHandle("echo"), 42)
	if want := f.now.Add(120 * time.Second); !info.Expiry.Equal(want) {
		t.Errorf("expiry after re-registration %v, want %v", info.Expiry, want)
	}
	if f.st.PEs() != 1 {
		t.Errorf("store holds %d PEs", f.st.PEs())
	}
}

// Every error cause a registrar sends on registration (RFC 5352 §3.2,
// RFC 5354 §3.10 causes): R=1, pool handle, PE ID and the cause; the store
// is left unchanged.
func TestServerRegistrationCauses(t *testing.T) {
	errDenied := errors.New("not on the list")
	tcp := rrPE(9, "10.0.0.2")
	tcp.UserTransport = tlv.NewTCPTransport(7000, tlv.TransportUseDataOnly, netip.MustParseAddr("10.0.0.2"))
	ctl := rrPE(9, "10.0.0.2")
	ctl.UserTransport.Use = tlv.TransportUseDataPlusControl
	lu := rrPE(9, "10.0.0.2")
	lu.Policy = policy.Encode(policy.LeastUsed, policy.Values{Load: 5})
	noLife := rrPE(9, "10.0.0.2")
	noLife.RegistrationLife = 0
	unknownPolicy := rrPE(9, "10.0.0.2")
	unknownPolicy.Policy = tlv.Policy{Type: 0x7777}
	spoof := rrPE(9, "192.0.2.66")

	cases := []struct {
		name   string
		cfg    func(*ASAPConfig)
		hs     handlespace.Config
		assoc  AssocID // association of the tested registration (1 or 2)
		pe     tlv.PoolElement
		handle string
		want   tlv.CauseCode
		info   []byte // expected cause information, nil for none
	}{
		{name: "invalid/life", assoc: 1, pe: noLife, want: tlv.CauseInvalidValues},
		{name: "invalid/policy", assoc: 1, pe: unknownPolicy, want: tlv.CauseInvalidValues},
		{name: "invalid/spoofed-address", assoc: 1, pe: spoof, want: tlv.CauseInvalidValues, info: spoof.UserTransport.AppendTo(nil)},
		{name: "non-unique-pe-id", assoc: 2, pe: rrPE(1, "10.0.0.3"), want: tlv.CauseNonUniquePEIdentifier},
		{name: "inconsistent-policy", assoc: 1, pe: lu, want: tlv.CauseInconsistentPoolingPolicy, info: lu.Policy.AppendTo(nil)},
		{name: "inconsistent-transport", assoc: 1, pe: tcp, want: tlv.CauseInconsistentTransportType, info: tcp.UserTransport.AppendTo(nil)},
		{name: "inconsistent-data-control", assoc: 1, pe: ctl, want: tlv.CauseInconsistentDataControlConfig},
		{name: "lack-of-resources/assoc", cfg: func(c *ASAPConfig) { c.MaxPEsPerAssoc = 1 }, assoc: 1, pe: rrPE(9, "10.0.0.2"), want: tlv.CauseLackOfResources},
		{name: "lack-of-resources/store", hs: handlespace.Config{MaxPEs: 1}, assoc: 1, pe: rrPE(9, "10.0.0.2"), want: tlv.CauseLackOfResources},
		{name: "rejected-security", cfg: func(c *ASAPConfig) {
			c.Authorize = func(a AssocInfo, h tlv.PoolHandle, pe *tlv.PoolElement) error {
				if pe.ID == 9 && a.Remote.AddrPort.Addr() == netip.MustParseAddr("10.0.0.2") {
					return errDenied
				}
				return nil
			}
		}, assoc: 1, pe: rrPE(9, "10.0.0.2"), want: tlv.CauseRejectedSecurity},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newSrv(t, tc.cfg, tc.hs)
			f.accept(1, "10.0.0.2")
			f.accept(2, "10.0.0.3")
			f.register(1, "pool", rrPE(1, "10.0.0.2")) // pool: RR over SCTP, data only
			before := f.st.Checksum(srvID)
			h := tc.handle
			if h == "" {
				h = "pool"
			}
			outs := f.feed(tc.assoc, reg(h, tc.pe))
			r := srvOne[*tlv.RegistrationResponse](t, outs)
			if !r.Reject || string(r.PoolHandle) != h || r.PEID != tc.pe.ID {
				t.Fatalf("response %+v, want R=1 for %s/%d", r, h, tc.pe.ID)
			}
			if r.Error.First() != tc.want {
				t.Fatalf("cause %v, want %v", r.Error.First(), tc.want)
			}
			if tc.info != nil && !bytes.Equal(r.Error.Causes[0].Info, tc.info) {
				t.Errorf("cause info %x, want %x", r.Error.Causes[0].Info, tc.info)
			}
			if f.st.PEs() != 1 || f.st.Checksum(srvID) != before {
				t.Errorf("store changed by a refused registration: %d PEs", f.st.PEs())
			}
			if len(storedEvs(outs)) != 0 {
				t.Error("stored event for a refused registration")
			}
		})
	}
}

// RFC 5352 §3.2 / RFC 5355: only addresses of the association are kept;
// the unspecified address stands for the association's address.
func TestServerAddressCheck(t *testing.T) {
	f := newSrv(t, nil, handlespace.Config{})
	f.accept(1, "10.0.0.2")
	pe := rrPE(5, "0.0.0.0")
	pe.UserTransport.Addrs = append(pe.UserTransport.Addrs, netip.MustParseAddr("192.0.2.9"))
	f.register(1, "p", pe)
	got, _, _ := f.st.Lookup(tlv.PoolHandle("p"), 5)
	if len(got.UserTransport.Addrs) != 1 || got.UserTransport.Addrs[0] != netip.MustParseAddr("10.0.0.2") {
		t.Errorf("user addresses %v, want [10.0.0.2]", got.UserTransport.Addrs)
	}

	g := newSrv(t, func(c *ASAPConfig) { c.AddressCheck = AddressCheckOff }, handlespace.Config{})
	g.accept(1, "10.0.0.2")
	g.register(1, "p", rrPE(5, "192.0.2.9"))
	got, _, _ = g.st.Lookup(tlv.PoolHandle("p"), 5)
	if got.UserTransport.Addrs[0] != netip.MustParseAddr("192.0.2.9") {
		t.Errorf("AddressCheckOff changed the address to %v", got.UserTransport.Addrs)
	}
}

// RFC 5352 §3.4: deregistration removes the PE and is confirmed; the
// registrar answers unknown pools, unknown PEs and foreign associations
// with an Operation Error.
func TestServerDeregistration(t *testing.T) {
	f := newSrv(t, nil, handlespace.Config{})
	f.accept(1, "10.0.0.2")
	f.accept(2, "10.0.0.3")
	f.register(1, "p", rrPE(1, "10.0.0.2"))
	f.register(1, "p", rrPE(2, "10.0.0.2"))

	outs := f.feed(2, &tlv.Deregistration{PoolHandle: tlv.PoolHandle("p"), PEID: 1})
	if r := srvOne[*tlv.DeregistrationResponse](t, outs); r.Error.First() != tlv.CauseRejectedSecurity {
		t.Errorf("deregistration from another association: cause %v", r.Error.First())
	}
	outs = f.feed(1, &tlv.Deregistration{PoolHandle: tlv.PoolHandle("p"), PEID: 1})
	r := srvOne[*tlv.DeregistrationResponse](t, outs)
	if r.Error != nil || string(r.PoolHandle) != "p" || r.PEID != 1 {
		t.Fatalf("response %+v", r)
	}
	if ev := removedEvs(outs); len(ev) != 1 || ev[0].Reason != RemovedDeregistered {
		t.Errorf("events %v", ev)
	}
	if _, _, ok := f.st.Lookup(tlv.PoolHandle("p"), 1); ok {
		t.Error("PE still stored")
	}
	if f.c.Owned() != 1 {
		t.Errorf("owned %d, want 1", f.c.Owned())
	}
	outs = f.feed(1, &tlv.Deregistration{PoolHandle: tlv.PoolHandle("p"), PEID: 1})
	r = srvOne[*tlv.DeregistrationResponse](t, outs)
	if r.Error.First() != tlv.CauseInvalidValues || !bytes.Equal(r.Error.Causes[0].Info, tlv.PEIdentifier(1).AppendTo(nil)) {
		t.Errorf("unknown PE: %v %x", r.Error.First(), r.Error.Causes[0].Info)
	}
	outs = f.feed(1, &tlv.Deregistration{PoolHandle: tlv.PoolHandle("nope"), PEID: 2})
	if r := srvOne[*tlv.DeregistrationResponse](t, outs); r.Error.First() != tlv.CauseUnknownPoolHandle {
		t.Errorf("unknown pool: %v", r.Error.First())
	}
}

// RFC 5352 §3.5 with HROPT: up to N PEs chosen by the pool policy,
// default 3, HROPT items capped at 128, no ASAP transport in the PEs, and
// Unknown Pool Handle for an unknown pool.
func TestServerHandleResolution(t *testing.T) {
	f := newSrv(t, func(c *ASAPConfig) { c.MaxResolutionItems = 4 }, handlespace.Config{})
	f.accept(1, "10.0.0.2")
	for id := uint32(1); id <= 5; id++ {
		f.register(1, "p", rrPE(id, "10.0.0.2"))
	}
	f.accept(9, "10.0.0.9") // the pool user
	resolve := func(hr *tlv.HandleResolution) *tlv.HandleResolutionResponse {
		return srvOne[*tlv.HandleResolutionResponse](t, f.feed(9, hr))
	}
	r := resolve(&tlv.HandleResolution{PoolHandle: tlv.PoolHandle("p")})
	if len(r.PEs) != DefaultResolutionItems || r.Error != nil {
		t.Fatalf("default resolution: %d PEs, err %v", len(r.PEs), r.Error)
	}
	if r.Policy == nil || policy.Type(r.Policy.Type) != policy.RoundRobin {
		t.Errorf("policy %+v", r.Policy)
	}
	for _, pe := range r.PEs {
		if !pe.ASAPTransport.IsZero() {
			t.Errorf("PE %d carries an ASAP transport", pe.ID)
		}
		if pe.HomeServerID != srvID {
			t.Errorf("PE %d home %x", pe.ID, pe.HomeServerID)
		}
	}
	// Round robin moves by one per resolution (as RSPLIB 3.4.4 does).
	r2 := resolve(&tlv.HandleResolution{PoolHandle: tlv.PoolHandle("p")})
	if r2.PEs[0].ID == r.PEs[0].ID {
		t.Errorf("round robin did not advance: %d then %d", r.PEs[0].ID, r2.PEs[0].ID)
	}
	if r := resolve(&tlv.HandleResolution{PoolHandle: tlv.PoolHandle("p"), HasItems: true, Items: 2}); len(r.PEs) != 2 {
		t.Errorf("HROPT 2: %d PEs", len(r.PEs))
	}
	if r := resolve(&tlv.HandleResolution{PoolHandle: tlv.PoolHandle("p"), HasItems: true, Items: tlv.HROPTAsManyAsPossible}); len(r.PEs) != 4 {
		t.Errorf("HROPT all, cap 4: %d PEs", len(r.PEs))
	}
	if r := resolve(&tlv.HandleResolution{PoolHandle: tlv.PoolHandle("p"), HasItems: true, Items: 0}); len(r.PEs) != DefaultResolutionItems {
		t.Errorf("HROPT 0: %d PEs", len(r.PEs))
	}
	r = resolve(&tlv.HandleResolution{PoolHandle: tlv.PoolHandle("other")})
	if r.Error.First() != tlv.CauseUnknownPoolHandle || len(r.PEs) != 0 {
		t.Errorf("unknown pool: %v, %d PEs", r.Error.First(), len(r.PEs))
	}
	if got := f.c.Stats().Resolutions; got != 6 {
		t.Errorf("Resolutions = %d", got)
	}
}

// RFC 5352 §3.7: the home registrar sends ASAP_ENDPOINT_KEEP_ALIVE to each
// PE it owns after KeepAliveInterval, on the PE's association, with its
// server ID; an ack restarts the cycle; no ack within KeepAliveTimeout
// removes the PE.
func TestServerKeepAlive(t *testing.T) {
	f := newSrv(t, func(c *ASAPConfig) {
		c.KeepAliveInterval = 2 * time.Second
		c.KeepAliveTimeout = time.Second
	}, handlespace.Config{})
	f.accept(1, "10.0.0.2")
	f.accept(2, "10.0.0.3")
	f.register(1, "p", rrPE(1, "10.0.0.2"))
	f.register(2, "p", rrPE(2, "10.0.0.3"))
	if d := f.c.NextDeadline(); !d.Equal(srvT0.Add(2 * time.Second)) {
		t.Fatalf("next deadline %v", d)
	}
	if outs := f.tick(1999 * time.Millisecond); len(srvMsgs[*tlv.EndpointKeepAlive](outs)) != 0 {
		t.Fatal("keep-alive before the interval")
	}
	outs := f.tick(time.Millisecond)
	sends := srvOnly[SendASAP](outs)
	if len(sends) != 2 {
		t.Fatalf("want 2 keep-alives, got %v", outs)
	}
	for _, s := range sends {
		ka := s.Msg.(*tlv.EndpointKeepAlive)
		if ka.ServerID != srvID || ka.Home || string(ka.PoolHandle) != "p" || !ka.HasPEID || uint32(s.Assoc) != ka.PEID {
			t.Errorf("keep-alive %+v on assoc %d", ka, s.Assoc)
		}
	}
	// PE 1 answers, PE 2 does not.
	f.now = f.now.Add(500 * time.Millisecond)
	if outs := f.feed(1, &tlv.EndpointKeepAliveAck{PoolHandle: tlv.PoolHandle("p"), PEID: 1}); len(outs) != 0 {
		t.Fatalf("ack answered with %v", outs)
	}
	// An ack for PE 2 on PE 1's association does not count.
	f.feed(1, &tlv.EndpointKeepAliveAck{PoolHandle: tlv.PoolHandle("p"), PEID: 2})
	outs = f.tick(500 * time.Millisecond)
	ev := removedEvs(outs)
	if len(ev) != 1 || ev[0].PEID != 2 || ev[0].Reason != RemovedKeepAliveTimeout {
		t.Fatalf("events %v", outs)
	}
	if _, _, ok := f.st.Lookup(tlv.PoolHandle("p"), 2); ok {
		t.Error("PE 2 still stored")
	}
	// PE 1's next keep-alive comes KeepAliveInterval after its ack.
	if d := f.c.NextDeadline(); !d.Equal(srvT0.Add(2500*time.Millisecond + 2*time.Second)) {
		t.Errorf("next deadline %v", d.Sub(srvT0))
	}
	if s := f.c.Stats(); s.KeepAlivesSent != 2 || s.KeepAliveTimeouts != 1 {
		t.Errorf("stats %+v", s)
	}
}

// RFC 5352 §3.7: losing a PE's association removes its PEs, and only
// them.
func TestServerAssocLost(t *testing.T) {
	f := newSrv(t, nil, handlespace.Config{})
	f.accept(1, "10.0.0.2")
	f.accept(2, "10.0.0.3")
	f.register(1, "p", rrPE(1, "10.0.0.2"))
	f.register(1, "q", rrPE(1, "10.0.0.2"))
	f.register(2, "p", rrPE(2, "10.0.0.3"))
	f.c.HandleLost(f.now, 1)
	ev := removedEvs(f.c.Outbox())
	if len(ev) != 2 || ev[0].Reason != RemovedAssocLost {
		t.Fatalf("events %v", ev)
	}
	if f.st.PEs() != 1 || f.c.Associations() != 1 {
		t.Errorf("%d PEs, %d associations", f.st.PEs(), f.c.Associations())
	}
	// The PE ID is free again for another association.
	f.register(2, "p", rrPE(1, "10.0.0.3"))
}

// RFC 5352 §3.2: a PE that does not re-register within its Registration
// Life is removed.
func TestServerRegistrationExpiry(t *testing.T) {
	f := newSrv(t, func(c *ASAPConfig) {
		c.KeepAliveInterval = time.Hour
		c.IdleTimeout = -1 // the association, left without PEs, stays
	}, handlespace.Config{})
	f.accept(1, "10.0.0.2")
	pe := rrPE(1, "10.0.0.2")
	pe.RegistrationLife = 3000
	f.register(1, "p", pe)
	if d := f.c.NextDeadline(); !d.Equal(srvT0.Add(3 * time.Second)) {
		t.Fatalf("deadline %v", d.Sub(srvT0))
	}
	if outs := f.tick(2999 * time.Millisecond); len(outs) != 0 {
		t.Fatalf("early: %v", outs)
	}
	ev := removedEvs(f.tick(time.Millisecond))
	if len(ev) != 1 || ev[0].Reason != RemovedExpired || f.st.PEs() != 0 || f.c.Owned() != 0 {
		t.Fatalf("events %v, %d PEs, %d owned", ev, f.st.PEs(), f.c.Owned())
	}
	if !f.c.NextDeadline().IsZero() {
		t.Errorf("deadline left: %v", f.c.NextDeadline())
	}
}

// RFC 5352 §3.5, RFC 5353 §7: reports are counted once per reporting
// association; at MAX-BAD-PE-REPORT reporters the home registrar checks
// the PE with a keep-alive and removes it when no ack comes within
// KeepAliveTimeout; re-registration resets the count; reports about
// unknown PEs are ignored.
func TestServerEndpointUnreachable(t *testing.T) {
	f := newSrv(t, nil, handlespace.Config{})
	f.accept(1, "10.0.0.2")
	for id := AssocID(9); id <= 11; id++ {
		f.accept(id, "10.0.0.9")
	}
	f.register(1, "p", rrPE(1, "10.0.0.2"))
	report := func(from AssocID) []Output {
		return f.feed(from, &tlv.EndpointUnreachable{PoolHandle: tlv.PoolHandle("p"), PEID: 1})
	}
	report(9)
	report(10)
	f.register(1, "p", rrPE(1, "10.0.0.2")) // resets the count
	report(9)
	if outs := report(10); len(outs) != 0 {
		t.Fatalf("answered a report: %v", outs)
	}
	if _, info, ok := f.st.Lookup(tlv.PoolHandle("p"), 1); !ok || info.UnreachableReports != 2 {
		t.Fatalf("after 2 reports: ok=%v reports=%d", ok, info.UnreachableReports)
	}
	outs := report(11)
	if ka := srvOne[*tlv.EndpointKeepAlive](t, outs); srvOnly[SendASAP](outs)[0].Assoc != 1 || ka.PEID != 1 || !ka.HasPEID {
		t.Fatalf("third reporter: %v, want a keep-alive to the PE", outs)
	}
	if len(removedEvs(outs)) != 0 || f.st.PEs() != 1 {
		t.Fatalf("removed before the check: %v", outs)
	}
	ev := removedEvs(f.tick(DefaultKeepAliveTimeout))
	if len(ev) != 1 || ev[0].Reason != RemovedUnreachable || f.st.PEs() != 0 {
		t.Fatalf("unanswered check: %v, %d PEs", ev, f.st.PEs())
	}
	f.accept(12, "10.0.0.9")
	if outs := f.feed(12, &tlv.EndpointUnreachable{PoolHandle: tlv.PoolHandle("p"), PEID: 1}); len(outs) != 0 {
		t.Errorf("report about an unknown PE: %v", outs)
	}

	g := newSrv(t, func(c *ASAPConfig) { c.MaxBadPEReport = 1 }, handlespace.Config{})
	g.accept(1, "10.0.0.2")
	g.register(1, "p", rrPE(1, "10.0.0.2"))
	g.feed(1, &tlv.EndpointUnreachable{PoolHandle: tlv.PoolHandle("p"), PEID: 1})
	g.tick(DefaultKeepAliveTimeout)
	if g.st.PEs() != 0 {
		t.Error("MaxBadPEReport 1 did not remove the unanswering PE")
	}
}

// RFC 5352 §3.6: a registrar announces itself every T6-serverannounce.
func TestServerAnnounce(t *testing.T) {
	f := newSrv(t, func(c *ASAPConfig) {
		c.AnnounceAddrs = []transport.Addr{{Kind: transport.KindSCTP, AddrPort: netip.MustParseAddrPort("127.0.0.1:9899")}}
	}, handlespace.Config{})
	f.c.announce = true // as NewCore does for a Config with an Announcer
	f.c.HandleTimeout(f.now)
	a := srvOnly[Multicast](f.c.Outbox())
	if len(a) != 1 {
		t.Fatalf("announces %v", a)
	}
	if sa, ok := a[0].Msg.(*tlv.ServerAnnounce); !ok || sa.ServerID != srvID || len(sa.Transports) != 1 {
		t.Fatalf("announce %#v", a[0].Msg)
	}
	if _, err := tlv.Marshal(a[0].Msg); err != nil {
		t.Fatal(err)
	}
	if d := f.c.NextDeadline(); !d.Equal(srvT0.Add(asap.DefaultT6ServerAnnounce)) {
		t.Fatalf("next announce %v", d.Sub(srvT0))
	}
	if a := srvOnly[Multicast](f.tick(asap.DefaultT6ServerAnnounce - 1)); len(a) != 0 {
		t.Fatal("announce before T6")
	}
	if a := srvOnly[Multicast](f.tick(1)); len(a) != 1 {
		t.Fatal("no announce at T6")
	}
	g := newSrv(t, nil, handlespace.Config{})
	g.c.HandleTimeout(g.now)
	if len(g.c.Outbox()) != 0 || !g.c.NextDeadline().IsZero() {
		t.Error("announces without Announce")
	}
}

// RFC 5352 §2.2.14, RFC 5354 §3.10: an unknown message type is answered
// with ASAP_ERROR carrying Unrecognized Message and the message.
func TestServerUnrecognizedMessage(t *testing.T) {
	f := newSrv(t, nil, handlespace.Config{})
	f.accept(1, "10.0.0.2")
	msg := []byte{0x0f, 0, 0, 8, 1, 2, 3, 4}
	e := srvOne[*tlv.ASAPError](t, f.raw(1, msg))
	if e.Error.First() != tlv.CauseUnrecognizedMessage || !bytes.Equal(e.Error.Causes[0].Info, msg) {
		t.Errorf("cause %v info %x", e.Error.First(), e.Error.Causes[0].Info)
	}
	// A registration that does not parse (pool handle over the limit) gets
	// ASAP_ERROR with Invalid Values and changes nothing.
	long := reg(string(bytes.Repeat([]byte("h"), 33)), rrPE(9, "10.0.0.2"))
	if e := srvOne[*tlv.ASAPError](t, f.feed(1, long)); e.Error.First() != tlv.CauseInvalidValues || f.st.PEs() != 0 {
		t.Errorf("long handle: cause %v, %d PEs", e.Error.First(), f.st.PEs())
	}
	// Truncated input has no action bits to report by: dropped.
	if outs := f.raw(1, []byte{1, 0}); len(outs) != 0 {
		t.Errorf("truncated message answered: %v", outs)
	}
	// Messages for PEs and PUs are dropped, never answered with an error.
	if outs := f.feed(1, &tlv.ASAPError{Error: *tlv.NewOperationError(tlv.CauseUnspecified, nil)}); len(outs) != 0 {
		t.Errorf("ASAP_ERROR answered: %v", outs)
	}
}

// RFC 5354 §2 action bits on an unknown parameter in ASAP_REGISTRATION:
// 00 discard silently, 01 discard and report, 10 skip, 11 skip and
// report; reports are ASAP_ERRORs with Unrecognized Parameter and the
// parameter attached.
func TestServerUnrecognizedParameter(t *testing.T) {
	cases := []struct {
		typ        tlv.ParamType
		registered bool
		reported   bool
	}{
		{0x00ff, false, false},
		{0x40ff, false, true},
		{0x80ff, true, false},
		{0xc0ff, true, true},
	}
	for _, tc := range cases {
		t.Run(tc.typ.Action().String(), func(t *testing.T) {
			f := newSrv(t, nil, handlespace.Config{})
			f.accept(1, "10.0.0.2")
			unk := tlv.RawParam{Type: tc.typ, Value: []byte{0xde, 0xad, 0xbe}, Index: 2}
			m := reg("p", rrPE(1, "10.0.0.2"))
			m.Unknown = []tlv.RawParam{unk}
			outs := f.feed(1, m)
			errs := srvMsgs[*tlv.ASAPError](outs)
			if got := len(errs) == 1; got != tc.reported {
				t.Fatalf("reported=%v, want %v (%v)", got, tc.reported, outs)
			}
			if tc.reported {
				c := errs[0].Error.Causes[0]
				if c.Code != tlv.CauseUnrecognizedParameter || !bytes.Equal(c.Info, unk.Bytes()) {
					t.Errorf("cause %v info %x, want %x", c.Code, c.Info, unk.Bytes())
				}
			}
			if got := f.st.PEs() == 1; got != tc.registered {
				t.Errorf("registered=%v, want %v", got, tc.registered)
			}
			if got := len(srvMsgs[*tlv.RegistrationResponse](outs)) == 1; got != tc.registered {
				t.Errorf("response sent=%v", got)
			}
		})
	}
}

// RFC 5355 flooding: each association has a token bucket; messages over
// it are dropped unanswered and the bucket refills with time.
func TestServerFloodProtection(t *testing.T) {
	f := newSrv(t, func(c *ASAPConfig) { c.AssocRate, c.AssocBurst = 10, 5 }, handlespace.Config{})
	f.accept(1, "10.0.0.2")
	f.accept(2, "10.0.0.3")
	hr := &tlv.HandleResolution{PoolHandle: tlv.PoolHandle("p")}
	answered := func(id AssocID, n int) int {
		k := 0
		for range n {
			k += len(srvMsgs[*tlv.HandleResolutionResponse](f.feed(id, hr)))
		}
		return k
	}
	if got := answered(1, 20); got != 5 {
		t.Fatalf("burst: %d answered, want 5", got)
	}
	if got := answered(2, 1); got != 1 {
		t.Fatal("another association was throttled")
	}
	f.now = f.now.Add(300 * time.Millisecond)
	if got := answered(1, 20); got != 3 {
		t.Errorf("after 300 ms at 10/s: %d answered, want 3", got)
	}
	if f.c.Stats().Dropped != 32 {
		t.Errorf("dropped %d", f.c.Stats().Dropped)
	}
	// Unknown associations are ignored.
	if outs := f.feed(77, hr); len(outs) != 0 {
		t.Errorf("unknown association answered: %v", outs)
	}
}

func TestServerConfigValidation(t *testing.T) {
	bad := []ASAPConfig{
		{MaxBadPEReport: -1},
		{KeepAliveInterval: -time.Second},
		{ResolutionItems: 5, MaxResolutionItems: 4},
		{MaxPEsPerAssoc: -2},
		{AssocRate: -3},
		{AddressCheck: 9},
	}
	for _, cfg := range bad {
		if _, err := newTestCore(cfg); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%+v: err %v", cfg, err)
		}
	}
	c, err := newTestCore(ASAPConfig{MaxPEsPerAssoc: Unlimited, AssocRate: Unlimited})
	if err != nil {
		t.Fatal(err)
	}
	if c.cfg.MaxBadPEReport != DefaultMaxBadPEReport || c.cfg.KeepAliveTimeout != DefaultKeepAliveTimeout || c.cfg.ResolutionItems != DefaultResolutionItems {
		t.Errorf("defaults not applied: %+v", c.cfg)
	}
}

// storedEvs returns the PE events of stored registrations among outs.
func storedEvs(outs []Output) []PEEvent {
	var r []PEEvent
	for _, e := range srvOnly[PEEvent](outs) {
		if e.Kind != EventRemoved {
			r = append(r, e)
		}
	}
	return r
}

// removedEvs returns the PE events of removals among outs.
func removedEvs(outs []Output) []PEEvent {
	var r []PEEvent
	for _, e := range srvOnly[PEEvent](outs) {
		if e.Kind == EventRemoved {
			r = append(r, e)
		}
	}
	return r
}
