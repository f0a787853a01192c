package e2e

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-rserpool/rserpool/asap"
	"github.com/go-rserpool/rserpool/enrp"
	"github.com/go-rserpool/rserpool/internal/countersvc"
	"github.com/go-rserpool/rserpool/internal/leakcheck"
	"github.com/go-rserpool/rserpool/policy"
	"github.com/go-rserpool/rserpool/tlv"
	"github.com/go-rserpool/rserpool/transport"
	"github.com/go-rserpool/rserpool/transport/sctp"
)

// sessAnswer is one answered request of a session.
type sessAnswer struct {
	at time.Time
	pe uint32
}

// sessLog is what the sessions' request loops record, and a signal at
// each answer.
type sessLog struct {
	mu      sync.Mutex
	answers [][]sessAnswer
	errs    []int
	fails   []error
	tick    chan struct{}
}

func (l *sessLog) answered(i int, pe uint32) {
	l.mu.Lock()
	l.answers[i] = append(l.answers[i], sessAnswer{at: time.Now(), pe: pe})
	l.mu.Unlock()
	select {
	case l.tick <- struct{}{}:
	default:
	}
}

// firstAfter returns the first answer of session i after t from another
// PE than dead.
func (l *sessLog) firstAfter(i int, t time.Time, dead uint32) (sessAnswer, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, a := range l.answers[i] {
		if a.at.After(t) && a.pe != dead {
			return a, true
		}
	}
	return sessAnswer{}, false
}

func (l *sessLog) last(i int) (sessAnswer, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.answers[i]) == 0 {
		return sessAnswer{}, 0
	}
	return l.answers[i][len(l.answers[i])-1], len(l.answers[i])
}

// waitFor waits for cond, checked at each answer, until ctx ends.
func (l *sessLog) waitFor(ctx context.Context, t *testing.T, what string, cond func() bool) {
	t.Helper()
	for !cond() {
		select {
		case <-l.tick:
		case <-ctx.Done():
			t.Fatalf("no %s: %v", what, ctx.Err())
		}
	}
}

