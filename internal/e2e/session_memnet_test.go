package e2e

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/go-rserpool/rserpool/asap"
	"github.com/go-rserpool/rserpool/enrp"
	"github.com/go-rserpool/rserpool/internal/countersvc"
	"github.com/go-rserpool/rserpool/internal/leakcheck"
	"github.com/go-rserpool/rserpool/policy"
	"github.com/go-rserpool/rserpool/tlv"
	"github.com/go-rserpool/rserpool/transport"
	"github.com/go-rserpool/rserpool/transport/memnet"
)

// TestSessionsChurnMemnet runs ASAP sessions (RFC 5352 §3.9-3.11) end to
// end over memnet in virtual time, with 20 % of the packets lost on every
// link (each loss delays a message by the RTO, doubling, RFC 9260 §6.3):
// a real enrp.Registrar, three real asap.SessionServer PEs serving the
// counter service (the state only in cookies sealed with the pool's
// shared key, asap/cookie), each naming the other two in its business
// card, and ten pool users with a session each, sending requests one
// after the other. While they run, the PEs are killed in turn:
//
//   - pe-1 crashes (its associations aborted, no deregistration) and
//     comes back (the same identifier and address);
//   - pe-2's host goes down (isolated: nothing it sends arrives, nothing
//     aborts; the sessions find out by their request deadline, the
//     registrar by its keep-alive, RFC 5352 §3.7, or the association's
//     loss), and comes back;
//   - pe-3 crashes for good.
//
// Every request is either answered or returned to its caller with an
// error (who sends it again; both are counted), none hangs past its
// bound; every answer's counter is the number of requests answered so
// far in the session (no update lost, none applied twice); at the end
// every session is on a live PE, its cookie opens with the pool's key
// and holds the full count, and every session failed over at least once.
//
// Half the sessions send a request cut short by a failover again on the
// next PE themselves (SessionConfig.RequestRetries, default 2), the other
// half return it to the caller at once (RequestRetries -1). Three seeds
// of the network's randomness.
func TestSessionsChurnMemnet(t *testing.T) {
	for _, seed := range []int64{1, 2, 3} {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			leakcheck.Check(t)
			synctest.Test(t, func(t *testing.T) { sessionsChurn(t, seed) })
		})
	}
}

