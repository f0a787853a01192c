// Command secure runs a secured RSerPool on loopback, in one process, and
// prints what happens: a registrar, two echo pool elements and a pool user
// whose every association, ASAP and application alike, is SCTP over DTLS
// (RFC 8261), mutually authenticated with X.509 certificates (RFC 5355 §4)
// and encrypted; and the attacks of RFC 5355 failing against it:
//
//   - a rogue PE, with a certificate of the pool's CA but a name the
//     registrar's policy does not allow in the pool (§3.1, pool
//     hijacking), is refused with Rejected due to security considerations
//     (0xa, RFC 5354 §3.12);
//   - a PU whose name may not resolve the pool (handlespace scanning) gets
//     the same answer to its resolution;
//   - a rogue registrar that speaks ASAP correctly but presents a
//     certificate of another CA, with the genuine registrar's name (§3.2,
//     registrar impersonation), is refused by the handshake of a PE and of
//     a PU that are sent to it;
//   - a registrar run on a PE's certificate (the pool's CA signed it, so
//     the handshake succeeds) is refused by a PU whose AuthorizeRegistrar
//     (asap.RegistrarNames) allows the registrar's name only; the PEs have
//     the same check.
//
// The certificates come from a throwaway CA made in memory at start (and
// a second one for the rogue); no key is ever written to disk. It sends no
// announces: every endpoint is given the registrar's address.
//
//	go run ./examples/secure
//	go run ./examples/secure -n 6 -port 47000
//
// With -port P the registrar listens on UDP port P of 127.0.0.1, the rogue
// registrar on P+1, the two PEs on P+2 and P+3 and the registrar on a PE's
// certificate on P+4; every association of the run has one end on one of
// them, so that a capture of loopback can be narrowed to the run
// (wire-audit -p P -p P+1 -p P+2 -p P+3 -p P+4). Such a
// capture holds DTLS 1.2 records only: Wireshark's ASAP and ENRP dissectors
// find no message in it, and neither the pool handle nor the echoed text
// appears. The certificates, with their names, travel in clear in the
// DTLS 1.2 handshake: DTLS hides what is said, not who speaks to whom.
//
// The same setup with separate programs and PEM files is
// examples/registrar (-tls-cert, -tls-key, -tls-ca, -allow-pe, -allow-pu),
// examples/echo-pe and examples/pu-client (-tls-cert, -tls-key, -tls-ca,
// -registrar-name).
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net/netip"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/go-rserpool/rserpool/asap"
	"github.com/go-rserpool/rserpool/enrp"
	"github.com/go-rserpool/rserpool/internal/echo"
	"github.com/go-rserpool/rserpool/tlv"
	"github.com/go-rserpool/rserpool/transport"
	"github.com/go-rserpool/rserpool/transport/sctp"
)

// The names of the demo, as DNS SANs of the certificates, and the
// registrar's policy for the pool.
const (
	pool       = "echo"
	regName    = "reg-1.reg.example"
	peAllowed  = "*.pe.example"
	puAllowed  = "*.pu.example"
	rogueName  = "pe-666.attacker.example"
	scanName   = "scanner.attacker.example"
	clientName = "app.pu.example"
)

var loopback = transport.Addr{Kind: transport.KindSCTPUDP, AddrPort: netip.MustParseAddrPort("127.0.0.1:0")}

// at returns the loopback address at port base+i, or an ephemeral port
// when base is 0.
func at(base uint16, i uint16) transport.Addr {
	if base == 0 {
		return loopback
	}
	return transport.Addr{Kind: transport.KindSCTPUDP, AddrPort: netip.AddrPortFrom(loopback.AddrPort.Addr(), base+i)}
}

