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
// PE over (RFC 5353 §3.9), exactly one, and the pool user keeps being
// served throughout.
func TestLoopbackSCTPTakeover(t *testing.T) {
	if testing.Short() {
		t.Skip("real SCTP over loopback")
	}
	// Known gap: the new home dials the PE's ASAP transport address (the
	// local end of the association the PE opened to its old home) to send
	// the H=1 keep-alive, and nothing accepts associations there ("handshake:
	// association closed before connecting"), so the taken-over PE is
	// dropped and no new home is found within 20 s. Enable when the PE
	// side accepts its new home (or the core reaches it another way).
	t.Skip("takeover cannot reach the PE over user-space SCTP yet (see comment)")
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
	p := startPE(t, "pe-1", tp, loopbackAny, tp, asap.PEConfig{PoolHandle: []byte(handle), Registrars: []transport.Addr{r1.Addr()}})
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
	t.Logf("PE taken over by %s %v after its home was killed", hex(home.ServerID()), time.Since(killed).Round(time.Millisecond))
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
}
