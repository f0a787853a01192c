package e2e

import (
	"context"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/go-rserpool/rserpool/asap"
	"github.com/go-rserpool/rserpool/enrp"
	"github.com/go-rserpool/rserpool/internal/leakcheck"
	"github.com/go-rserpool/rserpool/transport"
	"github.com/go-rserpool/rserpool/transport/memnet"
)

// takeoverCases are the ENRP peer timers of TestTakeoverTime: RFC 5353
// §7's defaults, and timers tuned for a LAN (a peer heard every 500 ms,
// probed after 1 s of silence, presumed dead 500 ms later; takeover
// expiry 1 s).
var takeoverCases = []struct {
	name  string
	peers enrp.PeersConfig
}{
	{name: "default"},
	{name: "lan", peers: enrp.PeersConfig{
		HeartbeatCycle:    500 * time.Millisecond,
		MaxTimeLastHeard:  time.Second,
		MaxTimeNoResponse: 500 * time.Millisecond,
		TakeoverExpiry:    time.Second,
	}},
}

// TestTakeoverTime measures, in virtual time over memnet, the takeover of
// RFC 5353 §3.9 end to end: three peered registrars, a PE registered at
// r1 (the only registrar it knows), a pool user of r3. r1 is killed
// (its process exits: its associations close). The time is from then
// until a survivor is the PE's home (EventTakeoverDone) and until the PE
// answered that home's Endpoint Keep Alive with the H flag at its
// endpoint and adopted it (PEEventHomeChanged, RFC 5352 §3.7). Exactly
// one survivor takes over, the pool user is served afterwards, and the
// figures are logged. The bound checked is the one the timers set: the
// peer presumed dead within MAX-TIME-LAST-HEARD + MAX-TIME-NO-RESPONSE
// (RFC 5353 §3.2), the takeover within TAKEOVER-EXPIRY more, the PE a
// round trip later; the target for LAN timers is 2 s.
func TestTakeoverTime(t *testing.T) {
	for _, tc := range takeoverCases {
		t.Run("timers="+tc.name, func(t *testing.T) {
			leakcheck.Check(t)
			synctest.Test(t, func(t *testing.T) { measureTakeover(t, tc.name, tc.peers) })
		})
	}
}

