package enrp

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/go-rserpool/rserpool/asap"
	"github.com/go-rserpool/rserpool/internal/leakcheck"
	"github.com/go-rserpool/rserpool/policy"
	"github.com/go-rserpool/rserpool/tlv"
	"github.com/go-rserpool/rserpool/transport"
	"github.com/go-rserpool/rserpool/transport/memnet"
)

// The Registrar hands the identities its transport verified to the
// authorization hooks (RFC 5355, RFC 5352 §6, RFC 5353 §6), over
// memnet with test identities (memnet.Node.SetIdentity), in virtual time,
// with the real asap.PoolElement and asap.PoolUser.

// idNode is a new memnet node presenting identity name ("" for none).
func idNode(net *memnet.Network, name string) *memnet.Node {
	nd := net.NewNode()
	if name != "" {
		nd.SetIdentity(transport.Identity{Name: name})
	}
	return nd
}

// newPE makes a pool element of pool handle on nd, with a user listener
// on port 7000, registering with reg; Register is left to the test.
func newPE(t *testing.T, nd *memnet.Node, reg transport.Addr, handle string, id uint32) *asap.PoolElement {
	t.Helper()
	ln, err := nd.Listen(nd.Addr(7000))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	ut, err := asap.TransportParam(ln.Addr(), tlv.TransportUseDataOnly)
	if err != nil {
		t.Fatal(err)
	}
	pe, err := asap.NewPoolElement(asap.PEConfig{
		PoolHandle: []byte(handle), UserTransport: ut, Policy: policy.RoundRobin,
		PEID: id, Registrars: []transport.Addr{reg},
	}, nd)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pe.Close() })
	return pe
}

func newPU(t *testing.T, nd *memnet.Node, reg transport.Addr) *asap.PoolUser {
	t.Helper()
	pu, err := asap.NewPoolUser(asap.PUConfig{Registrars: []transport.Addr{reg}}, nd)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pu.Close() })
	return pu
}

// wantRejected checks that err is the registrar's refusal of op with
// Rejected due to security considerations (0xa).
func wantRejected(t *testing.T, err error, op tlv.ASAPType) {
	t.Helper()
	var re *asap.RejectError
	if !errors.As(err, &re) || re.Op != op || re.Code() != tlv.CauseRejectedSecurity || re.Transient() {
		t.Fatalf("error %v (%T), want a final *asap.RejectError of %v with cause 0xa", err, err, op)
	}
}

// A rogue PE (an identity the pool's rule does not name, or none) cannot
// register: Register fails at once with 0xa, final, and the store keeps
// only the authorised PE. An unauthorised pool user's Resolve and Dial
// fail promptly with 0xa (one request, answered, no retry); the
// authorised one resolves and dials. The hooks see the identities.
func TestRegistrarAuthorizeIdentities(t *testing.T) {
	leakcheck.Check(t)
	synctest.Test(t, func(t *testing.T) {
		ctx := t.Context()
		net := memnet.New(1)
		t.Cleanup(func() { net.Close() })
		regNode := idNode(net, "reg.example.org")
		cfg := Config{Transport: regNode, ListenAddr: regNode.Addr(transport.PortASAP), Logger: testLogger(t)}
		p := NamePolicy{
			Register: PoolACL{Pools: map[string][]string{"echo": {"*.pe.example.org"}}},
			Resolve:  PoolACL{Pools: map[string][]string{"echo": {"*.pu.example.org"}}},
		}
		if err := p.Apply(&cfg); err != nil {
			t.Fatal(err)
		}
		seen := make(chan AssocInfo, 16)
		authorize := cfg.ASAP.Authorize
		cfg.ASAP.Authorize = func(a AssocInfo, h tlv.PoolHandle, pe *tlv.PoolElement) error {
			seen <- a
			return authorize(a, h, pe)
		}
		r, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- r.Run(ctx) }()
		t.Cleanup(func() {
			r.Close()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		})

		good := newPE(t, idNode(net, "a.pe.example.org"), r.Addr(), "echo", 1)
		if err := good.Register(ctx); err != nil {
			t.Fatalf("authorised PE: %v", err)
		}
		if a := <-seen; !a.Authenticated || a.Identity.Name != "a.pe.example.org" {
			t.Fatalf("the hook saw %+v, want the PE's identity", a)
		}
		for _, name := range []string{"rogue.example.com", ""} {
			rogue := newPE(t, idNode(net, name), r.Addr(), "echo", 2)
			wantRejected(t, rogue.Register(ctx), tlv.ASAPRegistration)
			if rogue.Registered() {
				t.Fatalf("rogue %q registered", name)
			}
			if a := <-seen; a.Authenticated != (name != "") || a.Identity.Name != name {
				t.Fatalf("the hook saw %+v, want identity %q", a, name)
			}
		}
		pes, err := r.PoolElements(ctx, []byte("echo"))
		if err != nil || len(pes) != 1 || pes[0].PE.ID != 1 {
			t.Fatalf("pool holds %+v, %v; want the authorised PE only", pes, err)
		}
		if s := r.Stats().ASAP; s.RegistrationsRefd != 2 {
			t.Fatalf("RegistrationsRefd %d, want 2", s.RegistrationsRefd)
		}

		pu := newPU(t, idNode(net, "app.pu.example.org"), r.Addr())
		if got, err := pu.Resolve(ctx, []byte("echo")); err != nil || len(got) != 1 || got[0].ID != 1 {
			t.Fatalf("authorised Resolve: %v, %v", got, err)
		}
		c, _, err := pu.Dial(ctx, []byte("echo"))
		if err != nil {
			t.Fatalf("authorised Dial: %v", err)
		}
		c.Close()

		for _, name := range []string{"rogue.example.com", ""} {
			before := r.Stats().ASAP
			bad := newPU(t, idNode(net, name), r.Addr())
			start := time.Now()
			_, err := bad.Resolve(ctx, []byte("echo"))
			wantRejected(t, err, tlv.ASAPHandleResolution)
			// Answered, not timed out: well before the first retry.
			if d := time.Since(start); d >= asap.DefaultT1ENRPRequest {
				t.Fatalf("refusal took %v (T1 %v): a retry, not an answer", d, asap.DefaultT1ENRPRequest)
			}
			_, _, err = bad.Dial(ctx, []byte("echo"))
			wantRejected(t, err, tlv.ASAPHandleResolution)
			synctest.Wait()
			s := r.Stats().ASAP
			if s.ResolutionsRefused-before.ResolutionsRefused != 2 || s.Resolutions-before.Resolutions != 2 {
				t.Fatalf("PU %q: %d resolutions, %d refused; want 2 and 2 (one per call, no retries)", name,
					s.Resolutions-before.Resolutions, s.ResolutionsRefused-before.ResolutionsRefused)
			}
		}
	})
}