func main() {
	n := flag.Int("n", 4, "echo requests of the pool user")
	port := flag.Uint("port", 0, "UDP port of the registrar on 127.0.0.1; the rogue registrars and the two PEs take the next four (0: ephemeral ports)")
	flag.Parse()
	if *port > 65535-4 {
		log.Fatalf("-port %d: not a port with four more after it", *port)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := run(ctx, os.Stdout, *n, uint16(*port)); err != nil {
		log.Fatal(err)
	}
}

// certs are the demo's certificates.
type certs struct {
	ca, rogueCA *authority
	byName      map[string]tls.Certificate
}

func makeCerts(names ...string) (*certs, error) {
	ca, err := newAuthority("pool operator CA")
	if err != nil {
		return nil, err
	}
	rogueCA, err := newAuthority("rogue CA")
	if err != nil {
		return nil, err
	}
	c := &certs{ca: ca, rogueCA: rogueCA, byName: map[string]tls.Certificate{}}
	for _, n := range names {
		if c.byName[n], err = ca.issue(n); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// secured returns a transport that runs SCTP over DTLS with cert, trusting
// the pool operator's CA for the listeners it dials and the peers it
// accepts (mutual authentication, sctp.ClientAuthRequire by default).
func (c *certs) secured(cert tls.Certificate, serverName string, onFailure func(error)) *sctp.Transport {
	return sctp.New(sctp.Config{ShutdownTimeout: time.Second, DTLS: &sctp.DTLSConfig{
		Certificates:       []tls.Certificate{cert},
		RootCAs:            c.ca.pool,
		ServerName:         serverName,
		OnHandshakeFailure: onFailure,
	}})
}

// fastHunt makes an endpoint that finds no registrar give up quickly: two
// server hunts of at most 200 ms (RFC 5352 §3.6, MAX-NUMBER-SERVER-HUNT).
var fastHunt = asap.Timers{T5ServerHunt: 50 * time.Millisecond, T5ServerHuntMax: 200 * time.Millisecond}

// run runs the demo with n echo requests; port is -port.
func run(ctx context.Context, out io.Writer, n int, port uint16) (err error) {
	p := func(format string, args ...any) { fmt.Fprintf(out, format+"\n", args...) }
	var stops []func()
	defer func() {
		for i := len(stops) - 1; i >= 0; i-- {
			stops[i]()
		}
	}()

	c, err := makeCerts(regName, "pe-1.pe.example", "pe-2.pe.example", rogueName, clientName, scanName)
	if err != nil {
		return err
	}
	p("pki: %q and %q made in memory; %d ECDSA P-256 certificates from the first", c.ca.name, c.rogueCA.name, len(c.byName))

	// The registrar: only *.pe.example may register in the pool, only
	// *.pu.example resolve it.
	var refusals atomic.Int64 // handshakes the registrar's listener refused or lost
	cfg := enrp.Config{
		Transport:  c.secured(c.byName[regName], "", func(error) { refusals.Add(1) }),
		ListenAddr: at(port, 0),
	}
	policy := enrp.NamePolicy{
		Register: enrp.PoolACL{Pools: map[string][]string{pool: {peAllowed}}},
		Resolve:  enrp.PoolACL{Pools: map[string][]string{pool: {puAllowed}}},
	}
	if err := policy.Apply(&cfg); err != nil {
		return err
	}
	reg, err := start(cfg, &stops)
	if err != nil {
		return err
	}
	p("registrar %08x (%s) at %v: SCTP over DTLS; may register in %q: %s; may resolve it: %s",
		reg.ServerID(), regName, reg.Addr(), pool, peAllowed, puAllowed)

	// Two PEs register and serve; they accept only the registrar's name.
	var pes []*asap.PoolElement
	for i, name := range []string{"pe-1.pe.example", "pe-2.pe.example"} {
		pe, addr, err := startPE(ctx, c.secured(c.byName[name], regName, nil), name[:4], at(port, 2+uint16(i)), reg.Addr(), asap.Timers{}, &stops)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		if err := pe.Register(ctx); err != nil {
			return fmt.Errorf("%s: register: %w", name, err)
		}
		pes = append(pes, pe)
		p("%s registered in %q as PE %08x, serving at %v", name, pool, pe.ID(), addr)
	}

	// The pool user resolves the pool and is served by both PEs; the PEs
	// it dials prove their names too. Its one transport dials PEs as well
	// as registrars, so it cannot pin the registrar's name in the
	// handshake (ServerName): AuthorizeRegistrar does.
	pu, err := asap.NewPoolUser(asap.PUConfig{Registrars: []transport.Addr{reg.Addr()}, AuthorizeRegistrar: asap.RegistrarNames(regName)}, c.secured(c.byName[clientName], "", nil))
	if err != nil {
		return err
	}
	stops = append(stops, func() { pu.Close() })
	found, err := pu.Resolve(ctx, []byte(pool))
	if err != nil {
		return fmt.Errorf("%s: resolve: %w", clientName, err)
	}
	p("%s resolved %q: %d PEs", clientName, pool, len(found))
	conn, pe, err := pu.Dial(ctx, []byte(pool))
	if err != nil {
		return fmt.Errorf("%s: dial: %w", clientName, err)
	}
	id, ok := transport.PeerIdentityOf(conn)
	conn.Close()
	if !ok {
		return errors.New("the PE's association is not authenticated")
	}
	p("%s dialled PE %08x: certificate %s, verified", clientName, pe.ID, id)
	for i := 1; i <= n; i++ {
		a, err := echo.Call(ctx, pu, []byte(pool), fmt.Sprintf("request %d", i), 5*time.Second)
		if err != nil {
			return fmt.Errorf("request %d: %w", i, err)
		}
		p("request %d answered by %s (PE %08x): %q", i, a.From, a.PE, a.Text)
	}

	// A rogue PE: the pool's CA signed its certificate, but its name may
	// not register in the pool.
	rogue, _, err := startPE(ctx, c.secured(c.byName[rogueName], regName, nil), "rogue", loopback, reg.Addr(), asap.Timers{}, &stops)
	if err != nil {
		return err
	}
	err = rogue.Register(ctx)
	var re *asap.RejectError
	if !errors.As(err, &re) || re.Code() != tlv.CauseRejectedSecurity {
		return fmt.Errorf("rogue PE %s: %v, want refused with 0xa", rogueName, err)
	}
	p("rogue PE %s refused (0x%x): %v", rogueName, uint16(re.Code()), err)

	// A PE whose certificate another CA signed, with an allowed name: the
	// registrar refuses its handshake, so it never speaks ASAP.
	forged, err := c.rogueCA.issue("pe-3.pe.example")
	if err != nil {
		return err
	}
	intruder, _, err := startPE(ctx, c.secured(forged, regName, nil), "pe-3", loopback, reg.Addr(), fastHunt, &stops)
	if err != nil {
		return err
	}
	err = intruder.Register(ctx)
	var he *sctp.HandshakeError
	if !errors.Is(err, asap.ErrNoRegistrar) || !errors.As(err, &he) || he.RefusedBy != sctp.SidePeer {
		return fmt.Errorf("PE of the rogue CA: %v, want the registrar refusing its handshake", err)
	}
	p("PE pe-3.pe.example of %q refused by the registrar's handshake: %v", c.rogueCA.name, he)

	// A PU that may not resolve the pool.
	scanner, err := asap.NewPoolUser(asap.PUConfig{Registrars: []transport.Addr{reg.Addr()}}, c.secured(c.byName[scanName], "", nil))
	if err != nil {
		return err
	}
	stops = append(stops, func() { scanner.Close() })
	_, err = scanner.Resolve(ctx, []byte(pool))
	if !errors.As(err, &re) || re.Code() != tlv.CauseRejectedSecurity {
		return fmt.Errorf("PU %s: %v, want refused with 0xa", scanName, err)
	}
	p("PU %s refused (0x%x): %v", scanName, uint16(re.Code()), err)

	// A rogue registrar: the genuine one's name, another CA, and it takes
	// any peer (no client authentication). A PE and a PU sent to it
	// refuse its certificate in the handshake.
	rogueCert, err := c.rogueCA.issue(regName)
	if err != nil {
		return err
	}
	var rogueSaw atomic.Int64
	rogueReg, err := start(enrp.Config{
		Transport: sctp.New(sctp.Config{ShutdownTimeout: time.Second, DTLS: &sctp.DTLSConfig{
			Certificates: []tls.Certificate{rogueCert}, RootCAs: c.rogueCA.pool, ClientAuth: sctp.ClientAuthNone,
			OnHandshakeFailure: func(error) { rogueSaw.Add(1) },
		}}),
		ListenAddr: at(port, 1),
	}, &stops)
	if err != nil {
		return err
	}
	p("rogue registrar %08x at %v: certificate %q from %q", rogueReg.ServerID(), rogueReg.Addr(), regName, c.rogueCA.name)
	lured, _, err := startPE(ctx, c.secured(c.byName["pe-1.pe.example"], regName, nil), "pe-1-lured", loopback, rogueReg.Addr(), fastHunt, &stops)
	if err != nil {
		return err
	}
	err = lured.Register(ctx)
	if err := wantHandshakeRefused(err); err != nil {
		return fmt.Errorf("PE sent to the rogue registrar: %w", err)
	}
	p("rogue registrar refused by the PE: %v", err)
	luredPU, err := asap.NewPoolUser(asap.PUConfig{Registrars: []transport.Addr{rogueReg.Addr()}, Timers: fastHunt, MaxServerHunts: 2}, c.secured(c.byName[clientName], "", nil))
	if err != nil {
		return err
	}
	stops = append(stops, func() { luredPU.Close() })
	_, err = luredPU.Resolve(ctx, []byte(pool))
	if err := wantHandshakeRefused(err); err != nil {
		return fmt.Errorf("PU sent to the rogue registrar: %w", err)
	}
	p("rogue registrar refused by the PU: %v", err)

	// A registrar on a PE's certificate: the pool's CA signed it, so the
	// handshake succeeds; the PU's AuthorizeRegistrar refuses the name.
	insider, err := start(enrp.Config{Transport: c.secured(c.byName[rogueName], "", nil), ListenAddr: at(port, 4)}, &stops)
	if err != nil {
		return err
	}
	p("registrar %08x at %v on the PE certificate %q of %q", insider.ServerID(), insider.Addr(), rogueName, c.ca.name)
	insidePU, err := asap.NewPoolUser(asap.PUConfig{Registrars: []transport.Addr{insider.Addr()}, Timers: fastHunt, MaxServerHunts: 2,
		AuthorizeRegistrar: asap.RegistrarNames(regName)}, c.secured(c.byName[clientName], "", nil))
	if err != nil {
		return err
	}
	stops = append(stops, func() { insidePU.Close() })
	_, err = insidePU.Resolve(ctx, []byte(pool))
	if !errors.Is(err, asap.ErrNoRegistrar) || !errors.Is(err, asap.ErrRegistrarRefused) {
		return fmt.Errorf("PU sent to the registrar on a PE certificate: %v, want it refused by AuthorizeRegistrar", err)
	}
	p("registrar on a PE certificate refused by the PU: %v", err)

	// What each registrar holds in the end.
	held, err := reg.PoolElements(ctx, []byte(pool))
	if err != nil {
		return err
	}
	s, rs := reg.Stats(), rogueReg.Stats()
	p("registrar %08x: %d PEs in %q, %d registrations accepted, %d refused (0xa), %d resolutions refused (0xa), %d handshakes refused",
		reg.ServerID(), len(held), pool, s.ASAP.Registrations, s.ASAP.RegistrationsRefd, s.ASAP.ResolutionsRefused, refusals.Load())
	p("rogue registrar %08x: %d PEs, %d registrations, %d resolutions, %d handshakes refused by its peers",
		rogueReg.ServerID(), rs.PEs, rs.ASAP.Registrations, rs.ASAP.Resolutions, rogueSaw.Load())
	is := insider.Stats()
	p("registrar on a PE certificate %08x: %d PEs, %d registrations, %d resolutions",
		insider.ServerID(), is.PEs, is.ASAP.Registrations, is.ASAP.Resolutions)

	for _, pe := range pes {
		if err := pe.Deregister(ctx); err != nil {
			return err
		}
	}
	p("done: PEs deregistered")
	return nil
}

// wantHandshakeRefused checks that err is a request that found no
// registrar because this side refused the registrar's certificate.
func wantHandshakeRefused(err error) error {
	var he *sctp.HandshakeError
	var ua x509.UnknownAuthorityError
	if !errors.Is(err, asap.ErrNoRegistrar) || !errors.As(err, &he) || he.RefusedBy != sctp.SideLocal || !errors.As(err, &ua) {
		return fmt.Errorf("%v, want no registrar after refusing its certificate", err)
	}
	return nil
}

// start runs a registrar until run returns.
func start(cfg enrp.Config, stops *[]func()) (*enrp.Registrar, error) {
	r, err := enrp.New(cfg)
	if err != nil {
		return nil, err
	}
	ran := make(chan error, 1)
	go func() { ran <- r.Run(context.Background()) }()
	*stops = append(*stops, func() {
		r.Close()
		if err := <-ran; err != nil {
			log.Printf("registrar %08x: %v", r.ServerID(), err)
		}
	})
	return r, nil
}

// startPE starts an echo PE named name on tr, serving pool users at
// listen and registering with the registrar at reg; Register is the
// caller's. It stops when run returns.
func startPE(ctx context.Context, tr *sctp.Transport, name string, listen, reg transport.Addr, timers asap.Timers, stops *[]func()) (*asap.PoolElement, transport.Addr, error) {
	ln, err := tr.Listen(listen)
	if err != nil {
		return nil, transport.Addr{}, err
	}
	ut, err := asap.TransportParam(ln.Addr(), tlv.TransportUseDataOnly)
	if err != nil {
		ln.Close()
		return nil, transport.Addr{}, err
	}
	pe, err := asap.NewPoolElement(asap.PEConfig{
		PoolHandle: []byte(pool), UserTransport: ut, Registrars: []transport.Addr{reg},
		EndpointAddr: loopback, Timers: timers, MaxServerHunts: 2,
		// ServerName pins the registrars the PE dials; this covers
		// those that open associations to its endpoint (a takeover).
		AuthorizeRegistrar: asap.RegistrarNames(regName),
	}, tr)
	if err != nil {
		ln.Close()
		return nil, transport.Addr{}, err
	}
	sctx, cancel := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() { served <- echo.Serve(sctx, ln, name) }()
	*stops = append(*stops, func() {
		pe.Close()
		cancel()
		ln.Close()
		<-served
	})
	return pe, ln.Addr(), nil
}
