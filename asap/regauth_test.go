package asap

import (
	"context"
	"crypto/x509"
	"errors"
	"net/netip"
	"testing"
	"testing/synctest"
	"time"

	"github.com/go-rserpool/rserpool/internal/leakcheck"
	"github.com/go-rserpool/rserpool/tlv"
	"github.com/go-rserpool/rserpool/transport"
	"github.com/go-rserpool/rserpool/transport/memnet"
)

// The names of the registrar tests: the genuine registrars carry
// registrar-N.reg.example; the rogue one holds a certificate of the same
// CA, as every PE of the pool does, with a name that looks like one.
const (
	regPattern = "registrar-*.reg.example"
	genuineReg = "registrar-1.reg.example"
	rogueReg   = "registrar-1.reg.example.evil.example"
)

// registrarNode makes a node of n that presents identity name (none
// when empty).
func registrarNode(n *memnet.Network, name string) *memnet.Node {
	node := n.NewNode()
	if name != "" {
		node.SetIdentity(transport.Identity{Name: name, Certificates: []*x509.Certificate{{DNSNames: []string{name}}}})
	}
	return node
}

// listenRegistrar starts a fake registrar with server ID sid on node.
func listenRegistrar(t *testing.T, node *memnet.Node, sid uint32) *fakeRegistrar {
	t.Helper()
	l, err := node.Listen(node.Addr(transport.PortASAP))
	if err != nil {
		t.Fatal(err)
	}
	r := startFakeRegistrar(t, l, sid)
	t.Cleanup(r.close)
	return r
}

// registrarOn starts a fake registrar with server ID sid on a new node
// of n that presents identity name.
func registrarOn(t *testing.T, n *memnet.Network, sid uint32, name string) (*fakeRegistrar, transport.Addr) {
	t.Helper()
	node := registrarNode(n, name)
	return listenRegistrar(t, node, sid), node.Addr(transport.PortASAP)
}

func (r *fakeRegistrar) counts() (regs, hrs int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.regs, r.hrs
}

