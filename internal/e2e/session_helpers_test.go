package e2e

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/go-rserpool/rserpool/asap"
	"github.com/go-rserpool/rserpool/asap/cookie"
	"github.com/go-rserpool/rserpool/tlv"
	"github.com/go-rserpool/rserpool/transport"
)

// The session tests' service (RFC 5352 §3.9-3.11): a counter per session
// that lives in the session's cookie. A request "inc <seq>" adds one to
// the counter unless seq is the request the cookie says was done last (a
// request the session sent again after a failover, or the caller after
// an error), then the PE seals "counter=<n> seq=<seq>" with the pool's
// shared key, sends it (ASAP_COOKIE) and only then the answer
// "counter=<n> pe=<PE ID>": whoever holds the answer holds the cookie
// that includes it. A session that starts with an ASAP_COOKIE_ECHO starts
// from the counter in it, once the cookie opened; a cookie that does not
// open gets the session aborted.

// counterKey is the pool's shared cookie key in the session tests.
var counterKey = cookie.Key{ID: 7, Secret: []byte("the counter pool's shared secret!")}

func counterSealer(t testing.TB, handle string) *cookie.Sealer {
	t.Helper()
	s, err := cookie.New(cookie.Config{Keys: []cookie.Key{counterKey}, Context: []byte(handle)})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// parseCounter reads a cookie's state or an answer.
func parseCounter(b []byte) (n, seq int, err error) {
	_, err = fmt.Sscanf(string(b), "counter=%d seq=%d", &n, &seq)
	return n, seq, err
}

// counterPE is one PE of the counter pool: an asap.SessionServer with a
// fixed PE identifier and address, on a transport whose host can crash.
// It can be started again after a crash (the same identifier and
// address, as a restarted process with its configuration).
type counterPE struct {
	name   string
	id     uint32
	handle string
	base   transport.Transport
	cfg    asap.SessionServerConfig
	sealer *cookie.Sealer

	mu      sync.Mutex
	tp      *crashTransport
	srv     *asap.SessionServer
	up      bool
	card    []tlv.PoolElement
	hung    atomic.Bool
	refused atomic.Int64 // echoes that did not open
	served  atomic.Int64 // requests answered
	wg      sync.WaitGroup
}

// newCounterPE makes the PE; start runs it.
func newCounterPE(t testing.TB, name string, id uint32, handle string, tr transport.Transport, at transport.Addr, pe asap.PEConfig) *counterPE {
	pe.PEID, pe.PoolHandle = id, []byte(handle)
	return &counterPE{name: name, id: id, handle: handle, base: tr, sealer: counterSealer(t, handle),
		cfg: asap.SessionServerConfig{PE: pe, ListenAddr: at}}
}

// start runs the server (again) and registers it, waiting at most ctx.
func (p *counterPE) start(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.up {
		return errors.New(p.name + " runs already")
	}
	p.tp = &crashTransport{Transport: p.base}
	p.hung.Store(false)
	srv, err := asap.NewSessionServer(p.cfg, p.tp)
	if err != nil {
		return fmt.Errorf("%s: %w", p.name, err)
	}
	if !p.cfg.ListenAddr.IsValid() || p.cfg.ListenAddr.AddrPort.Port() == 0 {
		p.cfg.ListenAddr = srv.Addr() // the same port when it comes back
	}
	p.srv, p.up = srv, true
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			s, err := srv.Accept(context.Background())
			if err != nil {
				return
			}
			p.wg.Add(1)
			go func() { defer p.wg.Done(); p.serve(s) }()
		}
	}()
	if err := srv.Register(ctx); err != nil {
		return fmt.Errorf("%s: register: %w", p.name, err)
	}
	return nil
}

// addr is where pool users reach the PE.
func (p *counterPE) addr() transport.Addr {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cfg.ListenAddr
}

func (p *counterPE) setCard(card []tlv.PoolElement) {
	p.mu.Lock()
	p.card = card
	p.mu.Unlock()
}

func (p *counterPE) running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.up
}