func measureTakeover(t *testing.T, name string, peers enrp.PeersConfig) {
	const handle = "takeover"
	n := memnet.New(1, memnet.WithLink(memnet.Link{Delay: time.Millisecond}))
	t.Cleanup(func() { n.Close() })
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Minute)
	defer cancel()

	nodes := []*memnet.Node{n.NewNode(), n.NewNode(), n.NewNode()}
	addr := func(i int) transport.Addr { return nodes[i].Addr(transport.PortASAP) }
	config := func(i int, static ...transport.Addr) enrp.Config {
		p := peers
		p.Static = static
		// Start-up is not what is measured: r1, started alone, gives up
		// waiting for a mentor soon (RFC 5353 §3.3).
		p.MentorTimeout = 300 * time.Millisecond
		return enrp.Config{Transport: nodes[i], ListenAddr: addr(i), Peers: p}
	}
	// Each registrar knows those started before it (as in
	// TestLoopbackSCTPPeering); ENRP Presence makes the rest known.
	r1, err := enrp.New(config(0))
	if err != nil {
		t.Fatal(err)
	}
	ran1 := make(chan error, 1)
	go func() { ran1 <- r1.Run(context.Background()) }()
	defer r1.Close()
	cfg2, cfg3 := config(1, addr(0)), config(2, addr(0), addr(1))
	ev2, ev3 := track(t, &cfg2, 256), track(t, &cfg3, 256)
	r2, r3 := startRegistrar(t, cfg2), startRegistrar(t, cfg3)
	for _, ev := range []*tracker{ev2, ev3} {
		for _, r := range []*enrp.Registrar{r1, r2, r3} {
			id := r.ServerID()
			if ev == ev2 && r == r2 || ev == ev3 && r == r3 {
				continue
			}
			ev.waitEvent(t, 5*time.Minute, "peer up", func(e enrp.Event) bool { return e.Kind == enrp.EventPeerUp && e.ServerID == id })
		}
	}

	start := time.Now()
	peNode := n.NewNode()
	peEvents := make(chan asap.PEEvent, 64)
	p := startPE(t, "pe-1", peNode, peNode.Addr(7), peNode, asap.PEConfig{
		PoolHandle: []byte(handle), Registrars: []transport.Addr{r1.Addr()}, Kind: transport.KindMem, Events: peEvents,
	})
	// r1 may still be starting up with its mentor (RFC 5353 §3.3) and
	// refuse for a while: the PE retries by itself.
	if err := p.Register(ctx); err != nil {
		t.Logf("first registration: %v (after %v)", err, time.Since(start))
		for e := range peEvents {
			if e.Kind == asap.PEEventRegistered {
				break
			}
		}
	}
	for _, r := range []*enrp.Registrar{r2, r3} {
		waitUntil(t, time.Minute, 10*time.Millisecond, "the PE at a peer", func() (bool, error) {
			ids, err := poolIDs(ctx, r, handle)
			return slices.Equal(ids, []uint32{p.ID()}), err
		})
	}
	puNode := n.NewNode()
	pu := newPU(t, asap.PUConfig{Registrars: []transport.Addr{r3.Addr()}, Kind: transport.KindMem}, puNode)
	if from := ask(t, ctx, pu, handle, 1); !sameSet(from, "pe-1") {
		t.Fatalf("answers from %v", from)
	}

	killed := time.Now()
	r1.Close()
	if err := <-ran1; err != nil {
		t.Errorf("r1 Run: %v", err)
	}
	var adopted asap.PEEvent
	for adopted.Kind == 0 {
		select {
		case e := <-peEvents:
			if e.Kind == asap.PEEventHomeChanged && e.ServerID != 0 && e.ServerID != r1.ServerID() {
				adopted = e
			}
		case <-ctx.Done():
			t.Fatal("the PE adopted no new home")
		}
	}
	var home *enrp.Registrar
	var done enrp.Event
	count := 0
	for i, ev := range []*tracker{ev2, ev3} {
		for _, e := range ev.seen() {
			if e.Kind == enrp.EventTakeoverDone && e.ServerID == r1.ServerID() {
				count++
				done, home = e, []*enrp.Registrar{r2, r3}[i]
			}
		}
	}
	if count != 1 || home.ServerID() != adopted.ServerID {
		t.Fatalf("%d takeovers of r1 done (last by %v); the PE adopted %s", count, home, hex(adopted.ServerID))
	}
	homeTime, peTime := done.Time.Sub(killed), adopted.Time.Sub(killed)
	p1 := peers
	lastHeard, noResponse, expiry := orDefault(p1.MaxTimeLastHeard, enrp.DefaultMaxTimeLastHeard), orDefault(p1.MaxTimeNoResponse, enrp.DefaultMaxTimeNoResponse), orDefault(p1.TakeoverExpiry, enrp.DefaultTakeoverExpiry)
	t.Logf("takeover timers=%s (MAX-TIME-LAST-HEARD %v, MAX-TIME-NO-RESPONSE %v, TAKEOVER-EXPIRY %v): PE's home killed -> %s is home after %v, the PE answered its H=1 keep-alive and adopted it after %v (virtual time)",
		name, lastHeard, noResponse, expiry, hex(home.ServerID()), homeTime, peTime)
	if bound := lastHeard + noResponse + expiry + 100*time.Millisecond; peTime > bound {
		t.Errorf("the PE adopted its new home %v after its home was killed, more than the timers' bound %v", peTime, bound)
	}
	if from := ask(t, ctx, pu, handle, 2); !sameSet(from, "pe-1") {
		t.Errorf("answers after the takeover from %v", from)
	}
	pes, err := home.PoolElements(ctx, []byte(handle))
	if err != nil || len(pes) != 1 || !pes[0].Owned || pes[0].PE.HomeServerID != home.ServerID() {
		t.Errorf("the new home's view of the pool: %v, %v", pes, err)
	}
}

func orDefault(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}