// TestSessionsLoopbackSCTP runs ASAP sessions (RFC 5352 §3.9-3.11) over
// user-space SCTP on loopback in real time, with LAN-tuned path
// supervision (sctp.LANSupervision) and a 300 ms request deadline: a real
// registrar, two SessionServer PEs serving the counter (its state only in
// the sealed cookie; each PE's business card names the other), and two
// pool users with a session each, sending requests without pause. The
// PE of the first session crashes (every association aborted, no
// deregistration) and is started again on the same port; then the PE
// both sessions are on hangs (it reads and answers nothing). Each time,
// every session on the dead PE fails over to the other one, which
// restores the counter from the echoed cookie: every answer's counter is
// the number of requests the session had answered, and each session's
// final cookie opens and holds its count. The failover times (death to
// the first answer from the other PE) are logged, never asserted.
func TestSessionsLoopbackSCTP(t *testing.T) {
	if testing.Short() {
		t.Skip("real SCTP over loopback")
	}
	leakcheck.Check(t)
	const (
		handle         = "sctp-counter"
		sessions       = 2
		requestTimeout = 300 * time.Millisecond
	)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	tp := sctp.New(sctp.Config{ShutdownTimeout: time.Second, Supervision: sctp.LANSupervision()})
	const ka = 500 * time.Millisecond
	r := startRegistrar(t, enrp.Config{Transport: tp, ListenAddr: loopbackAny, ASAP: enrp.ASAPConfig{KeepAliveInterval: ka, KeepAliveTimeout: ka}})

	var pes []*counterPE
	byID := map[uint32]*counterPE{}
	for i := 1; i <= 2; i++ {
		p := newCounterPE(t, fmt.Sprintf("pe-%d", i), uint32(0x100*i), handle, tp, loopbackAny,
			asap.PEConfig{Registrars: []transport.Addr{r.Addr()}})
		if err := p.start(ctx); err != nil {
			t.Fatal(err)
		}
		defer p.stop()
		pes = append(pes, p)
		byID[p.id] = p
	}
	rr := policy.Encode(policy.RoundRobin, policy.Values{})
	pes[0].setCard([]tlv.PoolElement{pes[1].param(t, rr)})
	pes[1].setCard([]tlv.PoolElement{pes[0].param(t, rr)})

	ss := make([]*asap.Session, sessions)
	for i := range ss {
		pu := newPU(t, asap.PUConfig{Registrars: []transport.Addr{r.Addr()}, DialTimeout: time.Second}, tp)
		s, err := pu.Connect(ctx, []byte(handle), asap.SessionConfig{RequestTimeout: requestTimeout})
		if err != nil {
			t.Fatalf("session %d: %v", i, err)
		}
		defer s.Close()
		ss[i] = s
	}

	log := &sessLog{answers: make([][]sessAnswer, sessions), errs: make([]int, sessions), fails: make([]error, sessions), tick: make(chan struct{}, 1)}
	var stop atomic.Bool
	var wg sync.WaitGroup
	for i, s := range ss {
		wg.Go(func() {
			for seq := 1; !stop.Load(); seq++ {
				for {
					got, pe, err := counterInc(ctx, s, seq)
					if err == nil {
						if _, k := log.last(i); got != k+1 {
							log.mu.Lock()
							log.fails[i] = fmt.Errorf("request %d answered by PE %#x with counter=%d after %d answered requests: state lost or applied twice", seq, pe, got, k)
							log.mu.Unlock()
							return
						}
						log.answered(i, pe)
						break
					}
					log.mu.Lock()
					log.errs[i]++
					n := log.errs[i]
					log.mu.Unlock()
					if ctx.Err() != nil || n > 20 {
						log.mu.Lock()
						log.fails[i] = fmt.Errorf("request %d: %d errors, the last %w", seq, n, err)
						log.mu.Unlock()
						return
					}
				}
			}
		})
	}
	defer wg.Wait()
	defer stop.Store(true)
	count := func(n int) func() bool {
		return func() bool {
			for i := range ss {
				if _, k := log.last(i); k < n {
					return false
				}
			}
			return true
		}
	}
	// failedOver waits until every session that was on dead has an answer
	// from another PE after since, and logs the times.
	failedOver := func(what string, dead *counterPE, since time.Time, on []int) {
		t.Helper()
		log.waitFor(ctx, t, "failover after the "+what, func() bool {
			for _, i := range on {
				if _, ok := log.firstAfter(i, since, dead.id); !ok {
					return false
				}
			}
			return true
		})
		for _, i := range on {
			a, _ := log.firstAfter(i, since, dead.id)
			t.Logf("%s of %s: session %d answered by %s %v after it (request deadline %v, timers=lan)",
				what, dead.name, i, byID[a.pe].name, a.at.Sub(since).Round(10*time.Microsecond), requestTimeout)
		}
	}
	onPE := func(p *counterPE) []int {
		var on []int
		for i, s := range ss {
			if pe, _ := s.PE(); pe.ID == p.id {
				on = append(on, i)
			}
		}
		return on
	}

	log.waitFor(ctx, t, "three answers per session", count(3))
	cur, _ := ss[0].PE()
	crashed := byID[cur.ID]
	on := onPE(crashed)
	since := time.Now()
	crashed.crash()
	failedOver("crash", crashed, since, on)
	if err := crashed.start(ctx); err != nil {
		t.Fatal(err)
	}

	_, k := log.last(0)
	log.waitFor(ctx, t, "more answers", count(k+3))
	cur, _ = ss[0].PE()
	hung := byID[cur.ID]
	if hung == crashed {
		t.Fatalf("session 0 is on %s again right after its crash", crashed.name)
	}
	on = onPE(hung)
	since = time.Now()
	hung.hung.Store(true)
	failedOver("hang", hung, since, on)
	_, k = log.last(0)
	log.waitFor(ctx, t, "answers after the hang", count(k+3))
	stop.Store(true)
	wg.Wait()

	sealer := counterSealer(t, handle)
	for i, s := range ss {
		if log.fails[i] != nil {
			t.Errorf("session %d: %v", i, log.fails[i])
			continue
		}
		_, k := log.last(i)
		state, err := sealer.Open(s.Cookie())
		if err != nil {
			t.Errorf("session %d: its cookie does not open: %v", i, err)
			continue
		}
		if c, _, err := countersvc.ParseState(state); err != nil || c != k {
			t.Errorf("session %d: cookie %q (%v) after %d answered requests", i, state, err, k)
		}
		st := s.Stats()
		if pe, ok := s.PE(); !ok || pe.ID == hung.id {
			t.Errorf("session %d ends on PE %#x (connected %v), not on the live %s", i, pe.ID, ok, crashed.name)
		}
		t.Logf("session %d: %d answered, %d returned to the caller; %d failovers, %d cookie echoes", i, k, log.errs[i], st.Failovers, st.CookieEchoesSent)
	}
	for _, p := range pes {
		if p.refused.Load() != 0 {
			t.Errorf("%s refused %d cookie echoes", p.name, p.refused.Load())
		}
	}
}
