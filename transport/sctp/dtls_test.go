package sctp_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/go-rserpool/rserpool/internal/leakcheck"
	"github.com/go-rserpool/rserpool/internal/testpki"
	"github.com/go-rserpool/rserpool/transport"
	"github.com/go-rserpool/rserpool/transport/sctp"
	"github.com/go-rserpool/rserpool/transport/transporttest"
)

// pki is one test's certificates: a CA, a listener's and a dialler's leaf,
// and an untrusted CA with a leaf of the same names.
type pki struct {
	ca, rogue      *testpki.CA
	server, client sctp.DTLSConfig
}

func newPKI(t testing.TB) *pki {
	ca := testpki.NewCA(t, "test pool CA")
	p := &pki{ca: ca, rogue: testpki.NewCA(t, "rogue CA")}
	p.server = sctp.DTLSConfig{Certificates: p.leaf(ca, t, "registrar.test"), RootCAs: ca.Pool()}
	p.client = sctp.DTLSConfig{Certificates: p.leaf(ca, t, "pe.test"), RootCAs: ca.Pool()}
	return p
}

func (*pki) leaf(ca *testpki.CA, t testing.TB, name string, opts ...testpki.LeafOption) []tls.Certificate {
	return []tls.Certificate{ca.Leaf(t, name, opts...)}
}

// dtlsFactory returns transports over DTLS: the client transport has its
// own certificate, the server transport the listener's.
func dtlsFactory(ip string) transporttest.Factory {
	return func(t testing.TB) (client, server transport.Transport, listenAt transport.Addr) {
		p := newPKI(t)
		// The suite's own deadline (transporttest.Timeout) bounds every
		// handshake: 200 DTLS handshakes at once under -race on a loaded
		// 2-core machine queue behind one another for longer than the
		// 10 s default, and the suite tests that they all succeed, not
		// how fast.
		p.client.HandshakeTimeout = transporttest.Timeout
		p.server.HandshakeTimeout = transporttest.Timeout
		return sctp.New(sctp.Config{DTLS: &p.client}), sctp.New(sctp.Config{DTLS: &p.server}),
			transport.Addr{Kind: transport.KindSCTPUDP, AddrPort: netip.AddrPortFrom(netip.MustParseAddr(ip), 0)}
	}
}

// dtlsSuite opens 64 associations at once in ManyAssociations instead of
// 200: 200 DTLS handshakes at once under -race on a 2-core machine
// loaded by other packages' tests occasionally passed the suite's 30 s
// bound (a lost handshake flight waits for pion/dtls's doubling
// retransmission: 1 s, 2 s, 4 s, ...). The plain suite keeps 200 for the
// demultiplexer; 64 still runs many connection-ID associations over one
// listener socket.
var dtlsSuite = transporttest.Options{ManyAssociations: 64}

func TestConformanceDTLS(t *testing.T) {
	transporttest.RunWith(t, dtlsFactory("127.0.0.1"), dtlsSuite)
}

func TestConformanceDTLSIPv6(t *testing.T) {
	if !hasIPv6Loopback() {
		t.Skip("no IPv6 loopback (::1) on this machine")
	}
	transporttest.RunWith(t, dtlsFactory("::1"), dtlsSuite)
}

var loopback0 = transport.Addr{Kind: transport.KindSCTPUDP, AddrPort: netip.MustParseAddrPort("127.0.0.1:0")}

