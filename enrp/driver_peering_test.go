package enrp

import (
	"net/netip"
	"testing"
	"testing/synctest"
	"time"

	"github.com/go-rserpool/rserpool/internal/leakcheck"
	"github.com/go-rserpool/rserpool/tlv"
	"github.com/go-rserpool/rserpool/transport"
	"github.com/go-rserpool/rserpool/transport/memnet"
)

// Registrars peering through the driver with the real ENRP core (RFC
// 5353), over memnet in virtual time: by static address on the ASAP
// listener, on a separate ENRP listener, and by Presence multicast alone.

// lanTimers are ENRP timers for a fast network.
func lanTimers(p *PeersConfig) {
	p.HeartbeatCycle = time.Second
	p.MaxTimeLastHeard = 3 * time.Second
	p.MaxTimeNoResponse = time.Second
	p.MentorTimeout = time.Second
}

// peerRig is a registrar on its own node of a shared memnet.
type peerRig struct {
	*eventRig
	nd *memnet.Node
}

func startPeer(t *testing.T, net *memnet.Network, tune func(nd *memnet.Node, c *Config)) *peerRig {
	t.Helper()
	nd := net.NewNode()
	g := &eventRig{t: t, net: net, events: make(chan Event, 64), done: make(chan error, 1)}
	cfg := Config{Transport: nd, ListenAddr: nd.Addr(transport.PortASAP), Events: g.events, Logger: testLogger(t)}
	lanTimers(&cfg.Peers)
	if tune != nil {
		tune(nd, &cfg)
	}
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	g.r = r
	go func() { g.done <- r.Run(t.Context()) }()
	t.Cleanup(g.stop)
	return &peerRig{g, nd}
}

// waitPeerUp waits for the event that peer id is up.
func (g *peerRig) waitPeerUp(id uint32) {
	g.t.Helper()
	for {
		ev := g.next()
		if ev.Kind == EventPeerUp && ev.ServerID == id {
			return
		}
	}
}

