package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-rserpool/rserpool/asap"
	"github.com/go-rserpool/rserpool/asap/cookie"
	"github.com/go-rserpool/rserpool/enrp"
	"github.com/go-rserpool/rserpool/internal/countersvc"
	"github.com/go-rserpool/rserpool/internal/crashhost"
	"github.com/go-rserpool/rserpool/tlv"
	"github.com/go-rserpool/rserpool/transport"
	"github.com/go-rserpool/rserpool/transport/sctp"
)

// The session scene (RFC 5352 §3.9-3.11): a stateful service, a counter
// per session, served by three PEs through asap.SessionServer. The
// counter lives in the session's cookie: after each request the PE seals
// "counter=N seq=S" with the key the pool's PEs share (asap/cookie:
// HMAC-SHA-256) and sends it (ASAP_COOKIE) before the answer; the pool
// user's session keeps the latest one. Each PE also gives each session
// its business card (ASAP_BUSINESS_CARD): the PEs to fail over to, in
// its order. The session's PE crashes with a request in flight; the
// session fails over to the card's first PE, echoes the cookie first
// (ASAP_COOKIE_ECHO), and sends the request again; the new PE opens the
// cookie, restores the counter, and answers. Then a rogue pool user
// echoes the cookie with the counter rewritten, and the PE refuses it.

const (
	sessPool = "counter"
	// sessRequests is how many requests the session sends; the PE it
	// starts on crashes when request sessCrashAt reaches it.
	sessRequests = 7
	sessCrashAt  = 5
	// sessRequestTimeout is the session's request deadline: a few times
	// the RTO.Min of sctp.LANSupervision, for a PE that hangs.
	sessRequestTimeout = 500 * time.Millisecond
	// sessCookieMaxAge bounds how long a sealed counter may be replayed
	// (cookie.Config.MaxAge).
	sessCookieMaxAge = time.Minute
)

// sessPE is one PE of the scene: a SessionServer on a transport whose
// host can crash, serving the counter.
type sessPE struct {
	name string
	tr   *tracer
	tp   *crashhost.Transport
	srv  *asap.SessionServer
	svc  countersvc.Server
	id   uint32

	card    atomic.Pointer[[]tlv.PoolElement] // its business card
	crashAt atomic.Int64                      // the request that finds it crashing (0: none)
	crash   chan struct{}                     // closed when that request came
	refused chan error                        // the cookies it refused

	wg   sync.WaitGroup // Accept's loop and the sessions it serves
	once sync.Once
}

func startSessPE(ctx context.Context, tr *tracer, tp transport.Transport, reg *registrar, name string, key cookie.Key) (*sessPE, error) {
	sealer, err := cookie.New(cookie.Config{Keys: []cookie.Key{key}, MaxAge: sessCookieMaxAge, Context: []byte(sessPool)})
	if err != nil {
		return nil, err
	}
	p := &sessPE{name: name, tr: tr, tp: crashhost.New(tp),
		crash: make(chan struct{}), refused: make(chan error, 4)}
	p.srv, err = asap.NewSessionServer(asap.SessionServerConfig{
		PE:         asap.PEConfig{PoolHandle: []byte(sessPool), Registrars: []transport.Addr{reg.Addr()}},
		ListenAddr: loopbackAny,
	}, p.tp)
	if err != nil {
		return nil, err
	}
	p.id = p.srv.PoolElement().ID()
	reg.name(p.id, name)
	p.svc = countersvc.Server{Sealer: sealer, PE: p.id, Card: p.cardOf, Check: p.check,
		Restored: func(s *asap.PESession, n int, meta cookie.Meta) {
			p.tr.printf("  counter=%d restored on %s from the cookie echoed by %v (HMAC of key %d checked, sealed %v ago)",
				n, p.name, s.RemoteAddr(), meta.KeyID, time.Since(meta.Sealed).Round(time.Millisecond))
		},
		Refused: func(s *asap.PESession, err error) {
			p.tr.printf("  %s REFUSES the cookie echoed by %v: %v; session aborted, nothing restored", p.name, s.RemoteAddr(), err)
			select {
			case p.refused <- err:
			default:
			}
		},
	}
	if err := p.srv.Register(ctx); err != nil {
		p.srv.Close()
		return nil, fmt.Errorf("%s: register: %w", name, err)
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			s, err := p.srv.Accept(context.Background())
			if err != nil {
				return // closed (or crashed)
			}
			p.wg.Add(1)
			go func() { defer p.wg.Done(); p.svc.Serve(context.Background(), s) }()
		}
	}()
	return p, nil
}