// A PE with AuthorizeRegistrar: a rogue registrar whose identity looks
// trusted but does not match is refused before any ASAP message (no
// registration reaches it); the hunt reports it as a failed dial
// (NoRegistrarError.Last is the *RegistrarRefusedError naming it), with a
// PEEventRegistrarRefused and PEStats.RegistrarsRefused; with the genuine
// registrar in the table too, the PE registers there. Without the hook
// (before), the rogue got the registration.
func TestPERegistrarAuthorization(t *testing.T) {
	leakcheck.Check(t)
	for _, tc := range []struct {
		name      string
		auth      RegistrarAuthorizer
		withGood  bool
		rogueRegs int // registrations the rogue gets
	}{
		{"no hook: the rogue is used", nil, false, 1},
		{"rogue only", RegistrarNames(regPattern), false, 0},
		{"rogue and genuine", RegistrarNames(regPattern), true, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				n := memnet.New(1)
				defer n.Close()
				rogue, rogueAddr := registrarOn(t, n, 0xe, rogueReg)
				regs := []transport.Addr{rogueAddr}
				// The genuine registrar starts listening only after the
				// first round, so that the rogue is dialled and refused
				// before the hunt finds it.
				var goodNode *memnet.Node
				if tc.withGood {
					goodNode = registrarNode(n, genuineReg)
					regs = append(regs, goodNode.Addr(transport.PortASAP))
				}
				node := n.NewNode()
				node.SetIdentity(transport.Identity{Name: "pe-1.pe.example"})
				ut, _ := TransportParam(node.Addr(7000), tlv.TransportUseDataOnly)
				events := make(chan PEEvent, 32)
				pe, err := NewPoolElement(PEConfig{
					PoolHandle: []byte("echo"), UserTransport: ut, PEID: 42, Registrars: regs,
					HuntParallel: 2, MaxServerHunts: 1, Events: events, AuthorizeRegistrar: tc.auth,
				}, node)
				if err != nil {
					t.Fatal(err)
				}
				defer pe.Close()
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				defer cancel()
				done := make(chan error, 1)
				go func() { done <- pe.Register(ctx) }()
				var good *fakeRegistrar
				if tc.withGood {
					synctest.Wait()
					good = listenRegistrar(t, goodNode, 0xa)
				}
				err = <-done
				if tc.withGood && err != nil {
					err = pe.Register(ctx) // the first hunt failed; the PE went on
				}
				synctest.Wait()
				if r, _ := rogue.counts(); r != tc.rogueRegs {
					t.Errorf("the rogue registrar got %d registrations, want %d", r, tc.rogueRegs)
				}
				st := pe.Stats()
				switch {
				case tc.auth == nil:
					if err != nil || st.RegistrarsRefused != 0 {
						t.Errorf("without the hook: Register %v, stats %+v", err, st)
					}
				case tc.withGood:
					if err != nil {
						t.Fatalf("Register with the genuine registrar in the table: %v", err)
					}
					if r, _ := good.counts(); r != 1 {
						t.Errorf("the genuine registrar got %d registrations, want 1", r)
					}
				default:
					var nr *NoRegistrarError
					var rr *RegistrarRefusedError
					if !errors.As(err, &nr) || !errors.Is(err, ErrRegistrarRefused) || !errors.As(err, &rr) {
						t.Fatalf("Register = %v, want a NoRegistrarError whose last error is ErrRegistrarRefused", err)
					}
					if rr.Identity.Name != rogueReg || !rr.Authenticated || rr.Accepted || rr.Addr != rogueAddr || !errors.Is(err, ErrRegistrarName) {
						t.Errorf("refusal %+v (%v), want the rogue's identity, dialled, matching no name", rr, err)
					}
					t.Log(err)
				}
				if tc.auth != nil {
					if st.RegistrarsRefused == 0 {
						t.Errorf("stats %+v, want the rogue counted", st)
					}
					var refused int
					for len(events) > 0 {
						if e := <-events; e.Kind == PEEventRegistrarRefused && errors.Is(e.Err, ErrRegistrarRefused) {
							refused++
						}
					}
					if refused == 0 || uint64(refused) != st.RegistrarsRefused {
						t.Errorf("%d PEEventRegistrarRefused, stats %d", refused, st.RegistrarsRefused)
					}
				}
			})
		})
	}
}

// regAuthPE starts a PE with AuthorizeRegistrar(regPattern) registered
// at a genuine fake registrar (server ID 0xa); it returns the PE and the
// address it registered from (its endpoint).
func regAuthPE(t *testing.T, n *memnet.Network, events chan PEEvent) (*PoolElement, *fakeRegistrar, transport.Addr) {
	t.Helper()
	reg, regAddr := registrarOn(t, n, 0xa, genuineReg)
	node := n.NewNode()
	ut, _ := TransportParam(node.Addr(7000), tlv.TransportUseDataOnly)
	pe, err := NewPoolElement(PEConfig{
		PoolHandle: []byte("echo"), UserTransport: ut, PEID: 42, Registrars: []transport.Addr{regAddr},
		Events: events, AuthorizeRegistrar: RegistrarNames(regPattern),
	}, node)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pe.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := pe.Register(ctx); err != nil {
		t.Fatal(err)
	}
	synctest.Wait()
	return pe, reg, pe.EndpointAddr()
}

