package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-rserpool/rserpool/asap"
	"github.com/go-rserpool/rserpool/enrp"
	"github.com/go-rserpool/rserpool/internal/echo"
	"github.com/go-rserpool/rserpool/internal/leakcheck"
	"github.com/go-rserpool/rserpool/internal/testpki"
	"github.com/go-rserpool/rserpool/tlv"
	"github.com/go-rserpool/rserpool/transport"
	"github.com/go-rserpool/rserpool/transport/multicast"
	"github.com/go-rserpool/rserpool/transport/sctp"
)

// End-to-end tests of RSerPool secured by SCTP over DTLS (RFC 8261) on
// loopback, against the threats of RFC 5355: registrar impersonation
// (§3.2), by a configured address or by a spoofed announce (§3.4), pool
// hijacking by a rogue PE (§3.1), handlespace scanning by an unauthorised
// PU, and rogue ENRP servers (§3.3). The certificates are made in the test
// (internal/testpki) and never leave memory.

// handshakes records the handshakes a DTLS listener refused or lost
// (sctp.DTLSConfig.OnHandshakeFailure).
type handshakes struct {
	mu   sync.Mutex
	errs []*sctp.HandshakeError
}

func (h *handshakes) record(err error) {
	var he *sctp.HandshakeError
	if !errors.As(err, &he) {
		he = &sctp.HandshakeError{Err: err} // not a HandshakeError: kept so that the test sees it
	}
	h.mu.Lock()
	h.errs = append(h.errs, he)
	h.mu.Unlock()
}

func (h *handshakes) all() []*sctp.HandshakeError {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.errs)
}

// secure returns a DTLS transport presenting cert and trusting roots (for
// the listeners it dials and the peers it accepts). With failures, the
// listeners' failed handshakes are recorded there.
func secure(cert tls.Certificate, roots *x509.CertPool, failures *handshakes) *sctp.Transport {
	d := &sctp.DTLSConfig{Certificates: []tls.Certificate{cert}, RootCAs: roots}
	if failures != nil {
		d.OnHandshakeFailure = failures.record
	}
	return sctp.New(sctp.Config{ShutdownTimeout: time.Second, DTLS: d})
}

// rogueTransport is an impersonating registrar's: a certificate with the
// genuine registrar's name from a CA nobody trusts, and no client
// authentication, so that it would take any PE or PU that talks to it.
func rogueTransport(cert tls.Certificate, failures *handshakes) *sctp.Transport {
	return sctp.New(sctp.Config{ShutdownTimeout: time.Second, DTLS: &sctp.DTLSConfig{
		Certificates:       []tls.Certificate{cert},
		ClientAuth:         sctp.ClientAuthNone,
		SystemRoots:        true, // it dials nobody, and verifies nobody it accepts
		OnHandshakeFailure: failures.record,
	}})
}

// quickHunt keeps server hunts short on loopback: a request that finds
// no registrar fails after two hunts, well under a second each.
var quickHunt = asap.Timers{T5ServerHunt: 50 * time.Millisecond, T5ServerHuntMax: 200 * time.Millisecond, HuntDialLimit: 2 * time.Second}

// wantRefusedRegistrar checks that err is a request that found no
// registrar because this side refused the registrar's certificate: an
// unknown authority, in the DTLS handshake it dialled.
func wantRefusedRegistrar(t *testing.T, err error, rogue transport.Addr) {
	t.Helper()
	var nr *asap.NoRegistrarError
	var he *sctp.HandshakeError
	var ua x509.UnknownAuthorityError
	if !errors.As(err, &nr) || !errors.As(err, &he) || !errors.As(err, &ua) {
		t.Fatalf("error %v (%T), want a *asap.NoRegistrarError from a *sctp.HandshakeError refusing an unknown authority", err, err)
	}
	if he.RefusedBy != sctp.SideLocal || he.Server || he.Remote != rogue || !slices.Contains(nr.Tried, rogue) {
		t.Fatalf("%v: refused by %v (server %v) at %v, tried %v; want this side refusing the rogue at %v", err, he.RefusedBy, he.Server, he.Remote, nr.Tried, rogue)
	}
	if !strings.Contains(err.Error(), "we refused the peer") {
		t.Errorf("the error does not say who refused: %v", err)
	}
}

// wantRefusedByRogue checks that the rogue registrar's listener saw its
// handshakes refused by the peer (a fatal alert), at least min of them.
func wantRefusedByRogue(t *testing.T, h *handshakes, min int) {
	t.Helper()
	errs := h.all()
	if len(errs) < min {
		t.Fatalf("the rogue saw %d failed handshakes, want at least %d", len(errs), min)
	}
	for _, he := range errs {
		if he.RefusedBy != sctp.SidePeer || !he.Server || he.Alert == "" {
			t.Errorf("rogue listener: %v: refused by %v (server %v, alert %q), want the peer with an alert", he, he.RefusedBy, he.Server, he.Alert)
		}
	}
}

