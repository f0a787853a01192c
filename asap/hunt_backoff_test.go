package asap

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/go-rserpool/rserpool/internal/leakcheck"
	"github.com/go-rserpool/rserpool/tlv"
	"github.com/go-rserpool/rserpool/transport"
	"github.com/go-rserpool/rserpool/transport/memnet"
)

// countingNode is a memnet node that counts its dials (the INITs a real
// transport would send).
type countingNode struct {
	*memnet.Node
	dials atomic.Int64
}

func (c *countingNode) Dial(ctx context.Context, to transport.Addr) (transport.Conn, error) {
	c.dials.Add(1)
	return c.Node.Dial(ctx, to)
}

// ListenEndpoint counts the endpoint's dials too (a pool element dials
// its registrars from its endpoint).
func (c *countingNode) ListenEndpoint(at transport.Addr) (transport.Endpoint, error) {
	ep, err := c.Node.ListenEndpoint(at)
	if err != nil {
		return nil, err
	}
	return hookedEndpoint{ep, func(ctx context.Context, to transport.Addr) (transport.Conn, error) {
		c.dials.Add(1)
		return ep.DialFrom(ctx, to)
	}}, nil
}

// hookedEndpoint is an endpoint whose DialFrom goes through dial.
type hookedEndpoint struct {
	transport.Endpoint
	dial func(ctx context.Context, to transport.Addr) (transport.Conn, error)
}

func (h hookedEndpoint) DialFrom(ctx context.Context, to transport.Addr) (transport.Conn, error) {
	return h.dial(ctx, to)
}

// maxHuntDials bounds the dials of a server hunt over one registrar in d
// with the default back-off: one per round, the first round T5 long and
// round k at least half of min(T5ServerHuntMax, T5·2^(k−1)).
func maxHuntDials(d time.Duration) int {
	n, at := 1, DefaultT5ServerHunt
	for k := 2; at < d; k++ {
		at += min(DefaultT5ServerHuntMax, DefaultT5ServerHunt<<(k-1)) / 2
		n++
	}
	return n
}

// RFC 5352 §3.6 / §5.2 (MAX-NUMBER-SERVER-HUNT): with its only registrar
// refusing associations (a host without a listener) or absent (no host),
// the PE and the PU back off their server hunt and, after MaxServerHunts
// failed hunts, Register, Resolve and Dial fail with a *NoRegistrarError
// that names the address tried. (Before: 334 dials in 40 s from the PE,
// 333 from the PU, one every T5 = 120 ms, and Register and Resolve only
// ended with the caller's context.) The PE keeps hunting, reports through
// its events, and registers when a registrar appears.
func TestHuntBacksOffAndFailsWithNoRegistrar(t *testing.T) {
	for _, tc := range []struct {
		name   string
		listen bool // the registrar's host exists (refuses), or not (absent)
	}{{"refusing", true}, {"absent", false}} {
		t.Run(tc.name, func(t *testing.T) {
			leakcheck.Check(t)
			synctest.Test(t, func(t *testing.T) {
				n := memnet.New(6)
				defer n.Close()
				var regNode *memnet.Node
				regAddr := memAddr("10.9.9.9:3863")
				if tc.listen {
					regNode = n.NewNode()
					regAddr = regNode.Addr(transport.PortASAP)
				}
				const window = 40 * time.Second
				start := time.Now()

				// Pool element.
				peNode := &countingNode{Node: n.NewNode()}
				events := make(chan PEEvent, 64)
				ut, _ := TransportParam(peNode.Addr(7000), tlv.TransportUseDataOnly)
				pe, err := NewPoolElement(PEConfig{PoolHandle: []byte("echo"), UserTransport: ut,
					Registrars: []transport.Addr{regAddr}, Kind: transport.KindMem, Events: events}, peNode)
				if err != nil {
					t.Fatal(err)
				}
				defer pe.Close()
				ctx, cancel := context.WithTimeout(context.Background(), window)
				defer cancel()
				err = pe.Register(ctx)
				took := time.Since(start)
				checkNoRegistrar(t, "Register", err, regAddr)
				t.Logf("Register failed after %v and %d dials: %v", took, peNode.dials.Load(), err)
				if took > 5*time.Second {
					t.Errorf("Register took %v to fail", took)
				}

				// Pool user, same window.
				puNode := &countingNode{Node: n.NewNode()}
				pu, err := NewPoolUser(PUConfig{Registrars: []transport.Addr{regAddr}, Kind: transport.KindMem}, puNode)
				if err != nil {
					t.Fatal(err)
				}
				defer pu.Close()
				_, err = pu.Resolve(ctx, []byte("echo"))
				checkNoRegistrar(t, "Resolve", err, regAddr)
				_, _, err = pu.Dial(ctx, []byte("echo"))
				checkNoRegistrar(t, "Dial", err, regAddr)
				for ctx.Err() == nil { // a host that keeps asking
					if _, err := pu.Resolve(ctx, []byte("echo")); err != nil && ctx.Err() == nil {
						checkNoRegistrar(t, "Resolve", err, regAddr)
					}
				}

				<-ctx.Done() // the 40 s window
				peDials, puDials := peNode.dials.Load(), puNode.dials.Load()
				bound := maxHuntDials(window)
				t.Logf("dials in %v: PE %d, PU %d (bound %d)", window, peDials, puDials, bound)
				if peDials > int64(bound) || puDials > int64(bound) || peDials < 3 {
					t.Fatalf("dials in %v: PE %d, PU %d; want 3..%d", window, peDials, puDials, bound)
				}
				noReg := 0
				for len(events) > 0 {
					ev := <-events
					if ev.Kind != PEEventNoRegistrar || ev.Retry.IsZero() {
						t.Fatalf("event %v while no registrar is reachable", ev)
					}
					noReg++
				}
				if noReg == 0 {
					t.Fatal("no PEEventNoRegistrar")
				}

				if !tc.listen {
					return
				}
				// The PE hunts on in the background: a registrar that
				// appears is found within one backed-off round.
				regL, err := regNode.Listen(regAddr)
				if err != nil {
					t.Fatal(err)
				}
				reg := startFakeRegistrar(t, regL, 1)
				defer reg.close()
				back := time.Now()
				for ev := nextEvent(t, events); ev.Kind != PEEventRegistered; ev = nextEvent(t, events) {
				}
				if d := time.Since(back); d > DefaultT5ServerHuntMax {
					t.Fatalf("registered %v after the registrar appeared, want within %v", d, DefaultT5ServerHuntMax)
				}
				pe.Close()
				pu.Close()
			})
		})
	}
}

