package e2e

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/go-rserpool/rserpool/asap"
	"github.com/go-rserpool/rserpool/enrp"
	"github.com/go-rserpool/rserpool/internal/leakcheck"
	"github.com/go-rserpool/rserpool/transport"
	"github.com/go-rserpool/rserpool/transport/sctp"
)

// TestLoopbackSCTPTakeover: three registrars over loopback SCTP; a PE
// registered at r1, a pool user of r3. r1 is killed: a survivor takes its
// PE over (RFC 5353 §3.9), exactly one, and reaches the PE with its
// Endpoint Keep Alive with the H flag at the address the PE registered
// from (the PE's endpoint, RFC 5352 §3.7); the PE adopts it as its home,
// the new home keeps it through several keep-alive rounds, and the pool
// user keeps being served throughout. (Before the PE had an endpoint, the
// new home's dial to that address failed, "handshake: association closed
// before connecting", and it dropped the PE for keep-alive failure: no
// new home within 20 s.)
func TestLoopbackSCTPTakeover(t *testing.T) {
	if testing.Short() {
		t.Skip("real SCTP over loopback")
	}
	leakcheck.Check(t)
	const handle = "enrp-takeover"
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	tp := sctp.New(sctp.Config{ShutdownTimeout: time.Second})
	asapCfg := enrp.ASAPConfig{KeepAliveInterval: 300 * time.Millisecond, KeepAliveTimeout: 300 * time.Millisecond}

	cfg1 := enrp.Config{Transport: tp, ListenAddr: loopbackAny, Peers: lanPeers(), ASAP: asapCfg}
	r1, err := enrp.New(cfg1)
	if err != nil {
		t.Fatal(err)
	}
	ran1 := make(chan error, 1)
	go func() { ran1 <- r1.Run(context.Background()) }()
	defer r1.Close()
	cfg2 := enrp.Config{Transport: tp, ListenAddr: loopbackAny, Peers: lanPeers(r1.Addr()), ASAP: asapCfg}
	ev2 := track(t, &cfg2, 256)
	r2 := startRegistrar(t, cfg2)
	cfg3 := enrp.Config{Transport: tp, ListenAddr: loopbackAny, Peers: lanPeers(r1.Addr(), r2.Addr()), ASAP: asapCfg}
	ev3 := track(t, &cfg3, 256)
	r3 := startRegistrar(t, cfg3)
	for _, ev := range []*tracker{ev2, ev3} {
		for _, r := range []*enrp.Registrar{r1, r2, r3} {
			id := r.ServerID()
			if ev == ev2 && r == r2 || ev == ev3 && r == r3 {
				continue
			}
			ev.waitEvent(t, 10*time.Second, "peer up", func(e enrp.Event) bool { return e.Kind == enrp.EventPeerUp && e.ServerID == id })
		}
	}

	// The PE knows r1 alone: it cannot register elsewhere by itself, so
	// it is the peers' takeover that finds it a new home.
	peEvents := make(chan asap.PEEvent, 64)
	p := startPE(t, "pe-1", tp, loopbackAny, tp, asap.PEConfig{PoolHandle: []byte(handle), Registrars: []transport.Addr{r1.Addr()}, Events: peEvents})
	if err := p.Register(ctx); err != nil {
		t.Fatal(err)
	}
	for _, r := range []*enrp.Registrar{r2, r3} {
		waitUntil(t, 10*time.Second, 10*time.Millisecond, "the PE at a peer", func() (bool, error) {
			ids, err := poolIDs(ctx, r, handle)
			return slices.Equal(ids, []uint32{p.ID()}), err
		})
	}
	pu := newPU(t, asap.PUConfig{Registrars: []transport.Addr{r3.Addr()}}, tp)
	if from := ask(t, ctx, pu, handle, 1); !sameSet(from, "pe-1") {
		t.Fatalf("answers from %v", from)
	}

	killed := time.Now()
	r1.Close()
	if err := <-ran1; err != nil {
		t.Errorf("r1 Run: %v", err)
	}
	// One survivor takes over; the other does not.
	var home *enrp.Registrar
	waitUntil(t, 20*time.Second, 10*time.Millisecond, "a new home for the PE", func() (bool, error) {
		for _, r := range []*enrp.Registrar{r2, r3} {
			pes, err := r.PoolElements(ctx, []byte(handle))
			if err != nil {
				return false, err
			}
			if len(pes) == 1 && pes[0].Owned && pes[0].PE.HomeServerID == r.ServerID() {
				home = r
				return true, nil
			}
		}
		return false, nil
	})
	tookOver := time.Since(killed)
	adopted := time.Duration(0)
	for adopted == 0 {
		select {
		case e := <-peEvents:
			if e.Kind == asap.PEEventHomeChanged && e.ServerID == home.ServerID() {
				adopted = time.Since(killed)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("the PE did not adopt its new home %s within 10 s of the takeover", hex(home.ServerID()))
		}
	}
	t.Logf("takeover over loopback SCTP: PE's home killed -> %s is home after %v, the PE answered its H=1 keep-alive and adopted it after %v",
		hex(home.ServerID()), tookOver.Round(time.Millisecond), adopted.Round(time.Millisecond))
	done := 0
	for _, ev := range []*tracker{ev2, ev3} {
		for _, e := range ev.seen() {
			if e.Kind == enrp.EventTakeoverDone && e.ServerID == r1.ServerID() {
				done++
			}
		}
	}
	if done != 1 {
		t.Errorf("%d takeovers of r1 done, want exactly 1", done)
	}
	if from := ask(t, ctx, pu, handle, 2); !sameSet(from, "pe-1") {
		t.Errorf("answers after the takeover from %v", from)
	}
	// The new home supervises the PE (RFC 5352 §3.7): after three more
	// keep-alives, all answered, it still owns it.
	homeEv := ev2
	if home == r3 {
		homeEv = ev3
	}
	sent := home.Stats().ASAP.KeepAlivesSent
	waitUntil(t, 10*(asapCfg.KeepAliveInterval+asapCfg.KeepAliveTimeout), asapCfg.KeepAliveInterval/4, "three keep-alive rounds at the new home", func() (bool, error) {
		return home.Stats().ASAP.KeepAlivesSent >= sent+3, nil
	})
	for _, e := range homeEv.seen() {
		if e.Kind == enrp.EventRemoved && e.PEID == p.ID() {
			t.Errorf("the new home removed the PE: %v", e)
		}
	}
	pes, err := home.PoolElements(ctx, []byte(handle))
	if err != nil || len(pes) != 1 || !pes[0].Owned {
		t.Errorf("the new home's view of the pool after three keep-alive rounds: %v, %v", pes, err)
	}
	if from := ask(t, ctx, pu, handle, 2); !sameSet(from, "pe-1") {
		t.Errorf("answers after three keep-alive rounds from %v", from)
	}
}