// wantUntouched checks that the rogue registrar holds nothing and served
// nothing.
func wantUntouched(t *testing.T, r *enrp.Registrar) {
	t.Helper()
	s := r.Stats()
	if s.PEs != 0 || s.Pools != 0 || s.ASAP.Registrations != 0 || s.ASAP.Resolutions != 0 {
		t.Fatalf("the rogue registrar holds %d PEs in %d pools after %d registrations and %d resolutions; want nothing",
			s.PEs, s.Pools, s.ASAP.Registrations, s.ASAP.Resolutions)
	}
}

// dtlsTest starts a DTLS end-to-end test: skipped with -short, checked
// for leaks, bounded to 30 s (the context returned), with the pool
// operator's CA.
func dtlsTest(t *testing.T, what string) (context.Context, *testpki.CA) {
	t.Helper()
	if testing.Short() {
		t.Skip(what)
	}
	leakcheck.Check(t)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx, testpki.NewCA(t, "pool operator")
}

// startSecurePE starts an echo PE named name on loopback whose one DTLS
// transport presents cert and trusts roots, for its pool users and its
// registrars alike.
func startSecurePE(t *testing.T, name string, cert tls.Certificate, roots *x509.CertPool, cfg asap.PEConfig, opts ...asap.Option) *pe {
	t.Helper()
	tr := secure(cert, roots, nil)
	return startPE(t, name, tr, loopbackAny, tr, cfg, opts...)
}

// wantServedByGenuine checks, once p registered, that the genuine
// registrar holds p alone, that pu (the one described by what) resolves
// p and is answered by it n times, and that the rogue still holds nothing
// and saw its handshakes refused.
func wantServedByGenuine(t *testing.T, ctx context.Context, what string, good, rogue *enrp.Registrar, rogueSaw *handshakes, p *pe, pu *asap.PoolUser, handle string, n int) {
	t.Helper()
	if ids, err := poolIDs(ctx, good, handle); err != nil || !slices.Equal(ids, []uint32{p.ID()}) {
		t.Fatalf("the genuine registrar holds %v (%v), want the PE", ids, err)
	}
	pes, err := pu.Resolve(ctx, []byte(handle))
	if err != nil || !slices.Equal(peIDs(pes), []uint32{p.ID()}) {
		t.Fatalf("%s resolved %v (%v), want the PE", what, peIDs(pes), err)
	}
	if from := ask(t, ctx, pu, handle, n); !sameSet(from, p.name) {
		t.Errorf("answers from %v", from)
	}
	wantUntouched(t, rogue)
	wantRefusedByRogue(t, rogueSaw, 2)
}

// TestDTLSRogueRegistrarRefused: a registrar that speaks ASAP correctly
// but presents a certificate from an untrusted CA, with the genuine
// registrar's name (RFC 5355 §3.2, registrar impersonation), is refused by
// the DTLS handshake of PEs and PUs: alone, their requests fail with a
// NoRegistrarError from a HandshakeError that says this side refused an
// unknown authority; configured with the genuine registrar, they register
// at and resolve from that one, and the rogue gets nothing.
func TestDTLSRogueRegistrarRefused(t *testing.T) {
	ctx, ca := dtlsTest(t, "real SCTP over DTLS on loopback")
	const handle = "dtls-echo"
	rogueCA := testpki.NewCA(t, "rogue")

	good := startRegistrar(t, enrp.Config{Transport: secure(ca.Leaf(t, "reg-1.reg.example"), ca.Pool(), nil), ListenAddr: loopbackAny})
	var rogueSaw handshakes
	rogue := startRegistrar(t, enrp.Config{Transport: rogueTransport(rogueCA.Leaf(t, "reg-1.reg.example"), &rogueSaw), ListenAddr: loopbackAny})
	peTr := secure(ca.Leaf(t, "pe-1.pe.example"), ca.Pool(), nil)
	puTr := secure(ca.Leaf(t, "app.pu.example"), ca.Pool(), nil)

	// Only the rogue configured: registration and resolution fail on the
	// handshake.
	alone := asap.PEConfig{PoolHandle: []byte(handle), Registrars: []transport.Addr{rogue.Addr()}, EndpointAddr: loopbackAny, Timers: quickHunt, MaxServerHunts: 2}
	lonePE := startPE(t, "pe-0", peTr, loopbackAny, peTr, alone)
	err := lonePE.Register(ctx)
	wantRefusedRegistrar(t, err, rogue.Addr())
	t.Logf("PE, rogue registrar only: %v", err)
	lonePE.stop()
	lonePU := newPU(t, asap.PUConfig{Registrars: []transport.Addr{rogue.Addr()}, Timers: quickHunt, MaxServerHunts: 2}, puTr)
	_, err = lonePU.Resolve(ctx, []byte(handle))
	wantRefusedRegistrar(t, err, rogue.Addr())
	t.Logf("PU, rogue registrar only: %v", err)
	lonePU.Close()
	wantUntouched(t, rogue)
	wantRefusedByRogue(t, &rogueSaw, 2)

	// Both configured, the rogue first: the PE registers at the genuine
	// registrar, the PU resolves there and is served.
	both := []transport.Addr{rogue.Addr(), good.Addr()}
	p := startPE(t, "pe-1", peTr, loopbackAny, peTr, asap.PEConfig{
		PoolHandle: []byte(handle), Registrars: both, EndpointAddr: loopbackAny, Timers: quickHunt,
	})
	if err := p.Register(ctx); err != nil {
		t.Fatalf("PE with both registrars: %v", err)
	}
	pu := newPU(t, asap.PUConfig{Registrars: both, Timers: quickHunt}, puTr)
	wantServedByGenuine(t, ctx, "PU with both registrars", good, rogue, &rogueSaw, p, pu, handle, 2)
	t.Logf("rogue registrar: %d handshakes refused by its peers, 0 registrations, 0 resolutions; genuine: %d registrations, %d resolutions",
		len(rogueSaw.all()), good.Stats().ASAP.Registrations, good.Stats().ASAP.Resolutions)
}