// secureListen listens over DTLS with cfg on 127.0.0.1 and closes the
// listener at the end of the test.
func secureListen(t *testing.T, cfg sctp.DTLSConfig) transport.Listener {
	t.Helper()
	l, err := sctp.New(sctp.Config{DTLS: &cfg}).Listen(loopback0)
	if err != nil {
		t.Fatalf("Listen: %v", err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// secureDial dials l over DTLS with cfg and accepts the association,
// returning Dial's error, or both ends.
func secureDial(t *testing.T, l transport.Listener, cfg sctp.DTLSConfig) (c, s transport.Conn, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	type res struct {
		c   transport.Conn
		err error
	}
	ach := make(chan res, 1)
	actx, acancel := context.WithCancel(ctx)
	defer acancel()
	go func() {
		s, err := l.Accept(actx)
		ach <- res{s, err}
	}()
	c, err = sctp.New(sctp.Config{DTLS: &cfg}).Dial(ctx, l.Addr())
	if err != nil {
		acancel()
		if a := <-ach; a.err == nil {
			a.c.Close()
			t.Errorf("the listener accepted an association whose dial failed")
		}
		return nil, nil, err
	}
	t.Cleanup(func() { c.Close() })
	a := <-ach
	if a.err != nil {
		t.Fatalf("Accept: %v", a.err)
	}
	t.Cleanup(func() { a.c.Close() })
	return c, a.c, nil
}

func TestDTLSPeerIdentity(t *testing.T) {
	leakcheck.Check(t)
	p := newPKI(t)
	// The client's leaf has no DNS SAN: its common name names it.
	p.client.Certificates = p.leaf(p.ca, t, "pe-by-cn", testpki.NoSAN())
	l := secureListen(t, p.server)
	c, s, err := secureDial(t, l, p.client)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	for _, tc := range []struct {
		end  string
		conn transport.Conn
		want string
	}{{"dialler", c, "registrar.test"}, {"listener", s, "pe-by-cn"}} {
		id, ok := transport.PeerIdentityOf(tc.conn)
		if !ok {
			t.Errorf("%s: no peer identity", tc.end)
			continue
		}
		if id.Name != tc.want {
			t.Errorf("%s: peer name %q, want %q", tc.end, id.Name, tc.want)
		}
		if len(id.Certificates) != 2 || id.Leaf().Subject.CommonName != tc.want || !id.Certificates[1].Equal(p.ca.Cert) {
			t.Errorf("%s: verified chain %v, want the peer's leaf and the CA", tc.end, id.Certificates)
		}
	}
	ctx := context.Background()
	if err := c.Send(ctx, transport.Message{PPID: transport.PPIDASAP, Data: []byte("secret")}); err != nil {
		t.Fatal(err)
	}
	if m, err := s.Recv(ctx); err != nil || string(m.Data) != "secret" {
		t.Fatalf("Recv = %q, %v", m.Data, err)
	}

	// Plain SCTP has no identity.
	pl, pc := plainPair(t)
	if _, ok := transport.PeerIdentityOf(pl); ok {
		t.Error("a plain SCTP association reports a peer identity")
	}
	if _, ok := transport.PeerIdentityOf(pc); ok {
		t.Error("a plain SCTP association reports a peer identity")
	}
}

// plainPair is a plain SCTP association on loopback.
func plainPair(t *testing.T) (c, s transport.Conn) {
	t.Helper()
	tr := sctp.New(sctp.Config{})
	l, err := tr.Listen(loopback0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err = tr.Dial(ctx, l.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	s, err = l.Accept(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return c, s
}

// handshakeErr returns err as a *HandshakeError, failing t if it is not one.
func handshakeErr(t *testing.T, err error) *sctp.HandshakeError {
	t.Helper()
	var he *sctp.HandshakeError
	if !errors.As(err, &he) || !errors.Is(err, sctp.ErrHandshake) || !errors.Is(err, transport.ErrAssociationLost) {
		t.Fatalf("error %v (%T), want a *HandshakeError matching ErrHandshake and ErrAssociationLost", err, err)
	}
	return he
}

func TestDTLSUntrustedServerRefused(t *testing.T) {
	leakcheck.Check(t)
	p := newPKI(t)
	rogue := p.server
	rogue.Certificates = p.leaf(p.rogue, t, "registrar.test") // same name, untrusted CA
	rogue.RootCAs = p.ca.Pool()                               // it would accept our client
	l := secureListen(t, rogue)
	_, _, err := secureDial(t, l, p.client)
	he := handshakeErr(t, err)
	var ua x509.UnknownAuthorityError
	if he.RefusedBy != sctp.SideLocal || he.Server || !errors.As(err, &ua) {
		t.Errorf("%v: refused by %v (server %v), want the dialler refusing an unknown authority", err, he.RefusedBy, he.Server)
	}
	t.Log(err)
}

func TestDTLSUntrustedClientRefused(t *testing.T) {
	leakcheck.Check(t)
	p := newPKI(t)
	failures := make(chan error, 4)
	p.server.OnHandshakeFailure = func(err error) { failures <- err }
	l := secureListen(t, p.server)
	for _, tc := range []struct {
		name  string
		certs []tls.Certificate
	}{
		{"untrusted", p.leaf(p.rogue, t, "pe.test")},
		{"none", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			client := p.client
			client.Certificates = tc.certs
			_, _, err := secureDial(t, l, client)
			he := handshakeErr(t, err)
			if he.RefusedBy != sctp.SidePeer || he.Alert == "" {
				t.Errorf("dialler: %v: refused by %v, want the peer with an alert", err, he.RefusedBy)
			}
			t.Log("dialler:", err)
			select {
			case err := <-failures:
				lhe := handshakeErr(t, err)
				if lhe.RefusedBy != sctp.SideLocal || !lhe.Server {
					t.Errorf("listener: %v: refused by %v (server %v), want the listener refusing", err, lhe.RefusedBy, lhe.Server)
				}
				t.Log("listener:", err)
			case <-time.After(10 * time.Second):
				t.Fatal("the listener reported no handshake failure")
			}
		})
	}
}

func TestDTLSVerifyPeerAndServerName(t *testing.T) {
	leakcheck.Check(t)
	p := newPKI(t)
	errNotInPool := errors.New("not in this pool")
	server := p.server
	server.VerifyPeer = func(id transport.Identity) error {
		if id.Name != "pe.test" {
			return errNotInPool
		}
		return nil
	}
	l := secureListen(t, server)
	other := p.client
	other.Certificates = p.leaf(p.ca, t, "other.test")
	if _, _, err := secureDial(t, l, other); handshakeErr(t, err).RefusedBy != sctp.SidePeer {
		t.Errorf("a peer VerifyPeer refuses: %v", err)
	}
	wrongName := p.client
	wrongName.ServerName = "elsewhere.test"
	if _, _, err := secureDial(t, l, wrongName); handshakeErr(t, err).RefusedBy != sctp.SideLocal {
		t.Errorf("a listener with another name: %v", err)
	}
	rightName := p.client
	rightName.ServerName = "registrar.test"
	if _, _, err := secureDial(t, l, rightName); err != nil {
		t.Errorf("the right name and an accepted client: %v", err)
	}
}

func TestDTLSConfigErrors(t *testing.T) {
	leakcheck.Check(t)
	p := newPKI(t)
	good := p.leaf(p.ca, t, "good.test")[0]
	other := p.leaf(p.ca, t, "other.test")[0]
	noKey := good
	noKey.PrivateKey = nil
	mismatch := good
	mismatch.PrivateKey = other.PrivateKey
	roots := p.ca.Pool()
	for _, tc := range []struct {
		name string
		cfg  sctp.DTLSConfig
	}{
		{"no key", sctp.DTLSConfig{Certificates: []tls.Certificate{noKey}, RootCAs: roots}},
		{"key mismatch", sctp.DTLSConfig{Certificates: []tls.Certificate{mismatch}, RootCAs: roots}},
		{"expired", sctp.DTLSConfig{Certificates: p.leaf(p.ca, t, "old.test", testpki.Expired()), RootCAs: roots}},
		{"no certificate bytes", sctp.DTLSConfig{Certificates: []tls.Certificate{{PrivateKey: good.PrivateKey}}, RootCAs: roots}},
		{"unknown client auth", sctp.DTLSConfig{Certificates: []tls.Certificate{good}, ClientAuth: 7, RootCAs: roots}},
		{"no RootCAs", sctp.DTLSConfig{Certificates: []tls.Certificate{good}}},
		{"ClientCAs without RootCAs", sctp.DTLSConfig{Certificates: []tls.Certificate{good}, ClientCAs: roots}},
		{"no RootCAs, no client auth", sctp.DTLSConfig{Certificates: []tls.Certificate{good}, ClientAuth: sctp.ClientAuthNone}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := sctp.Config{DTLS: &tc.cfg}
			if err := cfg.Validate(); !errors.Is(err, sctp.ErrDTLSConfig) {
				t.Errorf("Validate = %v, want ErrDTLSConfig", err)
			}
			tr := sctp.New(cfg)
			if _, err := tr.Listen(loopback0); !errors.Is(err, sctp.ErrDTLSConfig) {
				t.Errorf("Listen = %v, want ErrDTLSConfig", err)
			}
			if _, err := tr.Dial(context.Background(), transport.Addr{Kind: transport.KindSCTPUDP, AddrPort: netip.MustParseAddrPort("127.0.0.1:9")}); !errors.Is(err, sctp.ErrDTLSConfig) {
				t.Errorf("Dial = %v, want ErrDTLSConfig", err)
			}
			t.Log(cfg.Validate())
		})
	}
	if _, err := sctp.New(sctp.Config{DTLS: &sctp.DTLSConfig{RootCAs: p.ca.Pool()}}).Listen(loopback0); !errors.Is(err, sctp.ErrDTLSConfig) {
		t.Errorf("Listen without a certificate = %v, want ErrDTLSConfig", err)
	}
	if err := (sctp.Config{DTLS: &sctp.DTLSConfig{Certificates: []tls.Certificate{good}, RootCAs: roots}}).Validate(); err != nil {
		t.Errorf("a good certificate: %v", err)
	}
	// Without RootCAs the host's roots would verify the peers: refused,
	// naming the cause, unless SystemRoots asks for them.
	if err := (sctp.Config{DTLS: &sctp.DTLSConfig{Certificates: []tls.Certificate{good}}}).Validate(); !errors.Is(err, sctp.ErrNoRootCAs) || !errors.Is(err, sctp.ErrDTLSConfig) {
		t.Errorf("no RootCAs: %v, want ErrNoRootCAs and ErrDTLSConfig", err)
	}
	if err := (sctp.Config{DTLS: &sctp.DTLSConfig{Certificates: []tls.Certificate{good}, SystemRoots: true}}).Validate(); err != nil {
		t.Errorf("no RootCAs with SystemRoots: %v", err)
	}
	if err := (sctp.Config{}).Validate(); err != nil {
		t.Errorf("no DTLS: %v", err)
	}
}

// An Endpoint over DTLS dials from its own address, the peer dials back
// there, and a second association to the same peer is a second DTLS
// connection on the same 5-tuple, told apart by its connection ID.
func TestDTLSEndpoint(t *testing.T) {
	leakcheck.Check(t)
	p := newPKI(t)
	pe := p.client
	pe.Certificates = p.leaf(p.ca, t, "pe.test")
	petr := sctp.New(sctp.Config{DTLS: &pe})
	e, err := petr.ListenEndpoint(loopback0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	l := secureListen(t, p.server)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := e.DialFrom(ctx, l.Addr())
	if err != nil {
		t.Fatalf("DialFrom: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	s, err := l.Accept(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if s.RemoteAddr() != e.Addr() || c.LocalAddr() != e.Addr() {
		t.Errorf("association from %v (local %v), want the Endpoint's %v", s.RemoteAddr(), c.LocalAddr(), e.Addr())
	}
	if id, ok := transport.PeerIdentityOf(c); !ok || id.Name != "registrar.test" {
		t.Errorf("DialFrom's peer identity %v, %v", id, ok)
	}
	if id, ok := transport.PeerIdentityOf(s); !ok || id.Name != "pe.test" {
		t.Errorf("accepted peer identity %v, %v", id, ok)
	}
	c2, err := e.DialFrom(ctx, l.Addr())
	if err != nil {
		t.Fatalf("second DialFrom to the same peer: %v", err)
	}
	t.Cleanup(func() { c2.Close() })
	s2, err := l.Accept(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s2.Close() })
	if s2.RemoteAddr() != e.Addr() {
		t.Errorf("second association from %v, want %v", s2.RemoteAddr(), e.Addr())
	}
	for i, pair := range [][2]transport.Conn{{c, s}, {c2, s2}, {s2, c2}, {s, c}} {
		msg := []byte{'m', byte('0' + i)}
		if err := pair[0].Send(ctx, transport.Message{PPID: transport.PPIDASAP, Data: msg}); err != nil {
			t.Fatal(err)
		}
		if m, err := pair[1].Recv(ctx); err != nil || string(m.Data) != string(msg) {
			t.Fatalf("association %d: Recv = %q, %v, want %q", i, m.Data, err, msg)
		}
	}
	// The registrar dials the PE back at the address it saw.
	ach := make(chan transport.Conn, 1)
	go func() {
		a, err := e.Accept(ctx)
		if err != nil {
			t.Error(err)
		}
		ach <- a
	}()
	b, err := sctp.New(sctp.Config{DTLS: &p.server}).Dial(ctx, s.RemoteAddr())
	if err != nil {
		t.Fatalf("dial back: %v", err)
	}
	t.Cleanup(func() { b.Close() })
	a := <-ach
	if a == nil {
		t.FailNow()
	}
	t.Cleanup(func() { a.Close() })
	if err := b.Send(ctx, transport.Message{PPID: transport.PPIDASAP, Data: []byte("keep alive")}); err != nil {
		t.Fatal(err)
	}
	if m, err := a.Recv(ctx); err != nil || string(m.Data) != "keep alive" {
		t.Fatalf("Recv = %q, %v", m.Data, err)
	}
}

// A DTLS listener at MaxAssociations refuses a new peer's ClientHello with
// a fatal alert, so that its Dial fails at once instead of timing out.
func TestDTLSMaxAssociationsRefused(t *testing.T) {
	leakcheck.Check(t)
	p := newPKI(t)
	l, err := sctp.New(sctp.Config{DTLS: &p.server, MaxAssociations: 1}).Listen(loopback0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	if _, _, err := secureDial(t, l, p.client); err != nil {
		t.Fatalf("first association: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// Without the alert Dial would end with ctx's error, not a
	// HandshakeError.
	_, err = sctp.New(sctp.Config{DTLS: &p.client}).Dial(ctx, l.Addr())
	he := handshakeErr(t, err)
	if he.RefusedBy != sctp.SidePeer || he.Alert == "" {
		t.Errorf("%v: refused by %v, want the peer with an alert", err, he.RefusedBy)
	}
	t.Log(err)
}

// ClientAuthVerifyIfGiven and ClientAuthNone accept a dialler without a
// certificate, whose association then has no identity. A dialler presents
// its certificate even when it is not from one of the CAs the listener
// names (the CertificateRequest lists ClientCAs), so under VerifyIfGiven
// an untrusted certificate is refused: it never becomes an identity.
func TestDTLSClientAuthPolicies(t *testing.T) {
	leakcheck.Check(t)
	p := newPKI(t)
	anonymous := p.client
	anonymous.Certificates = nil
	untrusted := p.client
	untrusted.Certificates = p.leaf(p.rogue, t, "pe.test")
	for _, tc := range []struct {
		auth          sctp.ClientAuth
		client        sctp.DTLSConfig
		accept, ident bool
	}{
		{sctp.ClientAuthVerifyIfGiven, anonymous, true, false},
		{sctp.ClientAuthVerifyIfGiven, p.client, true, true},
		{sctp.ClientAuthVerifyIfGiven, untrusted, false, false},
		{sctp.ClientAuthNone, anonymous, true, false},
		{sctp.ClientAuthNone, p.client, true, false},
	} {
		server := p.server
		server.ClientAuth = tc.auth
		l := secureListen(t, server)
		c, s, err := secureDial(t, l, tc.client)
		if (err == nil) != tc.accept {
			t.Errorf("policy %d, client certificates %d: Dial = %v, want accepted %v", tc.auth, len(tc.client.Certificates), err, tc.accept)
			continue
		}
		if err != nil {
			continue
		}
		if _, ok := transport.PeerIdentityOf(s); ok != tc.ident {
			t.Errorf("policy %d, client certificates %d: listener sees an identity %v, want %v", tc.auth, len(tc.client.Certificates), ok, tc.ident)
		}
		if id, ok := transport.PeerIdentityOf(c); !ok || id.Name != "registrar.test" {
			t.Errorf("the dialler always verifies the listener: %v, %v", id, ok)
		}
	}
}

// Refusals read alike when an Endpoint dials: its DTLS records carry the
// listener's connection ID, and the alert that ends a refused handshake
// still reaches the other side as the refusal it is.
func TestDTLSEndpointRefusals(t *testing.T) {
	leakcheck.Check(t)
	p := newPKI(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	endpoint := func(cfg sctp.DTLSConfig) transport.Endpoint {
		e, err := sctp.New(sctp.Config{DTLS: &cfg}).ListenEndpoint(loopback0)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { e.Close() })
		return e
	}
	failures := make(chan error, 4)
	server := p.server
	server.OnHandshakeFailure = func(err error) { failures <- err }
	l := secureListen(t, server)

	rogue := p.client
	rogue.Certificates = p.leaf(p.rogue, t, "pe.test")
	rogue.RootCAs = p.ca.Pool()
	_, err := endpoint(rogue).DialFrom(ctx, l.Addr())
	if he := handshakeErr(t, err); he.RefusedBy != sctp.SidePeer {
		t.Errorf("an untrusted Endpoint: %v, want refused by the listener", err)
	}
	select {
	case err := <-failures:
		if he := handshakeErr(t, err); he.RefusedBy != sctp.SideLocal {
			t.Errorf("listener: %v, want its own refusal", err)
		}
	case <-ctx.Done():
		t.Fatal("the listener reported no failure")
	}

	rogueServer := p.server
	rogueServer.Certificates = p.leaf(p.rogue, t, "registrar.test")
	rl := secureListen(t, rogueServer)
	_, err = endpoint(p.client).DialFrom(ctx, rl.Addr())
	var ua x509.UnknownAuthorityError
	if he := handshakeErr(t, err); he.RefusedBy != sctp.SideLocal || !errors.As(err, &ua) {
		t.Errorf("an Endpoint dialling an untrusted listener: %v, want its own refusal", err)
	}
}