// cardOf is the PE's business card (nil: none yet).
func (p *sessPE) cardOf() []tlv.PoolElement {
	if card := p.card.Load(); card != nil {
		return *card
	}
	return nil
}

// check lets the request the scene crashes the PE at find it crashing:
// it stays unanswered.
func (p *sessPE) check(k int) countersvc.Verdict {
	if at := p.crashAt.Load(); at != 0 && int64(k) == at && p.crashAt.CompareAndSwap(at, 0) {
		close(p.crash) // the scene crashes this host now
		return countersvc.Abandon
	}
	return countersvc.Answer
}

// kill crashes the PE's host: every association it has is aborted (as
// the kernel does for a process that dies), nothing more leaves it, its
// port closes, and it never deregisters.
func (p *sessPE) kill() {
	p.tp.Crash()
	p.stop(true)
}

// stop closes the server (deregistering it unless crashed) and waits for
// its sessions (idempotent).
func (p *sessPE) stop(crashed bool) {
	p.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		if crashed {
			cancel() // a dead host deregisters nothing
		}
		p.srv.Shutdown(ctx)
		cancel()
		p.wg.Wait()
	})
}

// sessionScene runs the scene with the registrar of the first scenes.
func sessionScene(ctx context.Context, tr *tracer, reg *registrar) error {
	tr.printf("Sessions (RFC 5352 §3.9-3.11): pool %q, a counter per session kept in the session's cookie, sealed with the pool's shared key", sessPool)
	// LAN-tuned SCTP path supervision (RTO 200 ms-1 s): what a crashed
	// host's missing ABORT would cost is bounded to seconds.
	tp := sctp.New(sctp.Config{ShutdownTimeout: time.Second, Supervision: sctp.LANSupervision()})
	secret := make([]byte, cookie.MinSecretLen)
	rand.Read(secret)
	key := cookie.Key{ID: 1, Secret: secret}

	var pes []*sessPE
	defer func() {
		for _, p := range pes {
			p.stop(false)
		}
	}()
	byID := map[uint32]*sessPE{}
	for i := 1; i <= 3; i++ {
		p, err := startSessPE(ctx, tr, tp, reg, fmt.Sprintf("pe-s%d", i), key)
		if err != nil {
			return err
		}
		pes = append(pes, p)
		byID[p.id] = p
		tr.printf("%s registered in pool %q as PE %08x, serving sessions at %v (data plus control)", p.name, sessPool, p.id, p.srv.Addr())
	}
	// Business cards: each PE names the two others, the one before it in
	// the ring first (pe-s1: pe-s3, pe-s2), the PEs as the registrar
	// holds them.
	entries, err := reg.PoolElements(ctx, []byte(sessPool))
	if err != nil {
		return err
	}
	params := map[uint32]tlv.PoolElement{}
	for _, e := range entries {
		params[e.PE.ID] = e.PE
	}
	for i, p := range pes {
		var card []tlv.PoolElement
		for j := 1; j < len(pes); j++ {
			o := pes[(i-j+len(pes))%len(pes)]
			pe, ok := params[o.id]
			if !ok {
				return fmt.Errorf("the registrar does not hold %s", o.name)
			}
			card = append(card, pe)
		}
		p.card.Store(&card)
	}
	names := func(card []tlv.PoolElement) string {
		var s []string
		for _, pe := range card {
			if p := byID[pe.ID]; p != nil {
				s = append(s, p.name)
			} else {
				s = append(s, fmt.Sprintf("PE %08x", pe.ID))
			}
		}
		return strings.Join(s, ", then ")
	}

	pu, err := asap.NewPoolUser(asap.PUConfig{Registrars: []transport.Addr{reg.Addr()}, DialTimeout: time.Second}, tp)
	if err != nil {
		return err
	}
	defer pu.Close()
	events := make(chan asap.SessionEvent, 64)
	s, err := pu.Connect(ctx, []byte(sessPool), asap.SessionConfig{Events: events, RequestTimeout: sessRequestTimeout})
	if err != nil {
		return fmt.Errorf("session: connect: %w", err)
	}
	defer s.Close()
	cur, _ := s.PE()
	first := byID[cur.ID]
	if first == nil {
		return fmt.Errorf("session on PE %08x, not one of the scene's", cur.ID)
	}
	first.crashAt.Store(sessCrashAt)
	tr.printf("pool user opened a session with pool %q: on %s", sessPool, first.name)

	var crashed time.Time
	var removed <-chan enrp.Event
	crashDone := make(chan struct{})
	go func() {
		defer close(crashDone)
		select {
		case <-first.crash:
		case <-ctx.Done():
			return
		}
		// The survivors' cards no longer name it (their hosts would
		// build them from the registrar's view).
		for _, p := range pes {
			if c := p.card.Load(); p != first && c != nil {
				card := slices.DeleteFunc(slices.Clone(*c), func(pe tlv.PoolElement) bool { return pe.ID == first.id })
				p.card.Store(&card)
			}
		}
		removed = reg.watchRemoval(first.id)
		crashed = time.Now()
		tr.printf("%s CRASHES with request #%d in flight: all its associations are aborted, it does not deregister", first.name, sessCrashAt)
		first.kill()
	}()

	var card []tlv.PoolElement // the latest business card
	var cardFrom uint32
	for k := 1; k <= sessRequests; k++ {
		m, err := s.Request(ctx, transport.Message{Data: countersvc.Request(k)})
		if err != nil {
			return fmt.Errorf("session: request #%d: %w", k, err)
		}
		answered := time.Now()
		pe, _ := s.PE()
		by := byID[pe.ID]
		n, _, err := countersvc.ParseAnswer(m.Data)
		if err != nil {
			return fmt.Errorf("request #%d: %w", k, err)
		}
		if n != k {
			return fmt.Errorf("request #%d answered with counter=%d by %s: the session's state was lost", k, n, by.name)
		}
		// The events of the request: its cookie, a business card, a
		// failover.
		for more := true; more; {
			select {
			case e := <-events:
				switch e := e.(type) {
				case asap.SessionCardReceived:
					if e.PE != cardFrom {
						cardFrom = e.PE
						tr.printf("  %s gave the session its business card (ASAP_BUSINESS_CARD): fail over to %s", byID[e.PE].name, names(e.PEs))
					}
					card = e.PEs
				case asap.FailoverEvent:
					<-crashDone
					old, nw := byID[e.Old.ID], byID[e.New.ID]
					if e.Err != nil || nw == nil {
						return fmt.Errorf("failover from %s found no PE: %v", old.name, e.Err)
					}
					steer := ""
					if len(card) > 0 && card[0].ID == e.New.ID {
						steer = ", its business card's first choice"
					} else {
						return fmt.Errorf("the session failed over to %s, not to %s's business card's first choice (%s)", nw.name, old.name, names(card))
					}
					if !e.CookieEchoed {
						return fmt.Errorf("the failover from %s to %s echoed no cookie", old.name, nw.name)
					}
					tr.printf("session FAILED OVER from %s to %s%s: %v; failover took %v (FailoverEvent.Duration: detection to new association), the cookie echoed first (ASAP_COOKIE_ECHO), %d request(s) sent again",
						old.name, nw.name, steer, e.Reason, e.Duration.Round(10*time.Microsecond), e.Retried)
					card = nil
				}
			default:
				more = false
			}
		}
		if k == sessCrashAt {
			<-crashDone
			if crashed.IsZero() {
				return fmt.Errorf("request #%d was answered, but %s never crashed", k, first.name)
			}
			if by == first {
				return fmt.Errorf("request #%d answered by %s after it crashed", k, first.name)
			}
			tr.printf("request #%d answered by %s: counter=%d, %v after %s crashed (crash to first answer on the new PE)",
				k, by.name, n, answered.Sub(crashed).Round(10*time.Microsecond), first.name)
			continue
		}
		tr.printf("request #%d answered by %s: counter=%d (cookie of %d bytes kept)", k, by.name, n, len(s.Cookie()))
	}
	st := s.Stats()
	if st.Failovers != 1 {
		return fmt.Errorf("the session failed over %d times, want 1", st.Failovers)
	}
	<-crashDone
	if removed == nil {
		return fmt.Errorf("%s never crashed", first.name)
	}
	if _, err := reg.awaitRemoval(ctx, first.name, removed); err != nil {
		return err
	}
	pe, _ := s.PE()
	tr.printf("state carried over: counter=%d after %d requests, %d on %s before its crash and %d on %s from its cookie on",
		sessRequests, sessRequests, sessCrashAt-1, first.name, sessRequests-sessCrashAt+1, byID[pe.ID].name)

	// A rogue pool user edits the counter in the session's (plain,
	// authenticated) cookie and echoes it to a live PE.
	var target *sessPE
	for _, p := range pes {
		if p != first && p.id != pe.ID {
			target = p
		}
	}
	ck := s.Cookie()
	was := fmt.Appendf(nil, "counter=%d ", sessRequests)
	forged := bytes.Replace(ck, was, []byte("counter=9 "), 1)
	if bytes.Equal(forged, ck) {
		return fmt.Errorf("the session's cookie does not hold %q", was)
	}
	tr.printf("a rogue pool user echoes the session's cookie to %s with counter=%d rewritten to counter=9", target.name, sessRequests)
	if err := rogueEcho(ctx, tr, tp, target, forged); err != nil {
		return err
	}
	select {
	case err := <-target.refused:
		if !errors.Is(err, cookie.ErrTampered) {
			return fmt.Errorf("%s refused the forged cookie with %v, want cookie.ErrTampered", target.name, err)
		}
	case <-ctx.Done():
		return fmt.Errorf("%s did not refuse the forged cookie", target.name)
	}
	s.Close()
	var live []tlv.PoolElement
	for _, p := range pes {
		if p == first {
			continue
		}
		live = append(live, tlv.PoolElement{ID: p.id})
		gone := reg.watchRemoval(p.id)
		p.stop(false)
		if ev, err := reg.awaitRemoval(ctx, p.name, gone); err != nil {
			return err
		} else if ev.Reason != enrp.RemovedDeregistered {
			return fmt.Errorf("%s removed for %v, want deregistered", p.name, ev.Reason)
		}
	}
	tr.printf("session closed; %s deregistered.", strings.Replace(names(live), ", then ", " and ", 1))
	return nil
}