// RFC 5353 §6: a registrar whose ENRP association presents an identity
// PeersConfig.Accept (PeerMatcher) does not admit never becomes a peer,
// and the PEs registered with it never reach this registrar; an
// authorised one peers and its PE arrives.
func TestRegistrarPeerIdentity(t *testing.T) {
	leakcheck.Check(t)
	synctest.Test(t, func(t *testing.T) {
		net := memnet.New(1)
		t.Cleanup(func() { net.Close() })
		named := func(name string) func(nd *memnet.Node, c *Config) {
			return func(nd *memnet.Node, c *Config) {
				nd.SetIdentity(transport.Identity{Name: name})
				c.ASAP.KeepAliveInterval = time.Hour // the test's PEs do not answer keep-alives
			}
		}
		r1 := startPeer(t, net, func(nd *memnet.Node, c *Config) {
			named("r1.reg.example.org")(nd, c)
			c.Peers.Accept = PeerMatcher("*.reg.example.org")
		})
		static := func(name string) func(nd *memnet.Node, c *Config) {
			return func(nd *memnet.Node, c *Config) {
				named(name)(nd, c)
				c.Peers.Static = []transport.Addr{r1.r.Addr()}
			}
		}
		r2 := startPeer(t, net, static("r2.reg.example.org"))
		rogue := startPeer(t, net, static("rogue.example.com"))
		r1.waitPeerUp(r2.r.ServerID())

		pe := dial(t, t.Context(), net.NewNode(), r2.r.Addr())
		r2.registerOnce(pe, "echo", 7)
		r1.holdsPE("echo", 7, r2.r.ServerID())
		bad := dial(t, t.Context(), net.NewNode(), rogue.r.Addr())
		rogue.registerOnce(bad, "echo", 8)
		time.Sleep(10 * time.Second) // virtual: several heartbeat cycles
		synctest.Wait()

		pes, err := r1.r.PoolElements(t.Context(), []byte("echo"))
		if err != nil || len(pes) != 1 || pes[0].PE.ID != 7 {
			t.Fatalf("r1 holds %+v, %v; want r2's PE only", pes, err)
		}
		ps, err := r1.r.Peers(context.Background())
		if err != nil || len(ps) != 1 || ps[0].ServerID != r2.r.ServerID() {
			t.Fatalf("r1's peers %+v, %v; want r2 only", ps, err)
		}
		if s := r1.r.Stats().ENRP; s.PeersRefused == 0 || s.UpdatesApplied != 1 {
			t.Fatalf("r1's ENRP counts %+v, want refusals and the one update of r2", s)
		}
	})
}