func (p *counterPE) serve(s *asap.PESession) {
	ctx := context.Background()
	defer s.Close()
	n, seq := 0, 0
	if echo := s.CookieEcho(); echo != nil {
		state, err := p.sealer.Open(echo)
		if err == nil {
			n, seq, err = parseCounter(state)
		}
		if err != nil {
			p.refused.Add(1)
			s.Abort()
			return
		}
	}
	p.mu.Lock()
	card := p.card
	p.mu.Unlock()
	if card != nil {
		if err := s.SendBusinessCard(ctx, tlv.BusinessCard{PEs: card}); err != nil {
			return
		}
	}
	for {
		m, err := s.Recv(ctx)
		if err != nil {
			return
		}
		if p.hung.Load() {
			continue // reads, never answers
		}
		var k int
		if _, err := fmt.Sscanf(string(m.Data), "inc %d", &k); err != nil {
			return
		}
		if k != seq {
			n, seq = n+1, k
		}
		sealed, err := p.sealer.Seal(fmt.Appendf(nil, "counter=%d seq=%d", n, seq))
		if err != nil || s.SendCookie(ctx, sealed) != nil {
			return
		}
		if s.Send(ctx, transport.Message{PPID: m.PPID, Stream: m.Stream, Data: fmt.Appendf(nil, "counter=%d pe=%d", n, p.id)}) != nil {
			return
		}
		p.served.Add(1)
	}
}

// crash kills the PE as a crashed process: every association of it is
// aborted, it sends and dials nothing more, its port closes, and it
// never deregisters.
func (p *counterPE) crash() {
	p.mu.Lock()
	tp, srv, up := p.tp, p.srv, p.up
	p.up = false
	p.mu.Unlock()
	if !up {
		return
	}
	tp.crash()
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // nothing to deregister with
	srv.Shutdown(ctx)
	p.wg.Wait()
}

// stop shuts the PE down cleanly: it deregisters and closes its
// sessions.
func (p *counterPE) stop() {
	p.mu.Lock()
	srv, up := p.srv, p.up
	p.up = false
	p.mu.Unlock()
	if up {
		srv.Close()
	}
	p.wg.Wait()
}

// param is the PE as a business card names it.
func (p *counterPE) param(t testing.TB, policy tlv.Policy) tlv.PoolElement {
	ut, err := asap.TransportParam(p.addr(), tlv.TransportUseDataPlusControl)
	if err != nil {
		t.Fatal(err)
	}
	return tlv.PoolElement{ID: p.id, UserTransport: ut, Policy: policy, RegistrationLife: 30000}
}

// crashTransport is the transport of a host that can crash: crash aborts
// every association made on it, and from then on it dials nothing and
// aborts what it accepts.
type crashTransport struct {
	transport.Transport
	mu    sync.Mutex
	conns []transport.Conn
	dead  bool
}

var errCrashed = errors.New("host crashed")

// Kind passes the wrapped transport's kind on.
func (t *crashTransport) Kind() transport.Kind {
	if k, ok := t.Transport.(transport.KindReporter); ok {
		return k.Kind()
	}
	return 0
}

func (t *crashTransport) track(c transport.Conn) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.dead {
		return false
	}
	t.conns = append(t.conns, c)
	return true
}

func (t *crashTransport) Dial(ctx context.Context, to transport.Addr) (transport.Conn, error) {
	t.mu.Lock()
	dead := t.dead
	t.mu.Unlock()
	if dead {
		return nil, errCrashed
	}
	c, err := t.Transport.Dial(ctx, to)
	if err != nil {
		return nil, err
	}
	if !t.track(c) {
		c.Abort()
		return nil, errCrashed
	}
	return c, nil
}

func (t *crashTransport) Listen(at transport.Addr) (transport.Listener, error) {
	l, err := t.Transport.Listen(at)
	if err != nil {
		return nil, err
	}
	return &crashListener{Listener: l, host: t}, nil
}

func (t *crashTransport) crash() {
	t.mu.Lock()
	conns := t.conns
	t.conns, t.dead = nil, true
	t.mu.Unlock()
	for _, c := range conns {
		c.Abort()
	}
}

type crashListener struct {
	transport.Listener
	host *crashTransport
}

func (l *crashListener) Accept(ctx context.Context) (transport.Conn, error) {
	for {
		c, err := l.Listener.Accept(ctx)
		if err != nil {
			return nil, err
		}
		if l.host.track(c) {
			return c, nil
		}
		c.Abort()
	}
}

// counterInc sends request seq on s; it returns the counter and the PE
// of the answer.
func counterInc(ctx context.Context, s *asap.Session, seq int) (n int, pe uint32, err error) {
	m, err := s.Request(ctx, transport.Message{Data: fmt.Appendf(nil, "inc %d", seq)})
	if err != nil {
		return 0, 0, err
	}
	if _, err := fmt.Sscanf(string(m.Data), "counter=%d pe=%d", &n, &pe); err != nil {
		return 0, 0, fmt.Errorf("bad answer %q: %w", m.Data, err)
	}
	return n, pe, nil
}
