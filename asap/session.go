package asap

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-rserpool/rserpool/internal/loop"
	"github.com/go-rserpool/rserpool/tlv"
	"github.com/go-rserpool/rserpool/transport"
)

// SessionConfig configures a session (PoolUser.Connect). Its zero value
// works; zero fields take the defaults named. A negative value turns a
// bound or a wait off where the field says so (as everywhere in this
// module), and is ErrInvalidConfig where that would have no meaning
// (RecvQueue, MaxFailover, DialTimeout); the same rule holds for
// SessionServerConfig on the PE's side.
type SessionConfig struct {
	// Cookie, when set, is echoed (ASAP_COOKIE_ECHO, RFC 5352 §3.10) to
	// the first PE: a session resumed from a cookie the host kept. Later
	// cookies come from the PEs (ASAP_COOKIE, §3.9); the session keeps only
	// the latest.
	Cookie []byte
	// RequestTimeout is how long Request waits for the answer of one
	// attempt before it takes the PE as hung and fails over; default
	// DefaultRequestTimeout (5 s, not an RFC value). Negative: no deadline
	// but the caller's context.
	RequestTimeout time.Duration
	// RequestRetries is how many times Request sends a request again on
	// the next PE when a failover cut its attempt short; default
	// DefaultRequestRetries (2). Negative: never; the request fails with a
	// *FailoverError (errors.Is ErrFailover) instead.
	RequestRetries int
	// MaxFailover bounds the PEs one failover (or the first connect)
	// tries; default the pool user's PUConfig.MaxFailover.
	MaxFailover int
	// DialTimeout bounds the dial of one PE; default the pool user's
	// PUConfig.DialTimeout.
	DialTimeout time.Duration
	// Dial, when set, opens the association to a PE instead of the pool
	// user's transport: the hook for PEs whose user transport is TCP or UDP
	// (see NetConn), or for a transport of the host's choosing. With it,
	// PEs of every transport type are tried; without it only SCTP ones. The
	// session fails over, and reports PEs unreachable, the same way. It
	// must return when ctx ends (DialTimeout, or the session's Close).
	Dial func(ctx context.Context, pe tlv.PoolElement) (transport.Conn, error)
	// Events, when set, receives the session's events (FailoverEvent,
	// SessionCookieReceived, SessionCardReceived) without ever blocking
	// the session: when it is full the event is dropped and counted
	// (SessionStats.EventsDropped).
	Events chan<- SessionEvent
	// RecvQueue is how many data messages the session holds for Recv
	// before it stops reading from the PE, as SessionServerConfig.RecvQueue
	// on the PE's side; default DefaultSessionRecvQueue (256). Negative is
	// ErrInvalidConfig.
	RecvQueue int
}

// Session is a pool user's session with a pool (RFC 5352 §3.9-3.11): an
// association to one PE at a time that fails over to the next PE when the
// current one fails, carrying the PE's latest cookie over. It is safe for
// concurrent use. See SessionCore for the procedure.
//
// Delivery: Send is at most once, as on a transport.Conn: a message handed
// to an association that fails afterwards may be lost, and the failover
// that follows is reported (SessionConfig.Events, Stats). A Send whose
// association failed under it is sent again on the next PE. Request is at
// least once: a request whose answer did not come before a failover is
// sent again on the next PE, after the COOKIE_ECHO, up to
// SessionConfig.RequestRetries times, so that the old PE may have
// processed it already: make requests idempotent, or let the cookie carry
// what the new PE needs to tell (a sequence number). A request that is not
// retried fails with a *FailoverError; none is lost silently.
type Session struct {
	pu      *PoolUser
	handle  []byte
	core    *SessionCore
	l       *loop.Loop
	cancel  context.CancelFunc
	stopped chan struct{}

	dialHook    func(ctx context.Context, pe tlv.PoolElement) (transport.Conn, error)
	dialTimeout time.Duration
	maxTries    int
	events      chan<- SessionEvent

	recvq   chan transport.Message
	credits chan struct{} // one per message held between a reader and Recv

	// on the loop
	assocs   map[AssocID]*sessAssoc
	reqWaits map[uint64]chan SessionRequestDone
	upWaits  []chan upResult
	deliv    int

	mu      sync.Mutex
	cur     *sessAssoc // the established association
	pe      tlv.PoolElement
	cookie  []byte
	broken  error
	changed chan struct{} // closed at each change of cur or broken
	stats   SessionStats

	dropped   atomic.Uint64
	aborting  atomic.Bool // Abort: the associations end with ABORT
	closed    atomic.Bool
	closeOnce sync.Once
}