// joinTestGroup opens an Announcer on lo for a group of this test's own
// (port from the first join), or skips the test when lo does not do
// multicast here.
func joinTestGroup(t *testing.T, group netip.AddrPort) *multicast.Announcer {
	t.Helper()
	lo, err := multicast.LoopbackInterface()
	if err != nil {
		t.Skipf("no loopback interface: %v", err)
	}
	a, err := multicast.Listen(t.Context(), multicast.Config{Group: group, Interface: lo, TTL: 1, Loopback: true})
	if err != nil {
		t.Skipf("no multicast on %s: %v", lo.Name, err)
	}
	t.Cleanup(func() { a.Close() }) // after the registrar or endpoint using it (Close is idempotent)
	return a
}

// TestDTLSAnnouncedRogueRegistrar: with DTLS, what an ASAP Server Announce
// (RFC 5352 §3.6, not authenticated, RFC 5355 §3.4) can do is make a PE or
// PU dial: a rogue registrar that announces itself on the group costs a
// failed handshake, not a hijack. A PE and a PU that learn registrars only
// from announces, on a group where only the rogue announces, neither
// register nor resolve (the handshake fails on their side); once the
// genuine registrar announces on the group too, the PE registers there and
// the PU resolves there, and the rogue holds nothing.
func TestDTLSAnnouncedRogueRegistrar(t *testing.T) {
	ctx, ca := dtlsTest(t, "real SCTP over DTLS and multicast on loopback")
	const handle = "dtls-announced"
	group := netip.AddrPortFrom(netip.AddrFrom4([4]byte{239, 255, 52, byte(1 + os.Getpid()%250)}), 0)
	rogueAnn := joinTestGroup(t, group)
	group = rogueAnn.Group() // the port the first join bound
	peAnn, puAnn, goodAnn := joinTestGroup(t, group), joinTestGroup(t, group), joinTestGroup(t, group)

	rogueCA := testpki.NewCA(t, "rogue")
	const t6 = 50 * time.Millisecond
	var rogueSaw handshakes
	rogue := startRegistrar(t, enrp.Config{
		Transport: rogueTransport(rogueCA.Leaf(t, "reg-1.reg.example"), &rogueSaw), ListenAddr: loopbackAny,
		Announcer: rogueAnn, ASAP: enrp.ASAPConfig{AnnounceInterval: t6},
	})
	p := startSecurePE(t, "pe-1", ca.Leaf(t, "pe-1.pe.example"), ca.Pool(), asap.PEConfig{
		PoolHandle: []byte(handle), EndpointAddr: loopbackAny, Timers: quickHunt, MaxServerHunts: 2,
	}, asap.WithAnnouncer(peAnn))

	// Only the rogue announces: the PE hears it, dials it, refuses its
	// certificate.
	err := p.Register(ctx)
	wantRefusedRegistrar(t, err, rogue.Addr())
	t.Logf("PE, rogue announces only: %v", err)
	pu := newPU(t, asap.PUConfig{Timers: quickHunt, MaxServerHunts: 2}, secure(ca.Leaf(t, "app.pu.example"), ca.Pool(), nil), asap.WithAnnouncer(puAnn))
	_, err = pu.Resolve(ctx, []byte(handle))
	wantRefusedRegistrar(t, err, rogue.Addr())
	t.Logf("PU, rogue announces only: %v", err)
	wantUntouched(t, rogue)
	wantRefusedByRogue(t, &rogueSaw, 2)

	// The genuine registrar announces too: the PE, still hunting, finds
	// it and registers there; a PU that knows registrars from announces
	// only resolves there.
	good := startRegistrar(t, enrp.Config{
		Transport: secure(ca.Leaf(t, "reg-2.reg.example"), ca.Pool(), nil), ListenAddr: loopbackAny,
		Announcer: goodAnn, ASAP: enrp.ASAPConfig{AnnounceInterval: t6},
	})
	if err := p.Register(ctx); err != nil {
		t.Fatalf("PE once the genuine registrar announces: %v", err)
	}
	wantServedByGenuine(t, ctx, "PU from announces", good, rogue, &rogueSaw, p, pu, handle, 1)
	t.Logf("rogue announced %d times; %d handshakes with it failed, 0 registrations, 0 resolutions",
		rogue.Stats().ASAP.Announces, len(rogueSaw.all()))
}

