package memnet_test

import (
	"context"
	"crypto/x509"
	"testing"

	"github.com/go-rserpool/rserpool/transport"
	"github.com/go-rserpool/rserpool/transport/memnet"
)

// Test identities (Node.SetIdentity): each end of an association reports
// the identity its peer's node had when the association was opened, through
// transport.PeerIdentifier; a node without one is unauthenticated.
func TestNodeIdentity(t *testing.T) {
	ctx := context.Background()
	net := memnet.New(1)
	defer net.Close()
	srv, pe, anon := net.NewNode(), net.NewNode(), net.NewNode()
	leaf := &x509.Certificate{DNSNames: []string{"reg.example.org"}}
	srv.SetIdentity(transport.Identity{Name: "reg.example.org", Certificates: []*x509.Certificate{leaf}})
	pe.SetIdentity(transport.Identity{Name: "pe1.example.org"})
	if got := pe.Identity(); got.Name != "pe1.example.org" {
		t.Fatalf("Identity() = %+v", got)
	}
	l, err := srv.ListenEndpoint(srv.Addr(transport.PortASAP))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()

	pair := func(from transport.Transport) (client, server transport.Conn) {
		t.Helper()
		c, err := from.Dial(ctx, l.Addr())
		if err != nil {
			t.Fatal(err)
		}
		s, err := l.Accept(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return c, s
	}
	want := func(c transport.Conn, name string, certs int) {
		t.Helper()
		id, ok := transport.PeerIdentityOf(c)
		if name == "" {
			if ok || !id.IsZero() {
				t.Fatalf("%v -> %v: identity %+v, %v; want none", c.LocalAddr(), c.RemoteAddr(), id, ok)
			}
			return
		}
		if !ok || id.Name != name || len(id.Certificates) != certs {
			t.Fatalf("%v -> %v: identity %+v, %v; want %q with %d certificates", c.LocalAddr(), c.RemoteAddr(), id, ok, name, certs)
		}
	}

	c, s := pair(pe)
	want(c, "reg.example.org", 1) // the dialer sees the listener's node
	want(s, "pe1.example.org", 0) // the listener sees the dialer's node
	if id, _ := transport.PeerIdentityOf(c); id.Leaf() != leaf {
		t.Fatal("the certificate chain is not the one attached")
	}

	c2, s2 := pair(anon)
	want(c2, "reg.example.org", 1)
	want(s2, "", 0) // no identity attached: unauthenticated

	// DialFrom (the listener dialling from its own address) presents the
	// listener's node too.
	back, err := anon.Listen(anon.Addr(9000))
	if err != nil {
		t.Fatal(err)
	}
	defer back.Close()
	c3, err := l.DialFrom(ctx, back.Addr())
	if err != nil {
		t.Fatal(err)
	}
	s3, err := back.Accept(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want(c3, "", 0)
	want(s3, "reg.example.org", 1)

	// A changed identity applies to new associations only; the zero
	// Identity removes it.
	pe.SetIdentity(transport.Identity{Name: "pe2.example.org"})
	want(s, "pe1.example.org", 0)
	_, s4 := pair(pe)
	want(s4, "pe2.example.org", 0)
	pe.SetIdentity(transport.Identity{})
	_, s5 := pair(pe)
	want(s5, "", 0)

	// The reported chain is the caller's copy: changing it changes
	// nothing the network holds.
	id, _ := transport.PeerIdentityOf(c)
	id.Certificates[0] = nil
	want(c, "reg.example.org", 1)
	if id, _ := transport.PeerIdentityOf(c); id.Leaf() != leaf {
		t.Fatal("a caller's change reached the association")
	}
}