// holdsPE waits (in virtual time, at most a minute) until the registrar
// holds PE id of pool with home home.
func (g *peerRig) holdsPE(pool string, id, home uint32) {
	g.t.Helper()
	for end := time.Now().Add(time.Minute); ; {
		pes, err := g.r.PoolElements(g.t.Context(), []byte(pool))
		if err != nil {
			g.t.Fatal(err)
		}
		if len(pes) == 1 && pes[0].PE.ID == id && pes[0].PE.HomeServerID == home {
			return
		}
		if time.Now().After(end) {
			g.t.Fatalf("registrar %08x holds %+v, want PE %08x of home %08x", g.r.ServerID(), pes, id, home)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// registerOnce registers PE id at g over c, trying again every second
// while the registrar refuses it in its start-up phase (RFC 5353 §3.4:
// no registrations until the mentor's table has arrived).
func (g *peerRig) registerOnce(c *client, pool string, id uint32) {
	g.t.Helper()
	for range 30 {
		c.send(g.t.Context(), c.registration(pool, id, time.Minute))
		if resp := recvAs[*tlv.RegistrationResponse](c, g.t.Context()); !resp.Reject {
			return
		}
		time.Sleep(time.Second)
	}
	g.t.Fatalf("registration of %08x refused for 30 s", id)
}

// RFC 5353 §3.1: r2 knows r1 by its ASAP listener's address (ENRP routed
// by PPID there); both come up, and a PE registered at r1 reaches r2 by
// handle update (§3.6) over the one association r2 dialled.
func TestDriverPeeringStatic(t *testing.T) {
	leakcheck.Check(t)
	synctest.Test(t, func(t *testing.T) {
		net := memnet.New(1)
		t.Cleanup(func() { net.Close() })
		r1 := startPeer(t, net, nil)
		r2 := startPeer(t, net, func(_ *memnet.Node, c *Config) { c.Peers.Static = []transport.Addr{r1.r.Addr()} })
		r1.waitPeerUp(r2.r.ServerID())
		r2.waitPeerUp(r1.r.ServerID())

		pe := dial(t, t.Context(), net.NewNode(), r1.r.Addr())
		r1.registerOnce(pe, "echo", 7)
		r2.holdsPE("echo", 7, r1.r.ServerID())
		if s := r2.r.Stats(); s.Associations != 1 {
			t.Errorf("r2 has %d associations, want the one to r1", s.Associations)
		}
		if s := r2.r.Stats(); s.ENRP.UpdatesApplied != 1 || s.ENRP.Dials != 1 {
			t.Errorf("r2's ENRP counts %+v, want 1 update applied over 1 dial", s.ENRP)
		}
		for _, c := range []struct{ at, peer *peerRig }{{r1, r2}, {r2, r1}} {
			ps, err := c.at.r.Peers(t.Context())
			if err != nil || len(ps) != 1 || ps[0].ServerID != c.peer.r.ServerID() || ps[0].Assoc == 0 {
				t.Errorf("peers of %08x: %+v, %v; want %08x", c.at.r.ServerID(), ps, err, c.peer.r.ServerID())
			}
		}
	})
}

// r1 takes peers on a separate ENRP listener; r2 dials it there.
func TestDriverPeeringENRPListener(t *testing.T) {
	leakcheck.Check(t)
	synctest.Test(t, func(t *testing.T) {
		net := memnet.New(1)
		t.Cleanup(func() { net.Close() })
		r1 := startPeer(t, net, func(nd *memnet.Node, c *Config) {
			l, err := nd.Listen(nd.Addr(transport.PortENRP))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { l.Close() })
			c.Peers.Listener = l
		})
		r2 := startPeer(t, net, func(_ *memnet.Node, c *Config) { c.Peers.Static = []transport.Addr{r1.r.ENRPAddr()} })
		r1.waitPeerUp(r2.r.ServerID())
		r2.waitPeerUp(r1.r.ServerID())
		pe := dial(t, t.Context(), net.NewNode(), r2.r.Addr())
		r2.registerOnce(pe, "echo", 8)
		r1.holdsPE("echo", 8, r2.r.ServerID())
	})
}

// RFC 5353 §3.2: with no static peers, the ENRP Presence multicast on
// Peers.Announcer lets two registrars find each other.
func TestDriverPeeringMulticast(t *testing.T) {
	leakcheck.Check(t)
	synctest.Test(t, func(t *testing.T) {
		net := memnet.New(1)
		t.Cleanup(func() { net.Close() })
		group := netip.MustParseAddrPort("239.0.0.51:9901")
		join := func(nd *memnet.Node, c *Config) {
			a, err := net.JoinGroup(nd, group)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { a.Close() })
			c.Peers.Announcer = a
		}
		r1 := startPeer(t, net, join)
		r2 := startPeer(t, net, join)
		r1.waitPeerUp(r2.r.ServerID())
		r2.waitPeerUp(r1.r.ServerID())
		pe := dial(t, t.Context(), net.NewNode(), r1.r.Addr())
		r1.registerOnce(pe, "echo", 9)
		r2.holdsPE("echo", 9, r1.r.ServerID())
	})
}

// RFC 5353 §2.2.1: a registrar dials its peers from its ENRP endpoint, so
// that the association comes from the address its Server Information
// names (RSPLIB 3.4.4 drops a Presence whose address and port are not the
// association's): from the separate ENRP listener when there is one, else
// from the ASAP listener that ENRP shares.
func TestDriverPeerDialFromENRPEndpoint(t *testing.T) {
	leakcheck.Check(t)
	for _, sep := range []bool{false, true} {
		synctest.Test(t, func(t *testing.T) {
			net := memnet.New(1)
			t.Cleanup(func() { net.Close() })
			peerNd := net.NewNode()
			peer, err := peerNd.Listen(peerNd.Addr(transport.PortENRP))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { peer.Close() })
			r := startPeer(t, net, func(nd *memnet.Node, c *Config) {
				c.Peers.Static = []transport.Addr{peer.Addr()}
				if sep {
					l, err := nd.Listen(nd.Addr(transport.PortENRP))
					if err != nil {
						t.Fatal(err)
					}
					t.Cleanup(func() { l.Close() })
					c.Peers.Listener = l
				}
			})
			c, err := peer.Accept(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Abort()
			if got, want := c.RemoteAddr(), r.r.ENRPAddr(); got != want {
				t.Errorf("separate ENRP listener %v: peer association from %v, want the ENRP endpoint %v", sep, got, want)
			}
		})
	}
}