// echoPolicy is the registrar's NamePolicy of the authorization tests:
// only *.pe.example may register in the pool, only *.pu.example resolve
// it.
func echoPolicy(handle string) enrp.NamePolicy {
	return enrp.NamePolicy{
		Register: enrp.PoolACL{Pools: map[string][]string{handle: {"*.pe.example"}}},
		Resolve:  enrp.PoolACL{Pools: map[string][]string{handle: {"*.pu.example"}}},
	}
}

// withPolicy is cfg with np applied.
func withPolicy(t *testing.T, np enrp.NamePolicy, cfg enrp.Config) enrp.Config {
	t.Helper()
	if err := np.Apply(&cfg); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestDTLSRoguePERefused: a registrar with a NamePolicy over DTLS. A PE
// whose certificate the pool's CA signed but whose name the pool's rule
// does not allow is refused with Rejected due to security considerations
// (0xa, RFC 5354 §3.12), final; a PE whose certificate another CA signed
// never gets past the handshake (the registrar refuses it); the store
// keeps only the authorised PE.
func TestDTLSRoguePERefused(t *testing.T) {
	ctx, ca := dtlsTest(t, "real SCTP over DTLS on loopback")
	const handle = "dtls-guarded"
	var regSaw handshakes
	cfg := withPolicy(t, echoPolicy(handle), enrp.Config{Transport: secure(ca.Leaf(t, "reg-1.reg.example"), ca.Pool(), &regSaw), ListenAddr: loopbackAny})
	events := track(t, &cfg, 64)
	r := startRegistrar(t, cfg)
	peCfg := func(id uint32) asap.PEConfig {
		return asap.PEConfig{PoolHandle: []byte(handle), PEID: id, Registrars: []transport.Addr{r.Addr()}, EndpointAddr: loopbackAny, Timers: quickHunt, MaxServerHunts: 2}
	}

	good := startSecurePE(t, "pe-1", ca.Leaf(t, "pe-1.pe.example"), ca.Pool(), peCfg(1))
	if err := good.Register(ctx); err != nil {
		t.Fatalf("authorised PE: %v", err)
	}

	// Trusted CA, unauthorised name: 0xa, final.
	wrong := startSecurePE(t, "pe-2", ca.Leaf(t, "pe-2.other.example"), ca.Pool(), peCfg(2))
	err := wrong.Register(ctx)
	var re *asap.RejectError
	if !errors.As(err, &re) || re.Op != tlv.ASAPRegistration || re.Code() != tlv.CauseRejectedSecurity || re.Transient() {
		t.Fatalf("unauthorised PE: %v (%T), want a final *asap.RejectError with cause 0xa", err, err)
	}
	if wrong.Registered() {
		t.Fatal("unauthorised PE registered")
	}
	t.Logf("PE with an unauthorised name: %v", err)

	// Untrusted CA, authorised name: the registrar refuses the handshake.
	rogue := startSecurePE(t, "pe-3", testpki.NewCA(t, "rogue").Leaf(t, "pe-3.pe.example"), ca.Pool(), peCfg(3))
	err = rogue.Register(ctx)
	var he *sctp.HandshakeError
	if !errors.Is(err, asap.ErrNoRegistrar) || !errors.As(err, &he) || he.RefusedBy != sctp.SidePeer || he.Alert == "" {
		t.Fatalf("PE of an untrusted CA: %v (%T), want no registrar after the registrar refused the handshake with an alert", err, err)
	}
	t.Logf("PE of an untrusted CA: %v", err)
	// The PE presents its certificate although the registrar's
	// CertificateRequest names other CAs, so the registrar's log names
	// the real cause: an unknown authority, not a missing certificate.
	refused := regSaw.all()
	if len(refused) == 0 {
		t.Fatal("the registrar saw no failed handshake")
	}
	for _, lhe := range refused {
		if lhe.RefusedBy != sctp.SideLocal || !lhe.Server || lhe.Remote != rogue.EndpointAddr() {
			t.Errorf("registrar listener: %v: refused by %v (server %v), want the registrar refusing the PE at %v", lhe, lhe.RefusedBy, lhe.Server, rogue.EndpointAddr())
		}
		if !strings.Contains(lhe.Error(), "unknown authority") {
			t.Errorf("registrar listener: %v: want the cause named as an unknown authority", lhe)
		}
	}

	// The store is unchanged: the authorised PE only, and one refusal
	// (the handshake refusals never reached ASAP).
	if ids, err := poolIDs(ctx, r, handle); err != nil || !slices.Equal(ids, []uint32{1}) {
		t.Fatalf("the pool holds %v (%v), want the authorised PE only", ids, err)
	}
	s := r.Stats()
	if s.PEs != 1 || s.ASAP.Registrations != 1 || s.ASAP.RegistrationsRefd != 1 {
		t.Fatalf("registrar: %d PEs, %d registrations, %d refused; want 1, 1, 1", s.PEs, s.ASAP.Registrations, s.ASAP.RegistrationsRefd)
	}
	for _, ev := range events.seen() {
		if ev.PEID != 1 {
			t.Errorf("event about a PE other than the authorised one: %v", ev)
		}
	}
	t.Logf("registrar: %d PE, %d registration refused (0xa), %d handshakes refused", s.PEs, s.ASAP.RegistrationsRefd, len(refused))
}

// TestDTLSUnauthorisedPURefused: the registrar's Resolve ACL over DTLS.
// A PU whose name the rule does not allow gets the 0xa answer (RFC 5352
// §3.5, RFC 5354 §3.12) to Resolve, Dial and Connect, once each, as a
// final *asap.RejectError; the authorised PU resolves, dials the PE and
// keeps a session with it, over DTLS too.
func TestDTLSUnauthorisedPURefused(t *testing.T) {
	ctx, ca := dtlsTest(t, "real SCTP over DTLS on loopback")
	const handle = "dtls-guarded"
	r := startRegistrar(t, withPolicy(t, echoPolicy(handle), enrp.Config{Transport: secure(ca.Leaf(t, "reg-1.reg.example"), ca.Pool(), nil), ListenAddr: loopbackAny}))
	p := startSecurePE(t, "pe-1", ca.Leaf(t, "pe-1.pe.example"), ca.Pool(), asap.PEConfig{PoolHandle: []byte(handle), Registrars: []transport.Addr{r.Addr()}, EndpointAddr: loopbackAny})
	if err := p.Register(ctx); err != nil {
		t.Fatal(err)
	}

	puCfg := asap.PUConfig{Registrars: []transport.Addr{r.Addr()}}
	bad := newPU(t, puCfg, secure(ca.Leaf(t, "scanner.other.example"), ca.Pool(), nil))
	wantSecurity := func(what string, err error) {
		t.Helper()
		var re *asap.RejectError
		if !errors.As(err, &re) || re.Op != tlv.ASAPHandleResolution || re.Code() != tlv.CauseRejectedSecurity || re.Transient() {
			t.Fatalf("unauthorised PU %s: %v (%T), want a final *asap.RejectError of the resolution with cause 0xa", what, err, err)
		}
	}
	pes, err := bad.Resolve(ctx, []byte(handle))
	wantSecurity("Resolve", err)
	if len(pes) != 0 {
		t.Fatalf("unauthorised PU got %d PEs", len(pes))
	}
	t.Logf("unauthorised PU: %v", err)
	if c, _, err := bad.Dial(ctx, []byte(handle)); err == nil {
		c.Close()
		t.Fatal("unauthorised PU dialled a PE")
	} else {
		wantSecurity("Dial", err)
	}
	if s, err := bad.Connect(ctx, []byte(handle), asap.SessionConfig{}); err == nil {
		s.Close()
		t.Fatal("unauthorised PU opened a session")
	} else {
		wantSecurity("Connect", err)
	}
	// One request each, each answered: nothing retried.
	if n := r.Stats().ASAP.ResolutionsRefused; n != 3 {
		t.Fatalf("registrar refused %d resolutions, want 3 (one per call, no retries)", n)
	}

	good := newPU(t, puCfg, secure(ca.Leaf(t, "app.pu.example"), ca.Pool(), nil))
	pes, err = good.Resolve(ctx, []byte(handle))
	if err != nil || !slices.Equal(peIDs(pes), []uint32{p.ID()}) {
		t.Fatalf("authorised PU resolved %v (%v), want the PE", peIDs(pes), err)
	}
	c, pe, err := good.Dial(ctx, []byte(handle))
	if err != nil {
		t.Fatalf("authorised PU Dial: %v", err)
	}
	if id, ok := transport.PeerIdentityOf(c); !ok || id.Name != "pe-1.pe.example" || pe.ID != p.ID() {
		t.Errorf("dialled PE %s, identity %v (%v); want the PE's certificate", hex(pe.ID), id, ok)
	}
	if err := c.Send(ctx, transport.Message{PPID: echo.PPID, Data: []byte("dialled")}); err != nil {
		t.Fatal(err)
	}
	if m, err := c.Recv(ctx); err != nil || string(m.Data) != "pe-1: dialled" {
		t.Fatalf("over the dialled association: %q, %v", m.Data, err)
	}
	c.Close()
	s, err := good.Connect(ctx, []byte(handle), asap.SessionConfig{})
	if err != nil {
		t.Fatalf("authorised PU Connect: %v", err)
	}
	defer s.Close()
	for i := range 3 {
		text := fmt.Sprintf("session %d", i)
		m, err := s.Request(ctx, transport.Message{PPID: echo.PPID, Data: []byte(text)})
		if err != nil || string(m.Data) != "pe-1: "+text {
			t.Fatalf("session request %d: %q, %v", i, m.Data, err)
		}
	}
	if st := r.Stats().ASAP; st.ResolutionsRefused != 3 {
		t.Errorf("ResolutionsRefused %d after the authorised PU, want still 3", st.ResolutionsRefused)
	}
}

// TestDTLSPeeringAuthorized: registrars peered by ENRP (RFC 5353) over
// DTLS with a NamePolicy for peers (RFC 5353 §6). Two genuine registrars
// peer and sync a PE's registration both ways (ADD_PE, DEL_PE); a
// registrar whose certificate an untrusted CA signed cannot even
// associate (the genuine ones refuse its handshake); one from the trusted
// CA whose name the peer rule does not allow associates, but is never
// taken as a peer, and the PE registered at it is never applied by the
// genuine ones.
func TestDTLSPeeringAuthorized(t *testing.T) {
	ctx, ca := dtlsTest(t, "real SCTP over DTLS on loopback")
	const handle = "dtls-peered"
	peers := enrp.NamePolicy{Peers: []string{"*.reg.example"}}

	var saw1 handshakes
	cfg1 := withPolicy(t, peers, enrp.Config{Transport: secure(ca.Leaf(t, "reg-1.reg.example"), ca.Pool(), &saw1), ListenAddr: loopbackAny, Peers: lanPeers()})
	ev1 := track(t, &cfg1, 256)
	r1 := startRegistrar(t, cfg1)
	cfg2 := withPolicy(t, peers, enrp.Config{Transport: secure(ca.Leaf(t, "reg-2.reg.example"), ca.Pool(), nil), ListenAddr: loopbackAny, Peers: lanPeers(r1.Addr())})
	ev2 := track(t, &cfg2, 256)
	r2 := startRegistrar(t, cfg2)
	ev1.waitEvent(t, 10*time.Second, "r2 up at r1", func(e enrp.Event) bool { return e.Kind == enrp.EventPeerUp && e.ServerID == r2.ServerID() })
	ev2.waitEvent(t, 10*time.Second, "r1 up at r2", func(e enrp.Event) bool { return e.Kind == enrp.EventPeerUp && e.ServerID == r1.ServerID() })

	// The intruders: one of an untrusted CA (it trusts the genuine
	// ones), one of the trusted CA with a name the rule does not allow.
	rogueCfg := enrp.Config{Transport: secure(testpki.NewCA(t, "rogue").Leaf(t, "reg-3.reg.example"), ca.Pool(), nil), ListenAddr: loopbackAny, Peers: lanPeers(r1.Addr(), r2.Addr())}
	evRogue := track(t, &rogueCfg, 256)
	rogue := startRegistrar(t, rogueCfg)
	intruderCfg := enrp.Config{Transport: secure(ca.Leaf(t, "reg-4.other.example"), ca.Pool(), nil), ListenAddr: loopbackAny, Peers: lanPeers(r1.Addr(), r2.Addr())}
	intruder := startRegistrar(t, intruderCfg)

	// A PE at r1 reaches r2 (ADD_PE); a PE at the intruder reaches
	// neither.
	p := startSecurePE(t, "pe-1", ca.Leaf(t, "pe-1.pe.example"), ca.Pool(), asap.PEConfig{PoolHandle: []byte(handle), Registrars: []transport.Addr{r1.Addr()}, EndpointAddr: loopbackAny})
	if err := p.Register(ctx); err != nil {
		t.Fatal(err)
	}
	px := startSecurePE(t, "pe-9", ca.Leaf(t, "pe-9.pe.example"), ca.Pool(), asap.PEConfig{PoolHandle: []byte(handle), Registrars: []transport.Addr{intruder.Addr()}, EndpointAddr: loopbackAny})
	// (The intruder refuses registrations, Lack of Resources, until
	// its mentor wait ends: no peer answers it. The PE retries.)
	for {
		err := px.Register(ctx)
		if err == nil {
			break
		}
		var re *asap.RejectError
		if !errors.As(err, &re) || !re.Transient() {
			t.Fatalf("PE at the intruder: %v", err)
		}
	}
	waitUntil(t, 10*time.Second, 10*time.Millisecond, "the PE at r2", func() (bool, error) {
		pes, err := r2.PoolElements(ctx, []byte(handle))
		return len(pes) == 1 && pes[0].PE.ID == p.ID() && pes[0].PE.HomeServerID == r1.ServerID() && !pes[0].Owned, err
	})

	// The untrusted one is refused at the handshake by r1 (and r2); the
	// intruder's Presences are refused by Accept, several heartbeat
	// cycles' worth, while its PE registered.
	waitUntil(t, 10*time.Second, 10*time.Millisecond, "r1 refusing the rogue's handshake", func() (bool, error) {
		return len(saw1.all()) > 0, nil
	})
	for _, he := range saw1.all() { // (unknown authority: see TestDTLSRoguePERefused)
		if he.RefusedBy != sctp.SideLocal || !he.Server || he.Remote != rogue.ENRPAddr() {
			t.Errorf("r1's listener: %v: want r1 refusing the untrusted registrar at %v", he, rogue.ENRPAddr())
		}
	}
	refusedAt := func(r *enrp.Registrar) uint64 { return r.Stats().ENRP.PeersRefused }
	base1, base2 := refusedAt(r1), refusedAt(r2)
	waitUntil(t, 10*time.Second, 10*time.Millisecond, "the intruder refused as a peer again", func() (bool, error) {
		return refusedAt(r1) >= base1+2 && refusedAt(r2) >= base2+2, nil
	})
	for _, c := range []struct {
		r    *enrp.Registrar
		peer uint32
	}{{r1, r2.ServerID()}, {r2, r1.ServerID()}} {
		ps, err := c.r.Peers(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(ps) != 1 || ps[0].ServerID != c.peer {
			t.Errorf("%s's peer table %+v, want only %s", hex(c.r.ServerID()), ps, hex(c.peer))
		}
		if ids, err := poolIDs(ctx, c.r, handle); err != nil || !slices.Equal(ids, []uint32{p.ID()}) {
			t.Errorf("%s holds %v (%v), want only the PE of r1, not the intruder's", hex(c.r.ServerID()), ids, err)
		}
	}
	for _, e := range evRogue.seen() {
		if e.Kind == enrp.EventPeerUp {
			t.Errorf("the untrusted registrar got a peer: %v", e)
		}
	}
	if s := rogue.Stats(); s.PEs != 0 {
		t.Errorf("the untrusted registrar holds %d PEs", s.PEs)
	}

	// DEL_PE: the deregistration at r1 reaches r2.
	if err := p.Deregister(ctx); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 10*time.Second, 10*time.Millisecond, "the PE gone at r2", func() (bool, error) {
		ids, err := poolIDs(ctx, r2, handle)
		return len(ids) == 0, err
	})
	t.Logf("r1: %d handshakes refused, %d peers refused by Accept; r2: %d refused by Accept; intruder holds %d PE",
		len(saw1.all()), refusedAt(r1), refusedAt(r2), intruder.Stats().PEs)
}

// TestDTLSRegistrarOnPECertificateRefused: the pool's CA signed every
// PE's certificate, so the DTLS handshake alone lets a PE run a registrar
// that PEs and PUs accept (RFC 5355 §2.6 and §2.7, registration with and
// resolution at a malicious registrar, here an insider). With AuthorizeRegistrar (asap.RegistrarNames("*.reg.example"))
// they refuse it after the handshake, before any ASAP message: alone, their
// requests fail with a NoRegistrarError naming the refused identity, and
// the rogue gets no registration and no resolution; with the genuine
// registrar configured too, they use that one. Without the hook (before),
// a PE registered at the rogue.
func TestDTLSRegistrarOnPECertificateRefused(t *testing.T) {
	ctx, ca := dtlsTest(t, "real SCTP over DTLS on loopback")
	const handle = "dtls-insider"
	const evil = "evil.pe.example"
	good := startRegistrar(t, enrp.Config{Transport: secure(ca.Leaf(t, "reg-1.reg.example"), ca.Pool(), nil), ListenAddr: loopbackAny})
	rogue := startRegistrar(t, enrp.Config{Transport: secure(ca.Leaf(t, evil), ca.Pool(), nil), ListenAddr: loopbackAny})
	peTr := secure(ca.Leaf(t, "pe-1.pe.example"), ca.Pool(), nil)
	puTr := secure(ca.Leaf(t, "app.pu.example"), ca.Pool(), nil)
	auth := asap.RegistrarNames("*.reg.example")
	wantRefused := func(what string, err error) {
		t.Helper()
		var nr *asap.NoRegistrarError
		var rr *asap.RegistrarRefusedError
		if !errors.As(err, &nr) || !errors.Is(err, asap.ErrRegistrarRefused) || !errors.As(err, &rr) {
			t.Fatalf("%s: %v (%T), want a *asap.NoRegistrarError from a refused registrar", what, err, err)
		}
		if rr.Identity.Name != evil || !rr.Authenticated || rr.Addr != rogue.Addr() || rr.Identity.Leaf() == nil {
			t.Fatalf("%s: refusal %+v, want the rogue's verified certificate %q at %v", what, rr, evil, rogue.Addr())
		}
		t.Logf("%s: %v", what, err)
	}

	alone := []transport.Addr{rogue.Addr()}
	lonePE := startPE(t, "pe-0", peTr, loopbackAny, peTr, asap.PEConfig{
		PoolHandle: []byte(handle), Registrars: alone, EndpointAddr: loopbackAny, Timers: quickHunt, MaxServerHunts: 2, AuthorizeRegistrar: auth,
	})
	wantRefused("PE, rogue registrar only", lonePE.Register(ctx))
	if n := lonePE.Stats().RegistrarsRefused; n == 0 {
		t.Error("PE: PEStats.RegistrarsRefused = 0")
	}
	lonePE.stop()
	lonePU := newPU(t, asap.PUConfig{Registrars: alone, Timers: quickHunt, MaxServerHunts: 2, AuthorizeRegistrar: auth}, puTr)
	_, err := lonePU.Resolve(ctx, []byte(handle))
	wantRefused("PU, rogue registrar only", err)
	if n := lonePU.Stats().RegistrarsRefused; n == 0 {
		t.Error("PU: PUStats.RegistrarsRefused = 0")
	}
	lonePU.Close()
	wantUntouched(t, rogue)

	// Both configured: the genuine registrar serves them.
	both := []transport.Addr{rogue.Addr(), good.Addr()}
	p := startPE(t, "pe-1", peTr, loopbackAny, peTr, asap.PEConfig{
		PoolHandle: []byte(handle), Registrars: both, EndpointAddr: loopbackAny, Timers: quickHunt, AuthorizeRegistrar: auth,
	})
	if err := p.Register(ctx); err != nil {
		t.Fatalf("PE with both registrars: %v", err)
	}
	pu := newPU(t, asap.PUConfig{Registrars: both, Timers: quickHunt, AuthorizeRegistrar: auth}, puTr)
	pes, err := pu.Resolve(ctx, []byte(handle))
	if err != nil || !slices.Equal(peIDs(pes), []uint32{p.ID()}) {
		t.Fatalf("PU with both registrars resolved %v (%v), want the PE", peIDs(pes), err)
	}
	wantUntouched(t, rogue)

	// Before: without the hook the PE takes the rogue as its registrar.
	hijacked := startPE(t, "pe-2", peTr, loopbackAny, peTr, asap.PEConfig{
		PoolHandle: []byte(handle), Registrars: alone, EndpointAddr: loopbackAny, Timers: quickHunt, MaxServerHunts: 2,
	})
	if err := hijacked.Register(ctx); err != nil {
		t.Fatalf("PE without AuthorizeRegistrar, rogue only: %v", err)
	}
	if s := rogue.Stats(); s.ASAP.Registrations != 1 {
		t.Fatalf("without the hook the rogue got %d registrations, want 1 (the hijack)", s.ASAP.Registrations)
	}
	t.Logf("without AuthorizeRegistrar the rogue %q registered the PE; with it, 0 registrations, 0 resolutions", evil)
}