func sessionsChurn(t *testing.T, seed int64) {
	const (
		handle   = "counter"
		sessions = 10
		requests = 30
		// attemptBound is how long one Request may take before the
		// test calls it hung: its deadline, its retries on the next
		// PEs, and the losses on the way, with room to spare.
		attemptBound = 30 * time.Second
	)
	n := memnet.New(seed, memnet.WithLink(memnet.Link{Loss: 0.2, Delay: time.Millisecond, Jitter: time.Millisecond}),
		memnet.WithRTO(100*time.Millisecond), memnet.WithAssociationTimeout(3*time.Second))
	t.Cleanup(func() { n.Close() }) // after the registrar's cleanup
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Minute)
	defer cancel()

	regNode := n.NewNode()
	cfg := enrp.Config{Transport: regNode, ListenAddr: regNode.Addr(transport.PortASAP),
		ASAP: enrp.ASAPConfig{KeepAliveInterval: time.Second, KeepAliveTimeout: 2 * time.Second}}
	events := track(t, &cfg, 4096)
	r := startRegistrar(t, cfg)

	var pes []*counterPE
	nodes := map[*counterPE]*memnet.Node{}
	for i := 1; i <= 3; i++ {
		nd := n.NewNode()
		p := newCounterPE(t, fmt.Sprintf("pe-%d", i), uint32(0x100*i), handle, nd, nd.Addr(7000),
			asap.PEConfig{Registrars: []transport.Addr{r.Addr()}, Kind: transport.KindMem})
		if err := p.start(ctx); err != nil {
			t.Fatal(err)
		}
		defer p.stop()
		pes = append(pes, p)
		nodes[p] = nd
	}
	rr := policy.Encode(policy.RoundRobin, policy.Values{})
	for i, p := range pes {
		var card []tlv.PoolElement
		for j := 1; j < len(pes); j++ {
			card = append(card, pes[(i+j)%len(pes)].param(t, rr))
		}
		p.setCard(card)
	}

	ss := make([]*asap.Session, sessions)
	for i := range ss {
		pu := newPU(t, asap.PUConfig{Registrars: []transport.Addr{r.Addr()}, Kind: transport.KindMem}, n.NewNode())
		retries := 0 // the default
		if i%2 == 1 {
			retries = -1 // the caller sends it again
		}
		s, err := pu.Connect(ctx, []byte(handle), asap.SessionConfig{RequestTimeout: 2 * time.Second, RequestRetries: retries})
		if err != nil {
			t.Fatalf("session %d: %v", i, err)
		}
		defer s.Close()
		ss[i] = s
	}

	var answeredTotal atomic.Int64
	progress := make(chan struct{}, sessions*requests)
	answered := make([]int, sessions)
	errs := make([]int, sessions)
	fails := make([]error, sessions)
	var wg sync.WaitGroup
	for i, s := range ss {
		wg.Go(func() {
			for seq := 1; seq <= requests; seq++ {
				for {
					actx, acancel := context.WithTimeout(ctx, attemptBound)
					got, _, err := counterInc(actx, s, seq)
					hung := actx.Err() != nil
					acancel()
					if hung {
						fails[i] = fmt.Errorf("request %d neither answered nor failed within %v", seq, attemptBound)
						return
					}
					if err == nil {
						answered[i]++
						if got != answered[i] {
							fails[i] = fmt.Errorf("request %d answered with counter=%d after %d answered requests: state lost or applied twice", seq, got, answered[i])
							return
						}
						answeredTotal.Add(1)
						progress <- struct{}{}
						break
					}
					// Reported to the caller: never lost silently. The
					// caller sends the same request again.
					errs[i]++
					var fe *asap.FailoverError
					var de *asap.DialError
					if !errors.As(err, &fe) && !errors.As(err, &de) {
						fails[i] = fmt.Errorf("request %d: unexpected error %w", seq, err)
						return
					}
					if errs[i] > 3*requests {
						fails[i] = fmt.Errorf("request %d: %d errors, the last %w", seq, errs[i], err)
						return
					}
				}
			}
		})
	}
	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()
	// The PEs are killed in turn as the requests progress; when the
	// sessions stop early (a failure), the checks below say why.
	total := sessions * requests
	upTo := func(k int) bool {
		for answeredTotal.Load() < int64(k) {
			select {
			case <-progress:
			case <-finished:
				return false
			}
		}
		return true
	}
	start := time.Now()
	at := func() time.Duration { return time.Since(start).Round(time.Millisecond) }
	func() {
		if !upTo(total / 5) {
			return
		}
		t.Logf("%v: pe-1 crashes", at())
		pes[0].crash()
		if !upTo(2 * total / 5) {
			return
		}
		if err := pes[0].start(ctx); err != nil {
			t.Error(err)
			return
		}
		t.Logf("%v: pe-1 back; pe-2's host goes down", at())
		n.Isolate(nodes[pes[1]])
		events.waitEvent(t, time.Minute, "pe-2's removal", removed(pes[1].id))
		if !upTo(3 * total / 5) {
			return
		}
		pes[1].crash() // what it still held is gone with its host
		n.Heal()
		if err := pes[1].start(ctx); err != nil {
			t.Error(err)
			return
		}
		if !upTo(4 * total / 5) {
			return
		}
		t.Logf("%v: pe-2 back; pe-3 crashes for good", at())
		pes[2].crash()
	}()
	<-finished
	t.Logf("%v: all requests done", at())

	sealer := counterSealer(t, handle)
	var failovers uint64
	var sumAnswered, sumErrs int
	for i, s := range ss {
		sumAnswered += answered[i]
		sumErrs += errs[i]
		if fails[i] != nil {
			t.Errorf("session %d: %v", i, fails[i])
			continue
		}
		if answered[i] != requests {
			t.Errorf("session %d: %d requests answered, want %d", i, answered[i], requests)
		}
		pe, ok := s.PE()
		if !ok || pe.ID == pes[2].id || (pe.ID != pes[0].id && pe.ID != pes[1].id) {
			t.Errorf("session %d ends on PE %#x (connected %v), want pe-1 or pe-2", i, pe.ID, ok)
		}
		state, err := sealer.Open(s.Cookie())
		if err != nil {
			t.Errorf("session %d: its cookie does not open: %v", i, err)
			continue
		}
		if c, seq, err := countersvc.ParseState(state); err != nil || c != answered[i] || seq != requests {
			t.Errorf("session %d: cookie %q (%v), want counter=%d seq=%d", i, state, err, answered[i], requests)
		}
		st := s.Stats()
		if st.Failovers == 0 {
			t.Errorf("session %d never failed over: %+v", i, st)
		}
		failovers += st.Failovers
	}
	for _, p := range pes {
		if p.refused.Load() != 0 {
			t.Errorf("%s refused %d cookie echoes, want none", p.name, p.refused.Load())
		}
	}
	t.Logf("%d sessions x %d requests under 20%% loss, PEs killed in turn: %d answered, %d returned to the caller with an error (and sent again), %d failovers",
		sessions, requests, sumAnswered, sumErrs, failovers)
}