func checkNoRegistrar(t *testing.T, op string, err error, addr transport.Addr) {
	t.Helper()
	var ne *NoRegistrarError
	if !errors.Is(err, ErrNoRegistrar) || !errors.As(err, &ne) {
		t.Fatalf("%s: %v, want a *NoRegistrarError", op, err)
	}
	if len(ne.Tried) != 1 || ne.Tried[0] != addr || ne.Hunts < DefaultMaxServerHunts || ne.Last == nil {
		t.Fatalf("%s: %+v, want %d hunts over %v with a last error", op, ne, DefaultMaxServerHunts, addr)
	}
	if !strings.Contains(err.Error(), addr.String()) {
		t.Fatalf("%s: %q does not name %v", op, err, addr)
	}
}

// RFC 5352 §3.6: the rounds of a hunt back off from T5, doubling with
// jitter up to T5ServerHuntMax; a negative T5ServerHuntMax turns the
// back-off off. With MaxServerHunts 2 the registration fails after two
// failed hunts and the hunt goes on.
func TestPEHuntRounds(t *testing.T) {
	t.Run("backoff", func(t *testing.T) {
		c := newPE(t, func(cfg *PEConfig) { cfg.MaxServerHunts = 2 })
		c.Register(t0)
		now := t0
		outs := c.Outbox()
		for k := 1; k <= 10; k++ {
			conn := oneConnect(t, outs)
			c.HandleConnectFailed(now, conn.Assoc, errors.New("refused"))
			next := c.NextDeadline()
			d := min(DefaultT5ServerHuntMax, DefaultT5ServerHunt<<(k-1))
			lo := d / 2
			if k == 1 {
				lo = d
			}
			if got := next.Sub(now); got < lo || got > d {
				t.Fatalf("round %d lasts %v, want %v..%v", k, got, lo, d)
			}
			now = next
			c.HandleTimeout(now)
			outs = c.Outbox()
			f := only[RegistrationFailed](outs)
			if (k%2 == 0) != (len(f) == 1) {
				t.Fatalf("after %d failed hunts: %v", k, f)
			}
			if len(f) == 1 && !errors.Is(f[0].Err, ErrNoRegistrar) {
				t.Fatalf("failure %v", f[0].Err)
			}
		}
	})
	t.Run("off", func(t *testing.T) {
		c := newPE(t, func(cfg *PEConfig) { cfg.Timers.T5ServerHuntMax = -1 })
		c.Register(t0)
		now := t0
		for k := 1; k <= 5; k++ {
			conn := oneConnect(t, c.Outbox())
			c.HandleConnectFailed(now, conn.Assoc, nil)
			if got := c.NextDeadline().Sub(now); got != DefaultT5ServerHunt {
				t.Fatalf("round %d lasts %v without back-off", k, got)
			}
			now = c.NextDeadline()
			c.HandleTimeout(now)
		}
	})
}