type upResult struct {
	a   *sessAssoc
	err error
}

// sessAssoc is one association of a session: a writer goroutine that
// sends the core's messages (ctl, first) and the host's (data), and a
// reader goroutine that posts what arrives to the loop.
type sessAssoc struct {
	id     AssocID
	conn   transport.Conn
	ctl    chan transport.Message
	data   chan sendItem
	ctx    context.Context
	cancel context.CancelFunc
	abort  atomic.Bool
}

type sendItem struct {
	m    transport.Message
	done chan error
}

// errGone: the association ended before it took the message.
var errGone = errors.New("asap: session association gone")

// Connect opens a session with the pool: it selects a PE (from the cache,
// else by a handle resolution, RFC 5352 §3.5), dials its user transport
// and, when a dial fails, reports the PE unreachable and tries the next
// one, up to MaxFailover PEs, as Dial does. ctx bounds this first connect
// only; the session lives until Close (or the pool user's Close). When no
// PE could be reached the error is a *DialError (or the resolution's
// error). A session without a cookie sends nothing until the host does; a
// SessionServer PE hands it to its host only on its first message, or
// after its FirstMessageWait (3 s by default): for a protocol in which the
// PE speaks first, send first, or have the PE set FirstMessageWait
// negative.
func (pu *PoolUser) Connect(ctx context.Context, handle []byte, cfg SessionConfig) (*Session, error) {
	if cfg.RecvQueue < 0 || cfg.MaxFailover < 0 || cfg.DialTimeout < 0 {
		return nil, fmt.Errorf("%w: RecvQueue, MaxFailover and DialTimeout must not be negative", ErrInvalidConfig)
	}
	maxFO := cfg.MaxFailover
	if maxFO == 0 {
		maxFO = pu.maxFailover
	}
	core, err := NewSessionCore(handle, SessionCoreConfig{
		Cookie: cfg.Cookie, RequestTimeout: cfg.RequestTimeout, RequestRetries: cfg.RequestRetries,
		MaxFailover: maxFO, AnyTransport: cfg.Dial != nil, Logger: pu.core.log,
	})
	if err != nil {
		return nil, err
	}
	q := cfg.RecvQueue
	if q == 0 {
		q = DefaultSessionRecvQueue
	}
	lctx, cancel := context.WithCancel(context.Background())
	s := &Session{
		pu: pu, handle: bytes.Clone(handle), core: core, l: loop.New(lctx, loop.Real), cancel: cancel,
		stopped: make(chan struct{}), dialHook: cfg.Dial, dialTimeout: cfg.DialTimeout, maxTries: maxFO,
		events: cfg.Events, recvq: make(chan transport.Message, q), credits: make(chan struct{}, q),
		assocs: map[AssocID]*sessAssoc{}, reqWaits: map[uint64]chan SessionRequestDone{},
		cookie: bytes.Clone(cfg.Cookie), changed: make(chan struct{}),
	}
	if s.dialTimeout == 0 {
		s.dialTimeout = pu.dialTimeout
	}
	if !pu.addSession(s) {
		cancel()
		return nil, ErrClosed
	}
	go func() {
		defer close(s.stopped)
		s.l.Run(core, func(now time.Time) { s.flush(now) })
	}()
	if _, err := s.waitUp(ctx, func(now time.Time) { core.Start(now) }); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// call runs f on the session's loop.
func (s *Session) call(ctx context.Context, f func(now time.Time)) error {
	if err := s.l.Call(ctx, f); err != nil {
		if err == loop.ErrStopped {
			return ErrClosed
		}
		return err
	}
	return nil
}

// waitUp runs f on the loop, then waits until the session is established
// (returning the association) or broken (returning why).
func (s *Session) waitUp(ctx context.Context, f func(now time.Time)) (*sessAssoc, error) {
	w := make(chan upResult, 1)
	err := s.call(ctx, func(now time.Time) {
		if f != nil {
			f(now)
		}
		switch s.core.State() {
		case SessionEstablished:
			w <- upResult{a: s.assocs[s.core.assoc]}
		case SessionConnecting, SessionIdle:
			s.upWaits = append(s.upWaits, w)
		case SessionBroken:
			s.core.Resume(now)
			s.upWaits = append(s.upWaits, w)
		default:
			w <- upResult{err: ErrClosed}
		}
	})
	if err != nil {
		return nil, err
	}
	select {
	case r := <-w:
		if r.err == nil && r.a == nil {
			return nil, errGone
		}
		return r.a, r.err
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-s.stopped:
		return nil, ErrClosed
	}
}

// flush carries out the core's outputs on the loop; it returns how many
// data messages it delivered.
func (s *Session) flush(now time.Time) int {
	n := 0
	changed := false
	for {
		outs := s.core.Outbox()
		if len(outs) == 0 {
			break
		}
		for _, o := range outs {
			switch o := o.(type) {
			case SessionSelect:
				s.selectPE(o.Skip)
			case SessionDial:
				s.dial(o)
			case SessionSend:
				a := s.assocs[o.Assoc]
				if a == nil {
					continue
				}
				select {
				case a.ctl <- o.Msg:
				default:
					s.core.HandleSendFailed(now, o.Assoc, errors.New("asap: session control queue full"))
				}
			case SessionAbort:
				if a := s.assocs[o.Assoc]; a != nil {
					delete(s.assocs, o.Assoc)
					a.abort.Store(true)
					a.cancel()
				}
				s.mu.Lock()
				if s.cur != nil && s.cur.id == o.Assoc {
					s.cur = nil
					changed = true
				}
				s.mu.Unlock()
			case SessionReport:
				s.pu.reportLater(s.handle, o.PE)
			case SessionDeliver:
				s.recvq <- o.Msg // room: every message holds a credit
				n++
			case SessionUp:
				a := s.assocs[o.Assoc]
				s.mu.Lock()
				s.cur, s.pe, s.broken = a, o.PE, nil
				s.mu.Unlock()
				changed = true
				for _, w := range s.upWaits {
					w <- upResult{a: a}
				}
				s.upWaits = s.upWaits[:0]
			case SessionDown:
				s.mu.Lock()
				s.cur, s.broken = nil, o.Err
				s.mu.Unlock()
				changed = true
				for _, w := range s.upWaits {
					w <- upResult{err: o.Err}
				}
				s.upWaits = s.upWaits[:0]
			case SessionRequestDone:
				if w := s.reqWaits[o.Req]; w != nil {
					delete(s.reqWaits, o.Req)
					w <- o
				}
			case SessionCookieReceived:
				s.mu.Lock()
				s.cookie = bytes.Clone(o.Cookie) // o.Cookie goes to the host
				s.mu.Unlock()
				s.event(o)
			case SessionEvent:
				s.event(o)
			}
		}
	}
	s.mu.Lock()
	s.stats = s.core.Stats()
	if s.broken != nil && s.core.State() != SessionBroken {
		s.broken = nil // a new attempt is under way
		changed = true
	}
	if changed {
		close(s.changed)
		s.changed = make(chan struct{})
	}
	s.mu.Unlock()
	return n
}

func (s *Session) event(e SessionEvent) { offer(s.events, e, &s.dropped) }

// selectPE selects the next PE on a goroutine of the loop.
func (s *Session) selectPE(skip []uint32) {
	s.l.Go(func(ctx context.Context) {
		pe, err := s.pu.selectPE(ctx, s.handle, skip)
		s.l.Post(func(now time.Time) {
			if err != nil {
				s.core.HandleSelectFailed(now, err)
				return
			}
			s.core.HandleSelected(now, pe)
		})
	})
}

// dial dials a PE on a goroutine of the loop.
func (s *Session) dial(d SessionDial) {
	id, pe := d.Assoc, d.PE
	s.l.DialWith(func(ctx context.Context, _ transport.Addr) (transport.Conn, error) {
		if s.dialHook != nil {
			return s.dialHook(ctx, clonePE(pe))
		}
		addr, err := AddrOf(pe.UserTransport, s.pu.kind)
		if err != nil {
			return nil, err
		}
		return s.pu.tr.Dial(ctx, addr)
	}, transport.Addr{}, s.dialTimeout, func(now time.Time, c transport.Conn, err error) {
		if err == nil && c == nil {
			err = errors.New("asap: session dial hook returned no association")
		}
		if err != nil {
			s.core.HandleConnectFailed(now, id, err)
			return
		}
		s.attach(id, c)
		s.core.HandleConnected(now, id)
		if s.core.State() != SessionEstablished || s.core.assoc != id {
			if a := s.assocs[id]; a != nil {
				delete(s.assocs, id)
				a.abort.Store(true)
				a.cancel()
			}
		}
	})
}

// attach starts the writer and the reader of an association, on the loop.
func (s *Session) attach(id AssocID, c transport.Conn) {
	ctx, cancel := context.WithCancel(s.l.Context())
	a := &sessAssoc{id: id, conn: c, ctl: make(chan transport.Message, 8), data: make(chan sendItem), ctx: ctx, cancel: cancel}
	s.assocs[id] = a
	s.l.Go(func(context.Context) { s.write(a) })
	s.l.Go(func(context.Context) { s.read(a) })
}

func (s *Session) write(a *sessAssoc) {
	defer func() {
		if a.abort.Load() || s.aborting.Load() {
			a.conn.Abort()
		} else {
			a.conn.Close()
		}
	}()
	for {
		var it sendItem
		select {
		case it.m = <-a.ctl:
		default:
			select {
			case it.m = <-a.ctl:
			case it = <-a.data:
			case <-a.ctx.Done():
				return
			}
		}
		err := a.conn.Send(a.ctx, it.m)
		if err != nil && it.done != nil && (errors.Is(err, transport.ErrMessageTooLarge) || errors.Is(err, transport.ErrEmptyMessage)) {
			it.done <- err // the host's message alone is refused
			continue
		}
		if err != nil {
			if a.ctx.Err() == nil {
				s.l.Post(func(now time.Time) { s.core.HandleSendFailed(now, a.id, err) })
				a.abort.Store(true)
				a.cancel()
			}
			if it.done != nil {
				it.done <- errGone
			}
			return
		}
		if it.done != nil {
			it.done <- nil
		}
	}
}

func (s *Session) read(a *sessAssoc) {
	for {
		select {
		case s.credits <- struct{}{}:
		case <-a.ctx.Done():
			return
		}
		m, err := a.conn.Recv(a.ctx)
		if err != nil {
			<-s.credits
			if a.ctx.Err() == nil {
				s.l.Post(func(now time.Time) { s.core.HandleLost(now, a.id, err) })
			}
			return
		}
		if !s.l.Post(func(now time.Time) {
			s.core.HandleMessage(now, a.id, m)
			if s.flush(now) == 0 {
				<-s.credits
			}
		}) {
			return
		}
	}
}

// send hands m to the association's writer and waits for the transport.
func (a *sessAssoc) send(ctx context.Context, m transport.Message) error {
	it := sendItem{m: m, done: make(chan error, 1)}
	select {
	case a.data <- it:
	case <-a.ctx.Done():
		return errGone
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-it.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func checkData(m transport.Message) error {
	switch {
	case m.PPID == transport.PPIDASAP:
		return ErrControlPPID
	case len(m.Data) == 0:
		return transport.ErrEmptyMessage
	case len(m.Data) > transport.MaxMessageSize:
		return transport.ErrMessageTooLarge
	}
	return nil
}

// Send sends one application message (any PPID but 11, which is the
// session's control channel) to the current PE. While the session fails
// over, Send waits for the next PE (bounded by ctx); when the
// association fails under it, Send sends the message again on the next
// PE. When no PE is left it fails with the failover's error (a
// *FailoverError or *DialError); a later Send, Request or Failover tries
// again. See Session for what a failover means for messages sent before.
func (s *Session) Send(ctx context.Context, m transport.Message) error {
	if err := checkData(m); err != nil {
		return err
	}
	if s.closed.Load() {
		return ErrClosed
	}
	for tries := 0; ; tries++ {
		a, err := s.waitUp(ctx, nil)
		if errors.Is(err, errGone) && tries <= s.maxTries {
			continue
		}
		if err != nil {
			return err
		}
		err = a.send(ctx, m)
		switch {
		case err == nil:
			return nil
		case ctx.Err() != nil:
			return ctx.Err()
		case s.closed.Load():
			return ErrClosed
		case !errors.Is(err, errGone):
			return err // the message itself was refused
		case tries >= s.maxTries:
			return fmt.Errorf("asap: session send: %d associations failed under it: %w", tries+1, err)
		}
	}
}

// Recv returns the next application message from the session's PEs, in
// the order received (messages that arrived from a PE before it failed
// included). While a Request waits, the data message that arrives is its
// answer and Recv does not see it. Recv fails with ctx's error, with
// ErrClosed after Close, and with the failover's error while the session
// is broken (no PE found) and nothing is queued.
func (s *Session) Recv(ctx context.Context) (transport.Message, error) {
	for {
		if s.closed.Load() {
			return transport.Message{}, ErrClosed
		}
		select {
		case m := <-s.recvq:
			<-s.credits
			return m, nil
		default:
		}
		s.mu.Lock()
		broken, ch := s.broken, s.changed
		s.mu.Unlock()
		if broken != nil {
			return transport.Message{}, broken
		}
		select {
		case m := <-s.recvq:
			<-s.credits
			return m, nil
		case <-ch:
		case <-ctx.Done():
			return transport.Message{}, ctx.Err()
		case <-s.stopped:
			return transport.Message{}, ErrClosed
		}
	}
}

// Request sends m and returns the answer: the next application message
// the PE sends. Requests of one session go one at a time, in the order
// called. An attempt that gets no answer within SessionConfig.RequestTimeout
// (default 5 s) fails the PE over (ReasonRequestTimeout); a request cut
// short by any failover is sent again on the next PE, after the
// COOKIE_ECHO, up to SessionConfig.RequestRetries times, else it fails
// with a *FailoverError (errors.Is ErrFailover). ctx bounds the whole
// call; when it ends Request returns ctx's error. A request given up while
// in flight keeps the request slot until its answer comes (and is
// dropped, never taken for the next request's) or its deadline passes
// (a failover in which it is not sent again).
func (s *Session) Request(ctx context.Context, m transport.Message) (transport.Message, error) {
	if err := checkData(m); err != nil {
		return transport.Message{}, err
	}
	w := make(chan SessionRequestDone, 1)
	var req uint64
	if err := s.call(ctx, func(now time.Time) {
		req = s.core.Request(now, m)
		s.reqWaits[req] = w
	}); err != nil {
		return transport.Message{}, err
	}
	select {
	case d := <-w:
		return d.Msg, d.Err
	case <-ctx.Done():
		s.l.Post(func(now time.Time) {
			delete(s.reqWaits, req)
			s.core.CancelRequest(now, req)
		})
		return transport.Message{}, ctx.Err()
	case <-s.stopped:
		return transport.Message{}, ErrClosed
	}
}

// Failover leaves the current PE because the host says so (as RSPLIB's
// rsp_forcefailover): the association is aborted, the PE reported
// unreachable (RFC 5352 §3.5), and the next PE connected with the
// COOKIE_ECHO first (§3.10). cause (may be nil) goes into the
// FailoverEvent. It returns once the session is on a new PE, or with the
// failover's error when none was found. While a failover is under way it
// waits for that one; on a broken session it tries again.
func (s *Session) Failover(ctx context.Context, cause error) error {
	_, err := s.waitUp(ctx, func(now time.Time) { s.core.Failover(now, cause) })
	if errors.Is(err, errGone) {
		return nil // up and already failed again: nothing to force
	}
	return err
}

// Cookie returns a copy of the latest cookie (SessionConfig.Cookie until a
// PE sent one; nil when there is none).
func (s *Session) Cookie() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return bytes.Clone(s.cookie)
}

// PE returns the PE the session is on, and whether it is connected to it
// now (false while failing over or broken: PE is then the last one).
func (s *Session) PE() (tlv.PoolElement, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return clonePE(s.pe), s.cur != nil
}

// Abort ends the session at once: the association is aborted (ABORT, RFC
// 9260 §9.1; the PE sees transport.ErrAssociationLost) rather than shut
// down, so nothing still queued is sent and Abort never waits for the PE.
// Otherwise it is Close: waiting calls fail with ErrClosed, the PE is not
// reported, and every goroutine has ended when it returns. After Close it
// does nothing.
func (s *Session) Abort() error {
	s.aborting.Store(true)
	return s.Close()
}

// PeerIdentity returns the identity of the PE the session is connected to
// now, as the transport verified it (SCTP over DTLS: its certificate;
// memnet: a test identity), and false while it fails over, when broken or
// closed, or when the association is not authenticated. It follows the
// session from PE to PE. It implements transport.PeerIdentifier.
func (s *Session) PeerIdentity() (transport.Identity, bool) {
	if s.closed.Load() {
		return transport.Identity{}, false
	}
	s.mu.Lock()
	cur := s.cur
	s.mu.Unlock()
	if cur == nil {
		return transport.Identity{}, false
	}
	return transport.PeerIdentityOf(cur.conn)
}

// Stats returns the session's counts; it is safe at any time, also after
// Close.
func (s *Session) Stats() SessionStats {
	s.mu.Lock()
	st := s.stats
	s.mu.Unlock()
	st.EventsDropped = s.dropped.Load()
	return st
}

// Close ends the session: the association is closed gracefully (bounded
// by the transport; the PE sees transport.ErrPeerClosed), waiting calls
// fail with ErrClosed, and every goroutine of the session has ended when
// Close returns. The PE is not reported.
func (s *Session) Close() error {
	s.closeOnce.Do(func() {
		s.closed.Store(true)
		s.cancel()
		<-s.stopped
		s.pu.removeSession(s)
	})
	return nil
}