// A takeover attempt by an unauthorised registrar (RFC 5352 §3.7: an
// Endpoint Keep Alive with the H flag on an association it opened to the
// PE's endpoint) is refused before the PE reads it: the association is
// aborted, unanswered, the home does not change (no PEEventHomeChanged,
// the old home keeps the PE), and a PEEventRegistrarRefused says who. An
// unauthenticated one likewise; a genuine registrar's takeover goes
// through. (Before, without the hook: the rogue became the home, as
// TestPEAcceptsNewHomeAtItsRegisteredAddress shows for any registrar.)
func TestPETakeoverByUnauthorisedRegistrar(t *testing.T) {
	leakcheck.Check(t)
	synctest.Test(t, func(t *testing.T) {
		n := memnet.New(1)
		defer n.Close()
		events := make(chan PEEvent, 32)
		pe, _, at := regAuthPE(t, n, events)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		for len(events) > 0 {
			<-events
		}
		homeChanges := pe.Stats().HomeChanged

		for _, name := range []string{rogueReg, ""} {
			node := n.NewNode()
			if name != "" {
				node.SetIdentity(transport.Identity{Name: name})
			}
			c, err := node.Dial(ctx, at)
			if err != nil {
				t.Fatalf("dial the PE's endpoint: %v", err)
			}
			// The keep-alive may or may not get out before the PE aborts
			// the association: either way the PE must not take it.
			b, _ := tlv.Marshal(&tlv.EndpointKeepAlive{ServerID: 0xe, PoolHandle: []byte("echo"), PEID: 42, HasPEID: true, Home: true})
			_ = c.Send(ctx, transport.Message{PPID: transport.PPIDASAP, Data: b})
			synctest.Wait()
			if m, err := c.Recv(ctx); err == nil {
				t.Errorf("%q: the PE answered the takeover with %v, want the association aborted", name, m)
			}
			c.Close()
		}
		synctest.Wait()
		var refused []*RegistrarRefusedError
		for len(events) > 0 {
			e := <-events
			if e.Kind == PEEventHomeChanged {
				t.Errorf("home changed to %#x by an unauthorised registrar", e.ServerID)
			}
			var rr *RegistrarRefusedError
			if e.Kind == PEEventRegistrarRefused && errors.As(e.Err, &rr) {
				refused = append(refused, rr)
			}
		}
		if len(refused) != 2 || refused[0].Identity.Name != rogueReg || !refused[0].Accepted ||
			refused[1].Authenticated || !errors.Is(refused[1], ErrRegistrarUnauthenticated) {
			t.Errorf("refusals %+v, want the rogue's and the unauthenticated one's, both accepted", refused)
		}
		if st := pe.Stats(); st.HomeChanged != homeChanges || st.RegistrarsRefused != 2 || !pe.Registered() {
			t.Errorf("stats %+v, registered %v: want the home kept and 2 refusals", st, pe.Registered())
		}

		// The genuine registrar-2 takes the PE over.
		node := n.NewNode()
		node.SetIdentity(transport.Identity{Name: "registrar-2.reg.example"})
		c, err := node.Dial(ctx, at)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		sendASAP(t, c, &tlv.EndpointKeepAlive{ServerID: 0xb, PoolHandle: []byte("echo"), PEID: 42, HasPEID: true, Home: true})
		if ack, ok := recvASAP(t, c).(*tlv.EndpointKeepAliveAck); !ok || ack.PEID != 42 {
			t.Fatalf("the PE answered the genuine registrar's takeover with %#v", ack)
		}
		synctest.Wait()
		if st := pe.Stats(); st.HomeChanged != homeChanges+1 {
			t.Errorf("stats %+v: the genuine takeover did not change the home", st)
		}
	})
}