// RFC 5352 §3.6: a pool user stops hunting once no resolution waits for a
// registrar (after MaxServerHunts failed hunts: a *NoRegistrarError), and
// the next resolution's hunt goes on with the back-off reached, so that a
// host resolving in a loop does not turn it into a T5 loop.
func TestPUHuntStopsWhenIdleAndKeepsBackoff(t *testing.T) {
	c := newPU(t, nil)
	c.Resolve(t0, []byte("echo"))
	now := t0
	var done []ResolutionDone
	for len(done) == 0 {
		for _, cn := range only[Connect](c.Outbox()) {
			c.HandleConnectFailed(now, cn.Assoc, errors.New("refused"))
		}
		now = c.NextDeadline()
		if now.IsZero() || now.After(t0.Add(DefaultT1ENRPRequest)) {
			t.Fatalf("no failure by %v", now)
		}
		c.HandleTimeout(now)
		done = only[ResolutionDone](c.Outbox())
	}
	var ne *NoRegistrarError
	if !errors.As(done[0].Err, &ne) || ne.Hunts != DefaultMaxServerHunts || len(ne.Tried) != 1 || ne.Tried[0] != regA {
		t.Fatalf("resolution ended with %v, want a NoRegistrarError over %v", done[0].Err, regA)
	}
	if d := c.NextDeadline(); !d.IsZero() {
		t.Fatalf("still hunting with nothing waiting: deadline %v", d)
	}
	c.Resolve(now, []byte("echo"))
	cn := oneConnect(t, c.Outbox())
	c.HandleConnectFailed(now, cn.Assoc, nil)
	if d := c.NextDeadline().Sub(now); d < 4*DefaultT5ServerHunt {
		t.Fatalf("the next hunt's round lasts %v: back-off lost", d)
	}
}

// RFC 5352 §3.6: an ASAP_SERVER_ANNOUNCE from a registrar the table holds
// does not start a round early (a refusing registrar announcing itself
// every T6 would undo the back-off); one from a new registrar does.
func TestHuntAnnounceOfKnownRegistrarKeepsBackoff(t *testing.T) {
	c := newPE(t, func(cfg *PEConfig) { cfg.Registrars = nil; cfg.Kind = transport.KindSCTP })
	src := transport.Addr{Kind: transport.KindSCTP, AddrPort: mustAddrPort("10.9.9.9:5000")}
	ann := wire(t, &tlv.ServerAnnounce{ServerID: 77}).(*tlv.ServerAnnounce)
	c.HandleAnnounce(t0, src, ann)
	c.Register(t0)
	cn := oneConnect(t, c.Outbox())
	c.HandleConnectFailed(t0, cn.Assoc, nil)
	at := t0.Add(DefaultT5ServerHunt / 2)
	c.HandleAnnounce(at, src, ann)
	if cs := only[Connect](c.Outbox()); len(cs) != 0 {
		t.Fatalf("announce of a known registrar dialled at once: %v", cs)
	}
	other := wire(t, &tlv.ServerAnnounce{ServerID: 78, Transports: []tlv.Transport{{
		Type: tlv.ParamSCTPTransport, Port: 3863, Addrs: []netipAddr{mustAddr("10.8.8.8")}}}}).(*tlv.ServerAnnounce)
	c.HandleAnnounce(at, src, other)
	if cs := only[Connect](c.Outbox()); len(cs) != 1 || cs[0].Addr.AddrPort != mustAddrPort("10.8.8.8:3863") {
		t.Fatalf("announce of a new registrar: %v", cs)
	}
}

// RFC 5352 §3.6: a registrar that accepts the association and drops it
// before answering does not make a busy loop: the next hunt waits one
// backed-off round before it dials. (A home that answered, or lived
// longer than T5ServerHuntMax, is hunted for at once:
// TestPEHomeLostEndsRegistration.)
func TestPEHuntAfterUselessHomeWaits(t *testing.T) {
	c := newPE(t, nil)
	c.Register(t0)
	now := t0
	for i := 1; i <= 5; i++ {
		cn := oneConnect(t, c.Outbox())
		c.HandleConnected(now, cn.Assoc)
		c.HandleLost(now, cn.Assoc) // dropped before any answer
		if cs := only[Connect](c.Outbox()); len(cs) != 0 {
			t.Fatalf("cycle %d: re-dialled at once", i)
		}
		next := c.NextDeadline()
		if next.Sub(now) < DefaultT5ServerHunt/2 {
			t.Fatalf("cycle %d: waits only %v", i, next.Sub(now))
		}
		now = next
		c.HandleTimeout(now)
	}
}
