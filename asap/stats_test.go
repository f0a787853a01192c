package asap

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/go-rserpool/rserpool/internal/leakcheck"
	"github.com/go-rserpool/rserpool/transport"
)

// PoolElement.Stats counts a registration, its loss when the home
// registrar dies (RFC 5352 §3.6), and the registration regained with the
// next registrar, matching the events sent.
func TestPEStatsLostAndRegained(t *testing.T) {
	leakcheck.Check(t)
	synctest.Test(t, func(t *testing.T) {
		n, regNode, reg, pe, events := peWithFakeRegistrar(t)
		defer n.Close()
		defer pe.Close()
		if s := pe.Stats(); s != (PEStats{}) {
			t.Fatalf("Stats before Register = %+v, want zero", s)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := pe.Register(ctx); err != nil {
			t.Fatal(err)
		}
		if s := pe.Stats(); s != (PEStats{Registered: 1, HomeChanged: 1}) {
			t.Fatalf("Stats after Register = %+v, want 1 registration, 1 home", s)
		}

		reg.l.Close()
		reg.dropAll()
		reg.close()
		for ev := nextEvent(t, events); ev.Kind != PEEventLost; ev = nextEvent(t, events) {
		}
		regL2, err := regNode.Listen(regNode.Addr(transport.PortASAP))
		if err != nil {
			t.Fatal(err)
		}
		reg2 := startFakeRegistrar(t, regL2, 0xdef)
		defer reg2.close()
		for ev := nextEvent(t, events); ev.Kind != PEEventRegistered; ev = nextEvent(t, events) {
		}
		s := pe.Stats()
		if s.Registered != 2 || s.Lost != 1 || s.Regained != 1 || s.HomeChanged != 2 || s.Refused != 0 || s.EventsDropped != 0 {
			t.Fatalf("Stats after loss and re-registration = %+v, want 2 registered, 1 lost, 1 regained, 2 homes", s)
		}
		pe.Close() // before reg2.close, which waits for the PE's association
	})
}

// PoolUser.Stats tells resolutions a registrar answered (RFC 5352 §3.5)
// from those the cache served (§5.3), and counts Dial's failovers and the
// unreachable reports they sent.
func TestPUStatsCacheRegistrarFailover(t *testing.T) {
	leakcheck.Check(t)
	synctest.Test(t, func(t *testing.T) {
		p := newPUNet(t, 3)
		defer p.close()
		pu := p.newPU(t, nil)
		defer pu.Close()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if _, err := pu.Resolve(ctx, []byte("echo")); err != nil {
			t.Fatal(err)
		}
		if _, err := pu.Resolve(ctx, []byte("echo")); err != nil {
			t.Fatal(err)
		}
		if s := pu.Stats(); s != (PUStats{FromRegistrar: 1, FromCache: 1}) {
			t.Fatalf("after two Resolves: %+v, want 1 from the registrar, 1 from the cache", s)
		}
		if _, err := pu.Resolve(ctx, []byte("nosuchpool")); err == nil {
			t.Fatal("Resolve of an unknown pool succeeded")
		}
		if s := pu.Stats(); s.ResolutionsFailed != 1 {
			t.Fatalf("after a failed Resolve: %+v, want 1 failed", s)
		}

		if err := pu.ep.call(ctx, func(time.Time) { delete(pu.core.cache, "echo") }); err != nil {
			t.Fatal(err)
		}
		p.ls[0].Close() // PEs 1 and 2 refuse associations
		p.ls[1].Close()
		c, _, err := pu.Dial(ctx, []byte("echo"))
		if err != nil {
			t.Fatalf("Dial: %v", err)
		}
		c.Close()
		// Dial: one resolution by the registrar, then two selections from
		// the cache after each failed PE.
		want := PUStats{FromRegistrar: 2, FromCache: 3, ResolutionsFailed: 1, Failovers: 2, Unreachable: 2}
		if s := pu.Stats(); s != want {
			t.Fatalf("after a Dial with 2 dead PEs: %+v, want %+v", s, want)
		}
	})
}
