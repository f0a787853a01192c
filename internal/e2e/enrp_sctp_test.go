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

// lanPeers are ENRP timers tuned for loopback (RFC 5353 §7 names), so
// that peering settles in well under a second.
func lanPeers(static ...transport.Addr) enrp.PeersConfig {
	return enrp.PeersConfig{
		Static:            static,
		HeartbeatCycle:    200 * time.Millisecond,
		MaxTimeLastHeard:  600 * time.Millisecond,
		MaxTimeNoResponse: 300 * time.Millisecond,
		TakeoverExpiry:    500 * time.Millisecond,
		MentorTimeout:     300 * time.Millisecond,
	}
}

// TestLoopbackSCTPPeering runs three registrars in one process over
// user-space SCTP on loopback, peered by ENRP (RFC 5353) on their ASAP
// listeners (routed by PPID) and, for the third, on a separate ENRP
// listener. A PE registers at the first; the handle update (RFC 5353
// §3.6) carries it to the others, where a pool user resolves it and is
// served; its deregistration is carried the same way.
func TestLoopbackSCTPPeering(t *testing.T) {
	if testing.Short() {
		t.Skip("real SCTP over loopback")
	}
	leakcheck.Check(t)
	const handle = "enrp-echo"
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	tp := sctp.New(sctp.Config{ShutdownTimeout: time.Second})

	cfg1 := enrp.Config{Transport: tp, ListenAddr: loopbackAny, Peers: lanPeers()}
	ev1 := track(t, &cfg1, 256)
	r1 := startRegistrar(t, cfg1)
	cfg2 := enrp.Config{Transport: tp, ListenAddr: loopbackAny, Peers: lanPeers(r1.Addr())}
	ev2 := track(t, &cfg2, 256)
	r2 := startRegistrar(t, cfg2)
	el, err := tp.Listen(loopbackAny)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { el.Close() }) // after r3 (cleanups run last first)
	cfg3 := enrp.Config{Transport: tp, ListenAddr: loopbackAny, Peers: lanPeers(r1.Addr(), r2.Addr())}
	cfg3.Peers.Listener = el
	ev3 := track(t, &cfg3, 256)
	r3 := startRegistrar(t, cfg3)
	regs := []*enrp.Registrar{r1, r2, r3}

	// RFC 5353 §3.1-3.2: every registrar hears of both others.
	for i, ev := range []*tracker{ev1, ev2, ev3} {
		for j, r := range regs {
			if i == j {
				continue
			}
			id := r.ServerID()
			ev.waitEvent(t, 10*time.Second, "peer up", func(e enrp.Event) bool { return e.Kind == enrp.EventPeerUp && e.ServerID == id })
		}
	}

	p := startPE(t, "pe-1", tp, loopbackAny, tp, asap.PEConfig{PoolHandle: []byte(handle), Registrars: []transport.Addr{r1.Addr()}})
	start := time.Now()
	if err := p.Register(ctx); err != nil {
		t.Fatal(err)
	}
	// RFC 5353 §3.6: ADD_PE reaches the peers, which store the PE with
	// r1 as its home.
	for _, r := range regs[1:] {
		waitUntil(t, 10*time.Second, 10*time.Millisecond, "the PE at a peer", func() (bool, error) {
			pes, err := r.PoolElements(ctx, []byte(handle))
			return len(pes) == 1 && pes[0].PE.ID == p.ID() && pes[0].PE.HomeServerID == r1.ServerID() && !pes[0].Owned, err
		})
	}
	t.Logf("PE registered at %s visible at both peers after %v", hex(r1.ServerID()), time.Since(start).Round(time.Millisecond))

	// A pool user of r3 resolves the handle and is served by the PE.
	pu := newPU(t, asap.PUConfig{Registrars: []transport.Addr{r3.Addr()}}, tp)
	got, err := pu.Resolve(ctx, []byte(handle))
	if err != nil {
		t.Fatal(err)
	}
	if ids := peIDs(got); !slices.Equal(ids, []uint32{p.ID()}) {
		t.Fatalf("r3 resolved %v, want the PE of r1", ids)
	}
	if from := ask(t, ctx, pu, handle, 2); !sameSet(from, "pe-1") {
		t.Errorf("answers from %v", from)
	}
	if s := r3.Stats(); s.Owned != 0 || s.PEs != 1 {
		t.Errorf("r3: %+v, want 1 PE it does not own", s)
	}

	// DEL_PE: the deregistration at r1 reaches the peers.
	if err := p.Deregister(ctx); err != nil {
		t.Fatal(err)
	}
	for _, r := range regs[1:] {
		waitUntil(t, 10*time.Second, 10*time.Millisecond, "the PE gone at a peer", func() (bool, error) {
			ids, err := poolIDs(ctx, r, handle)
			return len(ids) == 0, err
		})
	}
}
