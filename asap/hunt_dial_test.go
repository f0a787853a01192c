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

// huntCore is what the server-hunt tests drive of a PE or PU core.
type huntCore interface {
	NextDeadline() time.Time
	HandleTimeout(now time.Time)
	HandleConnected(now time.Time, id AssocID)
	Outbox() []Output
}

// startHunting makes a PE (Register) or a PU (Resolve) core with the
// given registrars hunt from t0, and returns it with its first outputs.
func startHunting(t *testing.T, role string, regs []transport.Addr, parallel int) (huntCore, []Output) {
	t.Helper()
	switch role {
	case "pe":
		c := newPE(t, func(cfg *PEConfig) { cfg.Registrars = regs; cfg.HuntParallel = parallel })
		c.Register(t0)
		return c, c.Outbox()
	case "pu":
		c := newPU(t, func(cfg *PUConfig) { cfg.Registrars = regs; cfg.HuntParallel = parallel })
		c.Resolve(t0, []byte("echo"))
		return c, c.Outbox()
	}
	t.Fatalf("role %q", role)
	return nil, nil
}

// failures returns what in outs says the request failed.
func failures(outs []Output) []error {
	var errs []error
	for _, f := range only[RegistrationFailed](outs) {
		errs = append(errs, f.Err)
	}
	for _, d := range only[ResolutionDone](outs) {
		if d.Err != nil {
			errs = append(errs, d.Err)
		}
	}
	return errs
}

// RFC 5352 §3.6: a registrar that is alive but slow to associate (here
// its handshake takes 1 s, more than three T5 rounds and more than the
// three hunts of MAX-NUMBER-SERVER-HUNT took before) is found: T5 starts
// the next round without closing the dial in progress, no second dial
// to the same registrar is emitted meanwhile, nothing fails, and the
// association becomes the home when it comes up. (Before: T5 closed the
// dial at 120 ms and dialled the registrar again, and after three such
// passes, at about 0.6 s, the request failed with "no registrar reachable
// after 3 server hunts ... did not answer within 336ms (T5-serverhunt)".)
func TestHuntSlowDialBecomesHome(t *testing.T) {
	up := t0.Add(time.Second)
	if up.Sub(t0) <= 3*DefaultT5ServerHunt || up.Sub(t0) >= DefaultHuntDialLimit {
		t.Fatal("the handshake must outlast three T5 rounds and end within the dial limit")
	}
	for _, role := range []string{"pe", "pu"} {
		t.Run(role, func(t *testing.T) {
			c, outs := startHunting(t, role, []transport.Addr{regA}, 1)
			a := oneConnect(t, outs)
			rounds := 0
			for now := c.NextDeadline(); !now.IsZero() && now.Before(up); now = c.NextDeadline() {
				c.HandleTimeout(now)
				outs := c.Outbox()
				if cs, cl := only[Connect](outs), only[Close](outs); len(cs) != 0 || len(cl) != 0 {
					t.Fatalf("at %v, dial of %d still in progress: %v", now.Sub(t0), a.Assoc, outs)
				}
				if errs := failures(outs); len(errs) != 0 {
					t.Fatalf("at %v, with the dial in progress: %v", now.Sub(t0), errs)
				}
				rounds++
			}
			if rounds < 3 {
				t.Fatalf("only %d rounds ended before the handshake did", rounds)
			}
			c.HandleConnected(up, a.Assoc)
			outs = c.Outbox()
			if len(only[HomeChanged](outs)) != 1 || len(only[Close](outs)) != 0 {
				t.Fatalf("slow association not made the home: %v", outs)
			}
			switch c := c.(type) {
			case *PoolElementCore:
				regs, as := sent[*tlv.Registration](t, outs)
				if len(regs) != 1 || as[0] != a.Assoc {
					t.Fatalf("no registration on the slow home: %v", outs)
				}
				c.Handle(up, a.Assoc, wire(t, &tlv.RegistrationResponse{PoolHandle: []byte("echo"), PEID: c.ID()}))
				if !c.Registered() {
					t.Fatal("not registered with the slow registrar")
				}
			case *PoolUserCore:
				hrs, as := sent[*tlv.HandleResolution](t, outs)
				if len(hrs) != 1 || as[0] != a.Assoc {
					t.Fatalf("no resolution on the slow home: %v", outs)
				}
				c.Handle(up, a.Assoc, wire(t, rrResponse("echo", 7)))
				if d := only[ResolutionDone](c.Outbox()); len(d) != 1 || d[0].Err != nil || len(d[0].PEs) != 1 {
					t.Fatalf("resolution through the slow home: %+v", d)
				}
			}
			t.Logf("%s: home after %v and %d T5 rounds, one dial", role, up.Sub(t0), rounds)
		})
	}
}

