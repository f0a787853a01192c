package e2e

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/go-rserpool/rserpool/asap"
	"github.com/go-rserpool/rserpool/enrp"
	"github.com/go-rserpool/rserpool/internal/echo"
	"github.com/go-rserpool/rserpool/internal/leakcheck"
	"github.com/go-rserpool/rserpool/transport"
	"github.com/go-rserpool/rserpool/transport/memnet"
)

// failoverTimers are the settings that decide how fast a pool user gets
// away from a dead PE and how fast the registrar forgets it.
type failoverTimers struct {
	name string
	// requestTimeout is how long the PU waits for an answer before it
	// reports the PE (the host's choice; default asap.DefaultDialTimeout,
	// the library's own PE timeout). DialTimeout is set to the same.
	requestTimeout time.Duration
	// keepAlive is the registrar's keep-alive interval and timeout
	// (RFC 5352 §3.7); 0 takes the defaults.
	keepAlive time.Duration
}

var failoverCases = []failoverTimers{
	{name: "default", requestTimeout: asap.DefaultDialTimeout},
	{name: "tuned", requestTimeout: 500 * time.Millisecond, keepAlive: 500 * time.Millisecond},
}

// TestFailoverTime measures, in virtual time over memnet, how long a pool
// user in a session with a PE takes from the PE's death to its next
// successful request (RFC 5352 §3.5: detect, report Endpoint Unreachable,
// select another PE from the cache, connect, ask again), and how long the
// registrar takes to remove the dead PE (§3.7). Two deaths: the PE's
// process exits (its associations close, as the kernel closes them) and
// its host goes down (nothing more is heard from it). Each runs with the
// default timers and with tuned ones; the test logs the figures and
// checks them against the timers that bound them.
func TestFailoverTime(t *testing.T) {
	for _, tm := range failoverCases {
		for _, death := range []string{"process-exit", "host-down"} {
			t.Run(fmt.Sprintf("timers=%s/death=%s", tm.name, death), func(t *testing.T) {
				leakcheck.Check(t)
				synctest.Test(t, func(t *testing.T) { measureFailover(t, tm, death) })
			})
		}
	}
}

func measureFailover(t *testing.T, tm failoverTimers, death string) {
	const handle = "failover"
	n := memnet.New(1, memnet.WithLink(memnet.Link{Delay: time.Millisecond}))
	t.Cleanup(func() { n.Close() })
	regNode := n.NewNode()
	cfg := enrp.Config{
		Transport: regNode, ListenAddr: regNode.Addr(transport.PortASAP),
		ASAP: enrp.ASAPConfig{KeepAliveInterval: tm.keepAlive, KeepAliveTimeout: tm.keepAlive},
	}
	events := track(t, &cfg, 256)
	r := startRegistrar(t, cfg)
	kaInterval, kaTimeout := tm.keepAlive, tm.keepAlive
	if tm.keepAlive == 0 {
		kaInterval, kaTimeout = enrp.DefaultKeepAliveInterval, enrp.DefaultKeepAliveTimeout
	}

	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	nodes := map[uint32]*memnet.Node{}
	pes := map[uint32]*pe{}
	for i := 1; i <= 3; i++ {
		nd := n.NewNode()
		p := startPE(t, fmt.Sprintf("pe-%d", i), nd, nd.Addr(7), nd, asap.PEConfig{
			PoolHandle: []byte(handle), Registrars: []transport.Addr{r.Addr()}, Kind: transport.KindMem,
		})
		if err := p.Register(ctx); err != nil {
			t.Fatal(err)
		}
		nodes[p.ID()], pes[p.ID()] = nd, p
	}
	puNode := n.NewNode()
	pu := newPU(t, asap.PUConfig{Registrars: []transport.Addr{r.Addr()}, Kind: transport.KindMem, DialTimeout: tm.requestTimeout}, puNode)

	// The session: one request every 100 ms on the association to the
	// current PE; on a failure, report the PE and fail over at once.
	var (
		conn                 transport.Conn
		cur                  uint32
		victim               uint32
		killedAt, failedOver time.Time
		failures             int
	)
	pace := time.NewTicker(100 * time.Millisecond)
	defer pace.Stop()
	for sent := 0; failedOver.IsZero(); {
		if conn == nil {
			c, p, err := pu.Dial(ctx, []byte(handle))
			if err != nil {
				t.Fatalf("dial after %d failures: %v", failures, err)
			}
			conn, cur = c, p.ID
		}
		rctx, rcancel := context.WithTimeout(ctx, tm.requestTimeout)
		_, _, err := echo.Request(rctx, conn, "ping")
		rcancel()
		if err != nil {
			if killedAt.IsZero() {
				t.Fatalf("request failed before any PE died: %v", err)
			}
			failures++
			echo.Abort(conn)
			conn = nil
			if err := pu.ReportUnreachable(ctx, []byte(handle), cur); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if !killedAt.IsZero() {
			failedOver = time.Now()
			break
		}
		if sent++; sent == 10 {
			// The PE this session is on dies now.
			killedAt, victim = time.Now(), cur
			switch death {
			case "process-exit":
				pes[cur].crash()
			case "host-down":
				n.Isolate(nodes[cur])
			}
			continue // the next request goes out at once
		}
		<-pace.C
	}
	conn.Close()
	puTime := failedOver.Sub(killedAt)

	// The registrar removes the dead PE, and says when and why.
	rm := events.waitEvent(t, 5*time.Minute, "removal of the dead PE", removed(victim))
	regTime, why := rm.Time.Sub(killedAt), rm.Reason
	if ids, err := poolIDs(ctx, r, handle); err != nil || slices.Contains(ids, victim) {
		t.Errorf("after its removal event the registrar holds %v (%v), with the dead PE %s", ids, err, hex(victim))
	}
	t.Logf("failover timers=%s (request/dial timeout %v, keep-alive %v/%v) death=%s: PU's next successful request %v after the PE died (%d failed request(s)); registrar removed the PE after %v (%s)",
		tm.name, tm.requestTimeout, kaInterval, kaTimeout, death, puTime, failures, regTime, why)

	// The bounds the timers set. Process exit: the association closes, so
	// the PU needs no timeout and the registrar sees the loss at once.
	// Host down: the PU waits out one request timeout; the registrar
	// notices by a keep-alive within interval + timeout (the PE's
	// association had been silent at most that long).
	switch death {
	case "process-exit":
		if why != enrp.RemovedAssocLost {
			t.Errorf("process exit: the registrar removed the PE for %v, want %v", why, enrp.RemovedAssocLost)
		}
		if puTime > 20*time.Millisecond || regTime > 20*time.Millisecond || failures != 1 {
			t.Errorf("process exit: PU %v, registrar %v, %d failures; want both within a few round trips, 1 failure", puTime, regTime, failures)
		}
	case "host-down":
		if why != enrp.RemovedKeepAliveTimeout {
			t.Errorf("host down: the registrar removed the PE for %v, want %v", why, enrp.RemovedKeepAliveTimeout)
		}
		if puTime < tm.requestTimeout || puTime > tm.requestTimeout+20*time.Millisecond || failures != 1 {
			t.Errorf("host down: PU %v, %d failures; want one request timeout (%v) and a little", puTime, failures, tm.requestTimeout)
		}
		if regTime > kaInterval+kaTimeout+20*time.Millisecond {
			t.Errorf("host down: registrar took %v, more than keep-alive interval + timeout", regTime)
		}
	}
}
