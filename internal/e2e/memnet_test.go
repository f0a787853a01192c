package e2e

import (
	"context"
	"fmt"
	"slices"
	"sync"
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

// TestMemnetLossy runs 1 registrar, 100 PEs and 10 PUs over a network that
// loses 20 % of all packets (association messages are retransmitted, as
// SCTP does, so they arrive late; announces are just lost). Every PE must
// end registered (RFC 5352 §3.1-3.2, retries of T2 and re-registration
// after any keep-alive removal, §3.7), every PU request must be answered
// (resolution with T1 retries, §3.5, then the echo exchange), and no
// goroutine may outlive the test. Half the PUs know the registrar's
// address, the other half find it by its announces (§3.6) and ask for
// the whole pool with the Handle Resolution Option.
func TestMemnetLossy(t *testing.T) {
	leakcheck.Check(t)
	synctest.Test(t, func(t *testing.T) {
		const (
			numPEs, numPUs, requests = 100, 10, 20
			handle                   = "lossy"
		)
		begin := time.Now()
		n := memnet.New(6, memnet.WithLink(memnet.Link{Loss: 0.2, Delay: 2 * time.Millisecond, Jitter: time.Millisecond}),
			memnet.WithRTO(200*time.Millisecond))
		t.Cleanup(func() { n.Close() })

		regNode := n.NewNode()
		regAnn, err := n.JoinGroup(regNode, announceGroup)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { regAnn.Close() })
		cfg := enrp.Config{
			Transport: regNode, ListenAddr: regNode.Addr(transport.PortASAP), Announcer: regAnn,
		}
		// Every registration, re-registration (T4) and keep-alive removal
		// of the run is an event: room for all of them.
		events := track(t, &cfg, 4096)
		r := startRegistrar(t, cfg)

		// 100 PEs register, all at once.
		pes := make([]*pe, numPEs)
		for i := range pes {
			nd := n.NewNode()
			pes[i] = startPE(t, fmt.Sprintf("pe-%d", i), nd, nd.Addr(7), nd, asap.PEConfig{
				PoolHandle: []byte(handle), Registrars: []transport.Addr{r.Addr()}, Kind: transport.KindMem,
				RegistrationLife: 30 * time.Second, // T4 = 10 s: a PE dropped by a late keep-alive ack is back soon
			})
		}
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
		defer cancel()
		var wg sync.WaitGroup
		regErr := make([]error, numPEs)
		for i, p := range pes {
			wg.Go(func() { regErr[i] = p.Register(ctx) })
		}
		wg.Wait()
		for i, err := range regErr {
			if err != nil {
				t.Fatalf("%s: Register: %v", pes[i].name, err)
			}
		}

		// 10 PUs send 20 requests each, all at once.
		answered := make([][]string, numPUs)
		callErr := make([]error, numPUs)
		for i := range numPUs {
			nd := n.NewNode()
			cfg := asap.PUConfig{Kind: transport.KindMem, DialTimeout: 30 * time.Second, StaleCache: 10 * time.Second}
			var opts []asap.Option
			if i%2 == 0 {
				cfg.Registrars = []transport.Addr{r.Addr()}
			} else {
				cfg.Items = numPEs // HROPT: ask for the whole pool
				a, err := n.JoinGroup(nd, announceGroup)
				if err != nil {
					t.Fatal(err)
				}
				opts = append(opts, asap.WithAnnouncer(a)) // the PU closes it
			}
			pu := newPU(t, cfg, nd, opts...)
			wg.Go(func() {
				// One request every 3 s: the run spans re-registrations
				// (T4 = 10 s), keep-alive rounds and cache refreshes.
				pace := time.NewTicker(3 * time.Second)
				defer pace.Stop()
				for j := range requests {
					if j > 0 {
						<-pace.C
					}
					msg := fmt.Sprintf("pu-%d request %d", i, j)
					// The timeout is above memnet's association timeout:
					// a PE is only reported when its association failed.
					a, err := echo.Call(ctx, pu, []byte(handle), msg, 15*time.Second)
					if err != nil {
						callErr[i] = fmt.Errorf("%s: %w", msg, err)
						return
					}
					if a.Text != msg {
						callErr[i] = fmt.Errorf("%s: echoed %q", msg, a.Text)
						return
					}
					answered[i] = append(answered[i], a.From)
				}
			})
		}
		wg.Wait()
		served := map[string]bool{}
		for i := range numPUs {
			if callErr[i] != nil {
				t.Errorf("pu-%d: %v", i, callErr[i])
			}
			if len(answered[i]) != requests {
				t.Errorf("pu-%d: %d of %d requests answered", i, len(answered[i]), requests)
			}
			for _, s := range answered[i] {
				served[s] = true
			}
		}
		t.Logf("%d PUs got %d answers from %d distinct PEs", numPUs, numPUs*requests, len(served))

		// Every PE ends registered: each one says so, and the registrar
		// holds exactly their IDs. A keep-alive ack delayed past the
		// timeout by repeated losses removes a PE until its next
		// re-registration (T4), so the registrar's view may take up to
		// T4 to be complete: its events say when.
		want := make([]uint32, numPEs)
		for i, p := range pes {
			want[i] = p.ID()
			if err := p.Register(ctx); err != nil {
				t.Errorf("%s: not registered at the end: %v", p.name, err)
			}
		}
		slices.Sort(want)
		events.waitHolds(t, time.Minute, "registrar holding all 100 PEs", want)
		if ids, err := poolIDs(ctx, r, handle); err != nil || !slices.Equal(ids, want) {
			t.Errorf("the events say the registrar holds the %d PEs, its view has %d (%v)", numPEs, len(ids), err)
		}
		st := r.Stats()
		if st.EventsDropped != 0 {
			t.Errorf("%d events dropped", st.EventsDropped)
		}
		removals := map[enrp.RemoveReason]int{}
		for _, ev := range events.seen() {
			if ev.Kind == enrp.EventRemoved {
				removals[ev.Reason]++
			}
		}
		if removals[enrp.RemovedKeepAliveTimeout] != int(st.ASAP.KeepAliveTimeouts) || removals[enrp.RemovedAssocLost] != int(st.ASAP.AssocLostRemoved) {
			t.Errorf("removal events %v disagree with the counts: %d keep-alive timeouts, %d association-loss removals",
				removals, st.ASAP.KeepAliveTimeouts, st.ASAP.AssocLostRemoved)
		}
		t.Logf("registrar: %d registrations, %d resolutions, %d keep-alives sent, %d keep-alive timeouts, %d association-loss removals, %d unreachable reports, virtual time %v",
			st.ASAP.Registrations, st.ASAP.Resolutions, st.ASAP.KeepAlivesSent, st.ASAP.KeepAliveTimeouts,
			st.ASAP.AssocLostRemoved, st.ASAP.UnreachableReports, time.Since(begin))
	})
}