// RFC 5352 §3.6: with two registrars and one dial per round, the slow
// registrar's dial goes on while T5 moves the hunt on to the other, and
// whichever association comes up first becomes the home; the other dial
// is closed, and a late success of it does not replace the home.
func TestHuntTwoRegistrarsFirstUpWins(t *testing.T) {
	for _, tc := range []struct {
		name        string
		firstWins   bool
		upAfterNext time.Duration // after the second dial
	}{
		{"slow first dial wins", true, 300 * time.Millisecond},
		{"second dial wins", false, 10 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, outs := startHunting(t, "pe", []transport.Addr{regA, regB}, 1)
			x := oneConnect(t, outs)
			at := c.NextDeadline()
			if !at.Equal(t0.Add(DefaultT5ServerHunt)) {
				t.Fatalf("first round ends at %v", at.Sub(t0))
			}
			c.HandleTimeout(at)
			outs = c.Outbox()
			if cl := only[Close](outs); len(cl) != 0 {
				t.Fatalf("T5 closed the first dial: %v", outs)
			}
			y := oneConnect(t, outs)
			if y.Addr == x.Addr {
				t.Fatalf("second round dialled %v again", x.Addr)
			}
			// Rounds end with both dials in progress: nothing new.
			up := at.Add(tc.upAfterNext)
			for now := c.NextDeadline(); now.Before(up); now = c.NextDeadline() {
				c.HandleTimeout(now)
				if outs := c.Outbox(); len(outs) != 0 {
					t.Fatalf("at %v with two dials in progress: %v", now.Sub(t0), outs)
				}
			}
			winner, loser := y, x
			if tc.firstWins {
				winner, loser = x, y
			}
			c.HandleConnected(up, winner.Assoc)
			outs = c.Outbox()
			if cl := only[Close](outs); len(cl) != 1 || cl[0].Assoc != loser.Assoc {
				t.Fatalf("the other dial (%d) not closed: %v", loser.Assoc, outs)
			}
			if h, _ := c.(*PoolElementCore).Home(); h != winner.Assoc || len(only[HomeChanged](outs)) != 1 {
				t.Fatalf("home %d, want %d (%v)", h, winner.Assoc, winner.Addr)
			}
			if regs, as := sent[*tlv.Registration](t, outs); len(regs) != 1 || as[0] != winner.Assoc {
				t.Fatalf("registration not on the home: %v", outs)
			}
			// The closed dial's late success (the driver raced the Close)
			// is closed and changes nothing.
			c.HandleConnected(up, loser.Assoc)
			outs = c.Outbox()
			if cl := only[Close](outs); len(cl) != 1 || cl[0].Assoc != loser.Assoc || len(only[HomeChanged](outs)) != 0 {
				t.Fatalf("late success of the other dial: %v", outs)
			}
			if h, _ := c.(*PoolElementCore).Home(); h != winner.Assoc {
				t.Fatalf("home changed to %d", h)
			}
		})
	}
}

