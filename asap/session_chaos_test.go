package asap

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/go-rserpool/rserpool/internal/leakcheck"
	"github.com/go-rserpool/rserpool/transport/memnet"
)

// RFC 5352 §3.5, §3.9-3.10 under churn: 3 PEs, 10 sessions, 20 % loss on
// every link; the PEs die in turn while the sessions run requests: the
// first crashes and comes back, the second hangs (reads, never answers)
// and comes back, the third crashes for good. The counter of
// each session lives only in its cookie. Every request is either answered
// or reported to the caller (who sends it again), every answer shows the
// state intact (the counter equals the request's sequence number: no
// update lost, none applied twice), and every session ends on a live PE
// having failed over at least once.
func TestSessionChurnUnderLoss(t *testing.T) {
	leakcheck.Check(t)
	synctest.Test(t, func(t *testing.T) {
		const sessions, requests = 10, 24
		m := newMemSess(t, 3, memnet.WithLink(memnet.Link{Loss: 0.2, Delay: time.Millisecond}),
			memnet.WithRTO(100*time.Millisecond), memnet.WithAssociationTimeout(3*time.Second))
		defer m.close()
		m.reg.mu.Lock()
		m.reg.keepReported = true // a registrar below MAX-BAD-PE-REPORT: the dead stay listed
		m.reg.mu.Unlock()
		pu := m.newPU(t)
		defer pu.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()

		ss := make([]*Session, sessions)
		for i := range ss {
			s, err := pu.Connect(ctx, []byte("echo"), SessionConfig{RequestTimeout: 2 * time.Second})
			if err != nil {
				t.Fatalf("session %d: %v", i, err)
			}
			defer s.Close()
			ss[i] = s
		}

		answered := make(chan struct{}, sessions*requests)
		var wg sync.WaitGroup
		reported := make([]int, sessions)
		fails := make([]error, sessions)
		for i, s := range ss {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for seq := 1; seq <= requests; seq++ {
					for try := 0; ; try++ {
						n, _, err := inc(ctx, s, seq)
						if err == nil {
							if n != seq {
								fails[i] = fmt.Errorf("request %d answered with counter %d: state lost or applied twice", seq, n)
								return
							}
							answered <- struct{}{}
							break
						}
						reported[i]++ // reported to the caller, never lost silently
						if try == 5 || ctx.Err() != nil {
							fails[i] = fmt.Errorf("request %d: %d errors, last %w", seq, try+1, err)
							return
						}
					}
				}
			}()
		}
		// Crash the PEs in turn as the requests progress.
		wait := func(k int) {
			for range k {
				select {
				case <-answered:
				case <-ctx.Done():
					return
				}
			}
		}
		total := sessions * requests
		wait(total / 4)
		m.pes[0].crash()
		wait(total / 4)
		if err := m.pes[0].listen(); err != nil {
			t.Fatal(err)
		}
		m.pes[1].hang() // reads and never answers: found by the request deadline
		wait(total / 4)
		m.pes[1].crash()
		if err := m.pes[1].listen(); err != nil {
			t.Fatal(err)
		}
		m.pes[2].crash()
		wg.Wait()

		var failovers, errs uint64
		for i, s := range ss {
			if fails[i] != nil {
				t.Errorf("session %d: %v", i, fails[i])
				continue
			}
			pe, ok := s.PE()
			if !ok || pe.ID == 3 {
				t.Errorf("session %d ends on PE %d (connected %v), want a live one", i, pe.ID, ok)
			}
			if got, want := string(s.Cookie()), fmt.Sprintf("%d %d", requests, requests); got != want {
				t.Errorf("session %d: cookie %q, want %q", i, got, want)
			}
			st := s.Stats()
			if st.Failovers == 0 {
				t.Errorf("session %d never failed over: %+v", i, st)
			}
			failovers += st.Failovers
			errs += uint64(reported[i])
		}
		t.Logf("%d sessions x %d requests under 20%% loss: %d failovers, %d requests reported to the caller and sent again",
			sessions, requests, failovers, errs)
	})
}