// rogueEcho is a pool user written with the raw transport: it echoes
// forged to p (ASAP_COOKIE_ECHO, RFC 5352 §3.10), then sends a request,
// and expects the association aborted without an answer.
func rogueEcho(ctx context.Context, tr *tracer, tp transport.Transport, p *sessPE, forged []byte) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	c, err := tp.Dial(ctx, p.srv.Addr())
	if err != nil {
		return fmt.Errorf("rogue pool user: %w", err)
	}
	defer c.Abort()
	echo, err := tlv.Marshal(&tlv.CookieEcho{Cookie: forged})
	if err != nil {
		return err
	}
	if err := c.Send(ctx, transport.Message{PPID: transport.PPIDASAP, Data: echo}); err != nil {
		return fmt.Errorf("rogue pool user: cookie echo: %w", err)
	}
	c.Send(ctx, transport.Message{Data: countersvc.Request(sessRequests + 1)}) // may find the association gone
	for {
		m, err := c.Recv(ctx)
		switch {
		case errors.Is(err, transport.ErrAssociationLost) || errors.Is(err, transport.ErrPeerClosed):
			tr.printf("  rogue pool user: association ended by %s (%v), no answer: the forged counter was never used", p.name, err)
			return nil
		case err != nil:
			return fmt.Errorf("rogue pool user: %w", err)
		case m.PPID != transport.PPIDASAP:
			return fmt.Errorf("rogue pool user: %s answered %q to a forged cookie", p.name, m.Data)
		}
	}
}