// A dial that does not come up within Timers.HuntDialLimit is closed
// then, and a pass whose every dial was given up so counts as one failed
// server hunt: after MaxServerHunts of them the request fails with a
// *NoRegistrarError naming the registrar and the dial limit. Each pass
// dials the registrar once, and never while a dial to it is in progress.
func TestHuntDialLimitCountsAsFailed(t *testing.T) {
	for _, role := range []string{"pe", "pu"} {
		t.Run(role, func(t *testing.T) {
			c, outs := startHunting(t, role, []transport.Addr{regA}, 1)
			dialAt := map[AssocID]time.Time{}
			now, given := t0, 0
			var errs []error
			for {
				for _, cn := range only[Connect](outs) {
					if len(dialAt) != 0 {
						t.Fatalf("at %v, dial %d with %v in progress", now.Sub(t0), cn.Assoc, dialAt)
					}
					dialAt[cn.Assoc] = now
				}
				for _, cl := range only[Close](outs) {
					at, ok := dialAt[cl.Assoc]
					if !ok {
						t.Fatalf("at %v, closed %d, not a dial in progress", now.Sub(t0), cl.Assoc)
					}
					if d := now.Sub(at); d != DefaultHuntDialLimit {
						t.Fatalf("dial %d given up after %v, want %v", cl.Assoc, d, DefaultHuntDialLimit)
					}
					delete(dialAt, cl.Assoc)
					given++
				}
				if errs = failures(outs); len(errs) != 0 {
					break
				}
				now = c.NextDeadline()
				if now.IsZero() || now.After(t0.Add(time.Minute)) {
					t.Fatalf("no failure by %v", now.Sub(t0))
				}
				c.HandleTimeout(now)
				outs = c.Outbox()
			}
			var ne *NoRegistrarError
			if len(errs) != 1 || !errors.As(errs[0], &ne) || ne.Hunts != DefaultMaxServerHunts ||
				len(ne.Tried) != 1 || ne.Tried[0] != regA || ne.Last == nil || !strings.Contains(ne.Last.Error(), "HuntDialLimit") {
				t.Fatalf("failed with %v, want a NoRegistrarError over %v after %d hunts", errs, regA, DefaultMaxServerHunts)
			}
			if given != DefaultMaxServerHunts {
				t.Fatalf("%d dials given up before the failure, want %d", given, DefaultMaxServerHunts)
			}
			if d := now.Sub(t0); d < DefaultMaxServerHunts*DefaultHuntDialLimit {
				t.Fatalf("failed after %v, before %d dial limits", d, DefaultMaxServerHunts)
			}
			t.Logf("%s: %v after %v, %d dials given up", role, errs[0], now.Sub(t0), given)
		})
	}
}

// Timers.HuntDialLimit: a negative value closes a dial not up when its
// round ends (T5), as before; a value below T5ServerHunt is raised to it.
func TestHuntDialLimitConfig(t *testing.T) {
	c := newPE(t, func(cfg *PEConfig) { cfg.Timers.HuntDialLimit = -1 })
	c.Register(t0)
	a := oneConnect(t, c.Outbox())
	c.HandleTimeout(t0.Add(DefaultT5ServerHunt))
	outs := c.Outbox()
	if cl := only[Close](outs); len(cl) != 1 || cl[0].Assoc != a.Assoc {
		t.Fatalf("HuntDialLimit -1: dial not closed at T5: %v", outs)
	}
	if b := oneConnect(t, outs); b.Assoc == a.Assoc || b.Addr != a.Addr {
		t.Fatalf("HuntDialLimit -1: next round dialled %v", b)
	}

	tm, err := Timers{HuntDialLimit: time.Millisecond}.withDefaults()
	if err != nil || tm.HuntDialLimit != DefaultT5ServerHunt {
		t.Fatalf("HuntDialLimit 1 ms: %v, %v", tm.HuntDialLimit, err)
	}
	if tm, _ := (Timers{}).withDefaults(); tm.HuntDialLimit != DefaultHuntDialLimit {
		t.Fatalf("default HuntDialLimit %v", tm.HuntDialLimit)
	}
}

