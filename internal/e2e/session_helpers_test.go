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
	"github.com/go-rserpool/rserpool/internal/countersvc"
	"github.com/go-rserpool/rserpool/internal/crashhost"
	"github.com/go-rserpool/rserpool/tlv"
	"github.com/go-rserpool/rserpool/transport"
)

// The session tests' service is the counter of internal/countersvc (RFC
// 5352 §3.9-3.11): a counter per session that lives in the session's
// cookie, sealed with the pool's shared key.

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
	svc    countersvc.Server

	mu      sync.Mutex
	tp      *crashhost.Transport
	srv     *asap.SessionServer
	up      bool
	card    []tlv.PoolElement
	hung    atomic.Bool
	refused atomic.Int64 // echoes that did not open
	wg      sync.WaitGroup
}

// newCounterPE makes the PE; start runs it.
func newCounterPE(t testing.TB, name string, id uint32, handle string, tr transport.Transport, at transport.Addr, pe asap.PEConfig) *counterPE {
	pe.PEID, pe.PoolHandle = id, []byte(handle)
	p := &counterPE{name: name, id: id, handle: handle, base: tr,
		cfg: asap.SessionServerConfig{PE: pe, ListenAddr: at}}
	p.svc = countersvc.Server{
		Sealer: counterSealer(t, handle),
		PE:     id,
		Card: func() []tlv.PoolElement {
			p.mu.Lock()
			defer p.mu.Unlock()
			return p.card
		},
		Check: func(int) countersvc.Verdict {
			if p.hung.Load() {
				return countersvc.Ignore // reads, never answers
			}
			return countersvc.Answer
		},
		Refused: func(*asap.PESession, error) { p.refused.Add(1) },
	}
	return p
}

// start runs the server (again) and registers it, waiting at most ctx.
func (p *counterPE) start(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.up {
		return errors.New(p.name + " runs already")
	}
	p.tp = crashhost.New(p.base)
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
			go func() { defer p.wg.Done(); p.svc.Serve(context.Background(), s) }()
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
	tp.Crash()
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

// counterInc sends request seq on s; it returns the counter and the PE
// of the answer.
func counterInc(ctx context.Context, s *asap.Session, seq int) (n int, pe uint32, err error) {
	m, err := s.Request(ctx, transport.Message{Data: countersvc.Request(seq)})
	if err != nil {
		return 0, 0, err
	}
	return countersvc.ParseAnswer(m.Data)
}