// A PU with AuthorizeRegistrar resolves through the genuine registrar
// only: the rogue (which would answer with its own PE) is refused before
// any handle resolution reaches it, and counted; with only the rogue the
// resolution fails with a NoRegistrarError naming it. Without the hook
// (before) the rogue's answer was taken.
func TestPURegistrarAuthorization(t *testing.T) {
	leakcheck.Check(t)
	pe := func(id uint32, ip string) tlv.PoolElement {
		return tlv.PoolElement{ID: id, RegistrationLife: 30000, Policy: tlv.Policy{Type: 1},
			UserTransport: tlv.NewSCTPTransport(7000, tlv.TransportUseDataOnly, netip.MustParseAddr(ip))}
	}
	evil, good := pe(666, "10.6.6.6"), pe(1, "10.0.0.1")
	for _, tc := range []struct {
		name     string
		auth     RegistrarAuthorizer
		withGood bool
		want     uint32 // PE resolved; 0: ErrRegistrarRefused
	}{
		{"no hook: the rogue answers", nil, false, evil.ID},
		{"rogue only", RegistrarNames(regPattern), false, 0},
		{"rogue and genuine", RegistrarNames(regPattern), true, good.ID},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				n := memnet.New(1)
				defer n.Close()
				rogue, rogueAddr := registrarOn(t, n, 0xe, rogueReg)
				rogue.mu.Lock()
				rogue.pes[evil.ID] = evil
				rogue.mu.Unlock()
				regs := []transport.Addr{rogueAddr}
				var goodNode *memnet.Node
				if tc.withGood {
					goodNode = registrarNode(n, genuineReg)
					regs = append(regs, goodNode.Addr(transport.PortASAP))
				}
				node := n.NewNode()
				node.SetIdentity(transport.Identity{Name: "pu-1.pu.example"})
				pu, err := NewPoolUser(PUConfig{Registrars: regs, HuntParallel: 2, MaxServerHunts: 3, AuthorizeRegistrar: tc.auth}, node)
				if err != nil {
					t.Fatal(err)
				}
				defer pu.Close()
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				defer cancel()
				type result struct {
					pes []tlv.PoolElement
					err error
				}
				done := make(chan result, 1)
				go func() {
					pes, err := pu.Resolve(ctx, []byte("echo"))
					done <- result{pes, err}
				}()
				if tc.withGood {
					// The genuine registrar comes up after the first
					// round, in which the rogue was dialled and refused.
					synctest.Wait()
					g := listenRegistrar(t, goodNode, 0xa)
					g.mu.Lock()
					g.pes[good.ID] = good
					g.mu.Unlock()
				}
				r := <-done
				pes, err := r.pes, r.err
				synctest.Wait()
				if tc.want == 0 {
					var rr *RegistrarRefusedError
					if !errors.Is(err, ErrNoRegistrar) || !errors.As(err, &rr) || rr.Identity.Name != rogueReg {
						t.Fatalf("Resolve = %v, want a NoRegistrarError naming the refused rogue", err)
					}
					t.Log(err)
				} else if err != nil || len(pes) != 1 || pes[0].ID != tc.want {
					t.Fatalf("Resolve = %v, %v; want PE %d", pes, err, tc.want)
				}
				_, hrs := rogue.counts()
				if tc.auth != nil && hrs != 0 {
					t.Errorf("the rogue got %d handle resolutions", hrs)
				}
				if st := pu.Stats(); (tc.auth != nil) != (st.RegistrarsRefused > 0) {
					t.Errorf("stats %+v", st)
				}
			})
		})
	}
}

// RegistrarNames: an authenticated identity matching a pattern (by name or
// DNS SAN, case-insensitively) is allowed; others, the unauthenticated and
// every identity when no pattern is given are refused with the error
// values.
func TestRegistrarNames(t *testing.T) {
	auth := RegistrarNames("registrar-*.example", "reg.other")
	withSAN := transport.Identity{Name: "x", Certificates: []*x509.Certificate{{DNSNames: []string{"a", "REG.other"}}}}
	for _, c := range []struct {
		id   transport.Identity
		auth bool
		want error
	}{
		{transport.Identity{Name: "registrar-1.example"}, true, nil},
		{transport.Identity{Name: "Registrar-2.EXAMPLE"}, true, nil},
		{withSAN, true, nil},
		{transport.Identity{Name: "pe-1.example"}, true, ErrRegistrarName},
		{transport.Identity{Name: "registrar-1.example.evil"}, true, ErrRegistrarName},
		{transport.Identity{}, false, ErrRegistrarUnauthenticated},
	} {
		if err := auth(c.id, c.auth); !errors.Is(err, c.want) || (c.want == nil) != (err == nil) {
			t.Errorf("%v (authenticated %v): %v, want %v", c.id, c.auth, err, c.want)
		}
	}
	if err := RegistrarNames()(transport.Identity{Name: "registrar-1.example"}, true); !errors.Is(err, ErrRegistrarName) {
		t.Errorf("no patterns: %v, want every registrar refused", err)
	}
	if err := RegistrarNames("[")(transport.Identity{Name: "["}, true); !errors.Is(err, ErrRegistrarName) {
		t.Errorf("malformed pattern: %v, want it to match nothing", err)
	}
}