// slowNode is a memnet node whose dials take `delay` to come up, as an
// SCTP handshake does with a loaded or flooded registrar. It counts its
// dials (the handshakes a real transport would start).
type slowNode struct {
	*memnet.Node
	delay time.Duration
	dials atomic.Int64
}

func (s *slowNode) Dial(ctx context.Context, to transport.Addr) (transport.Conn, error) {
	if err := s.slow(ctx); err != nil {
		return nil, err
	}
	return s.Node.Dial(ctx, to)
}

func (s *slowNode) slow(ctx context.Context) error {
	s.dials.Add(1)
	t := time.NewTimer(s.delay)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// ListenEndpoint makes the endpoint's dials slow too (a pool element
// dials its registrars from its endpoint).
func (s *slowNode) ListenEndpoint(at transport.Addr) (transport.Endpoint, error) {
	ep, err := s.Node.ListenEndpoint(at)
	if err != nil {
		return nil, err
	}
	return hookedEndpoint{ep, func(ctx context.Context, to transport.Addr) (transport.Conn, error) {
		if err := s.slow(ctx); err != nil {
			return nil, err
		}
		return ep.DialFrom(ctx, to)
	}}, nil
}

// RFC 5352 §3.6, through the drivers: against a registrar whose
// handshakes take 1 s (more than the three hunts of 120 ms, 240 ms and
// 480 ms at most that the defaults allowed before), Register and Resolve
// succeed, each with a single dial. (Before: both failed with a
// NoRegistrarError after about 0.6 s, having dialled 3 times or more.)
func TestDriverSlowHandshakeFound(t *testing.T) {
	leakcheck.Check(t)
	synctest.Test(t, func(t *testing.T) {
		n := memnet.New(7)
		defer n.Close()
		regNode := n.NewNode()
		regL, err := regNode.Listen(regNode.Addr(transport.PortASAP))
		if err != nil {
			t.Fatal(err)
		}
		reg := startFakeRegistrar(t, regL, 1)
		defer reg.close()
		regs := []transport.Addr{regNode.Addr(transport.PortASAP)}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()

		peNode := &slowNode{Node: n.NewNode(), delay: time.Second}
		ut, _ := TransportParam(peNode.Addr(7000), tlv.TransportUseDataOnly)
		pe, err := NewPoolElement(PEConfig{PoolHandle: []byte("echo"), PEID: 42, UserTransport: ut, Registrars: regs, Kind: transport.KindMem}, peNode)
		if err != nil {
			t.Fatal(err)
		}
		defer pe.Close()
		start := time.Now()
		if err := pe.Register(ctx); err != nil {
			t.Fatalf("Register through a 1 s handshake: %v (%d dials)", err, peNode.dials.Load())
		}
		t.Logf("PE registered after %v, %d dial", time.Since(start), peNode.dials.Load())

		puNode := &slowNode{Node: n.NewNode(), delay: time.Second}
		pu, err := NewPoolUser(PUConfig{Registrars: regs, Kind: transport.KindMem}, puNode)
		if err != nil {
			t.Fatal(err)
		}
		defer pu.Close()
		start = time.Now()
		pes, err := pu.Resolve(ctx, []byte("echo"))
		if err != nil || len(pes) != 1 || pes[0].ID != pe.ID() {
			t.Fatalf("Resolve through a 1 s handshake: %v, %v (%d dials)", pes, err, puNode.dials.Load())
		}
		t.Logf("PU resolved after %v, %d dial", time.Since(start), puNode.dials.Load())
		if pd, ud := peNode.dials.Load(), puNode.dials.Load(); pd != 1 || ud != 1 {
			t.Fatalf("dials: PE %d, PU %d; want one each", pd, ud)
		}
		pu.Close()
		pe.Close()
	})
}
