package asap

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-rserpool/rserpool/tlv"
	"github.com/go-rserpool/rserpool/transport"
)

// MaxCookieLen is the largest cookie one ASAP_COOKIE or ASAP_COOKIE_ECHO
// carries (RFC 5352 §2.2.11-2.2.12): a 65535-byte message (the 16-bit
// Message Length, §2.1) less the message and Cookie parameter headers,
// rounded down to the parameter's 4-byte padding (RFC 5354 §2, §3.13):
// 65524 bytes. asap/cookie's MaxSealedLen is the same number.
const MaxCookieLen = (tlv.MaxMessageLen - tlv.HeaderLen - tlv.ParamHeaderLen) &^ 3

// Defaults of SessionServerConfig.
const (
	// DefaultMaxSessions bounds the sessions a SessionServer has open at
	// once: 1024, this package's choice (each session holds an
	// association and up to RecvQueue messages). RFC 5352 sets no limit.
	DefaultMaxSessions = 1024
	// DefaultFirstMessageWait is how long a SessionServer waits for a new
	// session's first message before handing it to Accept without a
	// cookie echo: 3 s, this package's choice, so that a first message
	// lost twice is still waited for (retransmitted after RTO.Initial,
	// 1 s, and then 2 s; RFC 9260 §6.3.1, §16).
	DefaultFirstMessageWait = 3 * time.Second
	// DefaultPESessionRecvQueue is how many data messages a PESession
	// buffers for Recv before it stops reading its association (and the
	// transport's flow control slows the pool user down): 32, this
	// package's choice. It is smaller than a pool user's
	// DefaultSessionRecvQueue because a server holds up to MaxSessions
	// sessions (1024 × 32 messages at most by default) where a pool user
	// holds one; a request/response protocol has one message in flight.
	DefaultPESessionRecvQueue = 32
	// DefaultCloseTimeout bounds the deregistration SessionServer.Close
	// waits for: 5 s, this package's choice; one round trip to a live
	// registrar is enough, and T3-deregistration (30 s, RFC 5352 §5.1)
	// is too long to hold a host's shutdown.
	DefaultCloseTimeout = 5 * time.Second
)

// Errors of the session server and its sessions, usable with errors.Is.
var (
	// ErrCookieTooLarge: a cookie longer than MaxCookieLen (SendCookie) or
	// than SessionServerConfig.MaxCookieEcho (a pool user's echo, which is
	// ignored).
	ErrCookieTooLarge = errors.New("asap: cookie too large")
	// ErrEmptyCookie: a cookie without bytes.
	ErrEmptyCookie = errors.New("asap: empty cookie")
	// ErrEmptyBusinessCard: a business card that names no pool element
	// (RFC 5352 §2.2.13 lists one or more).
	ErrEmptyBusinessCard = errors.New("asap: business card without pool elements")
	// ErrControlPPID: application data was given PPID 11
	// (transport.PPIDASAP), the session's ASAP control channel (RFC 5352
	// §3.9), on either side: PESession.Send (use SendCookie or
	// SendBusinessCard), Session.Send and Session.Request, and a NetConn's
	// Send.
	ErrControlPPID = errors.New("asap: application data must not use PPID 11 (ASAP)")
	// ErrUnexpectedControl: a pool user sent an ASAP message a session
	// does not take from it (a COOKIE_ECHO after data or a second one, a
	// registrar's message); it is counted and ignored.
	ErrUnexpectedControl = errors.New("asap: unexpected ASAP message on a session")
	// ErrTooManySessions: a pool user's association was refused (aborted)
	// because MaxSessions sessions were open.
	ErrTooManySessions = errors.New("asap: too many sessions")
)

// SessionServerConfig configures a SessionServer. Zero fields take the
// defaults named. A negative value turns a bound or a wait off where the
// field says so (as everywhere in this module), and is ErrInvalidConfig
// where that would have no meaning (RecvQueue, CloseTimeout); the same
// rule holds for SessionConfig on the pool user's side.
type SessionServerConfig struct {
	// PE configures the pool element that registers the server (PoolHandle
	// and Registrars are required). When PE.UserTransport is zero, it is
	// the listener's address with Transport Use "data plus control"
	// (TransportParam(listener.Addr(), tlv.TransportUseDataPlusControl),
	// RFC 5354 §3.4); a UserTransport given here must have that use, as
	// cookies and business cards ride on the users' associations.
	PE PEConfig
	// ListenAddr is where pool users reach the server (required). Give a
	// specific address, or set PE.UserTransport. An unspecified one
	// (0.0.0.0 or ::) listens on every address and is registered as it
	// is; whether pool users can reach it then depends on the registrar:
	// this module's (enrp, with its default AddressCheckAssociation)
	// replaces it with the address the PE registered from, while a
	// registrar that stores it unchanged hands pool users an address they
	// cannot dial.
	ListenAddr transport.Addr
	// MaxSessions bounds the sessions open at once, handed to Accept or
	// not yet; an association beyond it is aborted (the pool user fails
	// over) and counted. Zero means DefaultMaxSessions (1024); negative
	// means no bound (the transport's own association limit remains).
	MaxSessions int
	// FirstMessageWait is how long a new session waits for its first
	// message (an ASAP_COOKIE_ECHO, or data) before Accept gets it
	// anyway. Waiting happens per session, so a silent pool user never
	// delays the others. Zero means DefaultFirstMessageWait (3 s). A
	// pool user that fails over sends its COOKIE_ECHO at once, but a new
	// session without a cookie sends nothing until its host does: in a
	// protocol in which the PE speaks first (a greeting) the host would
	// see such a session only after FirstMessageWait. Set it negative for
	// such protocols: every session is handed to Accept at once, and
	// PESession.WaitCookieEcho waits for the first message (a cookie echo
	// then arrives as soon as the pool user's association is up).
	FirstMessageWait time.Duration
	// RecvQueue is the number of data messages a session buffers for
	// Recv before it stops reading from the pool user, as
	// SessionConfig.RecvQueue on the pool user's side; zero means
	// DefaultPESessionRecvQueue (32). Negative is ErrInvalidConfig.
	RecvQueue int
	// MaxCookieEcho bounds the cookie a pool user may echo; a longer
	// ASAP_COOKIE_ECHO is ignored and counted. Zero or negative (no
	// bound of its own) means MaxCookieLen, what one message carries.
	MaxCookieEcho int
	// CloseTimeout bounds the deregistration Close waits for; zero means
	// DefaultCloseTimeout (5 s). Negative is ErrInvalidConfig; Shutdown
	// takes a context instead, for a host that wants another bound.
	CloseTimeout time.Duration
	// Limits bound the ASAP messages parsed from pool users (tlv
	// defaults when zero).
	Limits tlv.Limits
	// Events, if not nil, receives a PESessionEvent for what happens on
	// sessions beyond their data (business cards, late cookie echoes,
	// ignored control messages, refused associations). Sends never block:
	// an event that finds the channel full is dropped and counted
	// (SessionServerStats.EventsDropped).
	Events chan<- PESessionEvent
}

// PESessionEventKind says what a PESessionEvent reports.
type PESessionEventKind uint8

// Kinds of PESessionEvent.
const (
	// PESessionBusinessCard: the pool user sent an ASAP_BUSINESS_CARD
	// (RFC 5352 §3.11; a PU that is a PE of its own pool, e.g. for
	// callbacks); BusinessCard holds it, and PESession.BusinessCard
	// returns the latest.
	PESessionBusinessCard PESessionEventKind = iota + 1
	// PESessionLateCookieEcho: an ASAP_COOKIE_ECHO arrived after Accept
	// had handed the session over without one (the pool user was slower
	// than FirstMessageWait), before any data; PESession.CookieEcho
	// returns it from now on.
	PESessionLateCookieEcho
	// PESessionControlIgnored: an ASAP message on PPID 11 was malformed
	// (Err is the *tlv.ParseError), too large, or unexpected
	// (ErrUnexpectedControl); it was ignored.
	PESessionControlIgnored
	// PESessionRefused: an association was aborted because MaxSessions
	// sessions were open (Err is ErrTooManySessions); Session is nil.
	PESessionRefused
)

var peSessionEventNames = [...]string{
	PESessionBusinessCard:   "business card",
	PESessionLateCookieEcho: "late cookie echo",
	PESessionControlIgnored: "control message ignored",
	PESessionRefused:        "session refused",
}

// String names the kind.
func (k PESessionEventKind) String() string {
	if int(k) < len(peSessionEventNames) && peSessionEventNames[k] != "" {
		return peSessionEventNames[k]
	}
	return fmt.Sprintf("PESessionEventKind(%d)", uint8(k))
}

// PESessionEvent is sent to SessionServerConfig.Events.
type PESessionEvent struct {
	Kind    PESessionEventKind
	Time    time.Time
	Session *PESession     // nil for PESessionRefused
	Remote  transport.Addr // the pool user's address
	// BusinessCard is the card received (PESessionBusinessCard); the
	// receiver owns it.
	BusinessCard *tlv.BusinessCard
	Err          error
}

// String describes the event in one line.
func (e PESessionEvent) String() string {
	s := e.Kind.String() + " from " + e.Remote.String()
	if e.BusinessCard != nil {
		s += fmt.Sprintf(" (%d PEs)", len(e.BusinessCard.PEs))
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// SessionServerStats counts what a SessionServer did since it started.
type SessionServerStats struct {
	Accepted              uint64 // associations taken as sessions
	Refused               uint64 // associations aborted at MaxSessions
	Silent                uint64 // sessions handed to Accept after FirstMessageWait without a first message
	Vanished              uint64 // sessions that ended before their first message and were never handed over
	CookieEchoesReceived  uint64 // ASAP_COOKIE_ECHOs taken
	BusinessCardsReceived uint64 // ASAP_BUSINESS_CARDs received from pool users
	ControlIgnored        uint64 // ASAP messages on PPID 11 ignored (malformed, too large, unexpected)
	EventsDropped         uint64 // events SessionServerConfig.Events had no room for
	Open                  int    // sessions open now
}

// serverCounters are the SessionServer's counts, shared with its sessions.
type serverCounters struct {
	accepted, refused, silent, vanished, echoes, cards, ignored, dropped atomic.Uint64
}

// sessionOwner is what a PESession tells about itself: the SessionServer,
// or a test.
type sessionOwner interface {
	ready(ps *PESession)                // hand it to Accept
	ended(ps *PESession, vanished bool) // its reader stopped
	emit(ev PESessionEvent)
}

// SessionServer is a pool element that serves sessions (RFC 5352
// §3.9-3.11): it listens for pool users on its user transport, registers
// a PoolElement that advertises that listener with Transport Use "data
// plus control", and hands each pool user's association to Accept as a
// PESession, with the pool user's ASAP_COOKIE_ECHO (if any) taken off
// before the first data message. ASAP control messages share the
// association with the data, on PPID 11 (transport.PPIDASAP). Close
// deregisters, then closes every session. It is safe for concurrent use.
//
//	srv, err := asap.NewSessionServer(asap.SessionServerConfig{
//		PE:         asap.PEConfig{PoolHandle: []byte("kv"), Registrars: regs},
//		ListenAddr: addr,
//	}, tr)
//	defer srv.Close() // deregisters, then stops
//	err = srv.Register(ctx)
//	for {
//		s, err := srv.Accept(ctx)
//		if err != nil { break }
//		go serve(s) // s.CookieEcho(), s.Recv, s.Send, s.SendCookie, s.Close
//	}
type SessionServer struct {
	ln     transport.Listener
	pe     *PoolElement
	handle tlv.PoolHandle
	scfg   sessionConfig
	max    int
	closeT time.Duration
	events chan<- PESessionEvent
	log    *slog.Logger
	ctr    serverCounters

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup // the accept loop and every session's reader
	done   chan struct{}  // closed when Shutdown starts

	mu        sync.Mutex
	sessions  map[*PESession]struct{}
	queue     []*PESession // ready, not yet taken by Accept
	readyCh   chan struct{}
	closed    bool
	acceptErr error // why the listener stopped, if not by Close

	closeOnce sync.Once
	closeErr  error
}

// sessionConfig is what each PESession needs of the server's config.
type sessionConfig struct {
	wait      time.Duration // <0: hand over at once
	queue     int
	maxCookie int
	limits    tlv.Limits
	handle    tlv.PoolHandle
	log       *slog.Logger
}

func (c *SessionServerConfig) sessionConfig() sessionConfig {
	sc := sessionConfig{wait: c.FirstMessageWait, queue: c.RecvQueue, maxCookie: c.MaxCookieEcho,
		limits: c.Limits, handle: slices.Clone(c.PE.PoolHandle), log: c.PE.Logger}
	if sc.wait == 0 {
		sc.wait = DefaultFirstMessageWait
	}
	if sc.queue == 0 {
		sc.queue = DefaultPESessionRecvQueue
	}
	if sc.maxCookie <= 0 || sc.maxCookie > MaxCookieLen {
		sc.maxCookie = MaxCookieLen
	}
	if sc.log == nil {
		sc.log = slog.New(slog.DiscardHandler)
	}
	return sc
}

// NewSessionServer listens at cfg.ListenAddr on tr, creates the pool
// element that advertises the listener (not registered yet: call
// Register), and starts accepting pool users. It fails with
// ErrInvalidConfig for a bad configuration, and with the transport's
// error when it cannot listen.
func NewSessionServer(cfg SessionServerConfig, tr transport.Transport, opts ...Option) (*SessionServer, error) {
	if !cfg.ListenAddr.IsValid() {
		return nil, fmt.Errorf("%w: ListenAddr %v is not a valid address", ErrInvalidConfig, cfg.ListenAddr)
	}
	if cfg.RecvQueue < 0 || cfg.CloseTimeout < 0 {
		return nil, fmt.Errorf("%w: RecvQueue and CloseTimeout must not be negative", ErrInvalidConfig)
	}
	if ut := cfg.PE.UserTransport; ut.Type != 0 && ut.Use != tlv.TransportUseDataPlusControl {
		return nil, fmt.Errorf("%w: PE.UserTransport must have Transport Use data plus control (RFC 5354 §3.4) to carry cookies and business cards", ErrInvalidConfig)
	}
	ln, err := tr.Listen(cfg.ListenAddr)
	if err != nil {
		return nil, fmt.Errorf("asap: session server listen at %v: %w", cfg.ListenAddr, err)
	}
	if cfg.PE.UserTransport.Type == 0 {
		ut, err := TransportParam(ln.Addr(), tlv.TransportUseDataPlusControl)
		if err != nil {
			ln.Close()
			return nil, err
		}
		cfg.PE.UserTransport = ut
	}
	pe, err := NewPoolElement(cfg.PE, tr, opts...)
	if err != nil {
		ln.Close()
		return nil, err
	}
	s := &SessionServer{
		ln: ln, pe: pe, handle: slices.Clone(cfg.PE.PoolHandle), scfg: cfg.sessionConfig(),
		max: cfg.MaxSessions, closeT: cfg.CloseTimeout, events: cfg.Events,
		done: make(chan struct{}), sessions: map[*PESession]struct{}{}, readyCh: make(chan struct{}, 1),
	}
	s.log = s.scfg.log
	if s.max == 0 {
		s.max = DefaultMaxSessions
	}
	if s.closeT == 0 {
		s.closeT = DefaultCloseTimeout
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.wg.Add(1)
	go s.acceptLoop()
	return s, nil
}

// Addr is the address pool users reach the server at (the listener's).
func (s *SessionServer) Addr() transport.Addr { return s.ln.Addr() }

// PoolElement is the server's pool element (its ID, Stats, UpdatePolicy,
// Registered). Do not Close or Deregister it directly: Close does.
func (s *SessionServer) PoolElement() *PoolElement { return s.pe }

// Register registers the server's pool element and waits, as
// PoolElement.Register does. Sessions are accepted before it, too (pool
// users with a cached resolution may come).
func (s *SessionServer) Register(ctx context.Context) error { return s.pe.Register(ctx) }

// Stats returns the server's counts; safe at any time, also after Close.
func (s *SessionServer) Stats() SessionServerStats {
	s.mu.Lock()
	open := len(s.sessions)
	s.mu.Unlock()
	return SessionServerStats{
		Accepted: s.ctr.accepted.Load(), Refused: s.ctr.refused.Load(), Silent: s.ctr.silent.Load(),
		Vanished: s.ctr.vanished.Load(), CookieEchoesReceived: s.ctr.echoes.Load(), BusinessCardsReceived: s.ctr.cards.Load(),
		ControlIgnored: s.ctr.ignored.Load(), EventsDropped: s.ctr.dropped.Load(), Open: open,
	}
}

func (s *SessionServer) acceptLoop() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept(s.ctx)
		if err != nil {
			s.mu.Lock()
			if !s.closed && s.ctx.Err() == nil {
				s.acceptErr = fmt.Errorf("asap: session server stopped accepting: %w", err)
				s.log.Debug("asap: session listener failed", "addr", s.ln.Addr(), "err", err)
			}
			s.mu.Unlock()
			s.signal()
			return
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			c.Abort()
			continue
		}
		if s.max > 0 && len(s.sessions) >= s.max {
			s.mu.Unlock()
			s.ctr.refused.Add(1)
			s.log.Debug("asap: session refused", "remote", c.RemoteAddr(), "max", s.max)
			c.Abort()
			s.emit(PESessionEvent{Kind: PESessionRefused, Time: time.Now(), Remote: c.RemoteAddr(),
				Err: fmt.Errorf("%w: %d open", ErrTooManySessions, s.max)})
			continue
		}
		ps := newPESession(s.ctx, c, s.scfg, s, &s.ctr)
		s.sessions[ps] = struct{}{}
		s.ctr.accepted.Add(1)
		s.wg.Add(1)
		s.mu.Unlock()
		go func() { defer s.wg.Done(); ps.run() }()
	}
}

// signal wakes one Accept.
func (s *SessionServer) signal() {
	select {
	case s.readyCh <- struct{}{}:
	default:
	}
}

func (s *SessionServer) ready(ps *PESession) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.queue = append(s.queue, ps)
	s.mu.Unlock()
	s.signal()
}

func (s *SessionServer) ended(ps *PESession, vanished bool) {
	s.mu.Lock()
	delete(s.sessions, ps)
	s.mu.Unlock()
	if vanished {
		s.ctr.vanished.Add(1)
	}
}

func (s *SessionServer) emit(ev PESessionEvent) { offer(s.events, ev, &s.ctr.dropped) }

// Accept waits for the next session: a pool user's association whose
// first message arrived (an ASAP_COOKIE_ECHO, which PESession.CookieEcho
// then returns, or data), or that stayed silent for FirstMessageWait.
// Sessions are handed over in the order they got there, each on its own:
// a slow pool user never holds up another's. Accept returns ctx's error
// when ctx ends first, ErrClosed after Close, and the listener's error
// (wrapped) when the listener failed. Several goroutines may Accept at
// once. The caller owns the session and must Close it.
func (s *SessionServer) Accept(ctx context.Context) (*PESession, error) {
	for {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return nil, ErrClosed
		}
		if len(s.queue) > 0 {
			ps := s.queue[0]
			s.queue[0] = nil
			s.queue = s.queue[1:]
			more := len(s.queue) > 0
			s.mu.Unlock()
			if more {
				s.signal() // another Accept may be waiting
			}
			return ps, nil
		}
		if err := s.acceptErr; err != nil {
			s.mu.Unlock()
			s.signal()
			return nil, err
		}
		s.mu.Unlock()
		select {
		case <-s.readyCh:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-s.done:
			return nil, ErrClosed
		}
	}
}

// Close is Shutdown bounded by SessionServerConfig.CloseTimeout.
func (s *SessionServer) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), s.closeT)
	defer cancel()
	return s.Shutdown(ctx)
}

// Shutdown stops the server cleanly: it deregisters the pool element (RFC
// 5352 §3.3), waiting until ctx ends at most, so that registrars stop
// handing it out; then it stops accepting, closes every session (handed
// over or not) gracefully, so that their pool users fail over without
// reporting the PE unreachable (ReasonPeerClosed), closes the pool element
// and waits for every goroutine the server started. It returns the deregistration's error (nil when the PE
// was not registered); the server is stopped whatever it returns. Later
// calls return the first call's result.
func (s *SessionServer) Shutdown(ctx context.Context) error {
	s.closeOnce.Do(func() {
		err := s.pe.Deregister(ctx)
		if errors.Is(err, ErrNotRegistered) {
			err = nil
		}
		s.closeErr = err
		s.mu.Lock()
		s.closed = true
		// The open sessions, and those waiting for Accept whose
		// association already ended: nobody else will close them.
		open := slices.Clone(s.queue)
		for ps := range s.sessions {
			if !slices.Contains(open, ps) {
				open = append(open, ps)
			}
		}
		s.queue = nil
		s.mu.Unlock()
		close(s.done)
		s.ln.Close()
		var wg sync.WaitGroup
		for _, ps := range open {
			wg.Go(func() { ps.Close() })
		}
		wg.Wait()
		s.cancel()
		s.pe.Close()
		s.wg.Wait()
	})
	return s.closeErr
}

// PESessionStats counts one session's messages. The names match the pool
// user's SessionStats: <message><direction>, and ControlIgnored.
type PESessionStats struct {
	DataIn                uint64 // data messages Recv returned
	DataOut               uint64 // data messages Send sent
	CookiesSent           uint64 // ASAP_COOKIEs sent
	BusinessCardsSent     uint64 // ASAP_BUSINESS_CARDs sent
	BusinessCardsReceived uint64 // ASAP_BUSINESS_CARDs received
	ControlIgnored        uint64 // ASAP messages from the pool user ignored
}

// PESession is one pool user's association to a SessionServer: the data
// the pool user sends (Recv) and the PE sends (Send), and the ASAP control
// messages of RFC 5352 §3.9-3.11 on PPID 11 beside them. Recv, Send,
// SendCookie and SendBusinessCard may be called concurrently. A session
// has no idle timeout of its own: a pool user that stays silent holds its
// place (of MaxSessions) until the host's Recv gives up, so bound Recv
// with a context deadline and Close the session when it passes.
type PESession struct {
	conn  transport.Conn
	cfg   sessionConfig
	owner sessionOwner
	ctr   *serverCounters
	ctx   context.Context
	stop  context.CancelFunc

	in     chan transport.Message // data, closed when the reader stops
	done   chan struct{}          // closed by Close/Abort
	exited chan struct{}          // closed when the reader stopped
	first  chan struct{}          // closed when the first message decided CookieEcho

	mu       sync.Mutex
	echo     []byte
	decided  bool
	handed   bool
	card     *tlv.BusinessCard
	rerr     error
	timer    *time.Timer
	closeErr error

	dataIn, dataOut, cookiesOut, cardsOut, cardsIn, ignored atomic.Uint64
	closeOnce                                               sync.Once
}

func newPESession(parent context.Context, c transport.Conn, cfg sessionConfig, owner sessionOwner, ctr *serverCounters) *PESession {
	ps := &PESession{
		conn: c, cfg: cfg, owner: owner, ctr: ctr,
		in: make(chan transport.Message, cfg.queue), done: make(chan struct{}),
		exited: make(chan struct{}), first: make(chan struct{}),
	}
	ps.ctx, ps.stop = context.WithCancel(parent)
	return ps
}

// run is the session's reader: it takes control messages off the
// association and queues the data for Recv, until the association ends
// or the session is closed.
func (ps *PESession) run() {
	defer close(ps.exited)
	switch {
	case ps.cfg.wait < 0:
		ps.handover()
	default:
		ps.mu.Lock()
		ps.timer = time.AfterFunc(ps.cfg.wait, ps.waited)
		ps.mu.Unlock()
	}
	var err error
	for {
		var m transport.Message
		m, err = ps.conn.Recv(ps.ctx)
		if err != nil {
			break
		}
		if m.PPID == transport.PPIDASAP {
			ps.control(m)
			continue
		}
		ps.decide()
		ps.handover()
		select {
		case ps.in <- m:
		case <-ps.done:
		}
	}
	ps.mu.Lock()
	if ps.timer != nil {
		ps.timer.Stop()
	}
	ps.rerr = err
	closed := false
	select {
	case <-ps.done:
		closed = true
	default:
	}
	vanished := !ps.handed && !closed && ps.ctx.Err() == nil
	ps.handed = true // never hand it over now
	ps.mu.Unlock()
	close(ps.in)
	if vanished {
		ps.conn.Close() // nobody else will
	}
	ps.decide()
	ps.owner.ended(ps, vanished)
}

// waited runs FirstMessageWait after the session began.
func (ps *PESession) waited() {
	ps.mu.Lock()
	silent := !ps.decided && !ps.handed
	ps.mu.Unlock()
	if silent {
		ps.ctr.silent.Add(1)
	}
	ps.handover()
}

// handover gives the session to Accept, once.
func (ps *PESession) handover() {
	ps.mu.Lock()
	if ps.handed {
		ps.mu.Unlock()
		return
	}
	ps.handed = true
	if ps.timer != nil {
		ps.timer.Stop()
	}
	ps.mu.Unlock()
	ps.owner.ready(ps)
}

// decide marks the first message (or the end) as seen: CookieEcho no
// longer changes.
func (ps *PESession) decide() {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if !ps.decided {
		ps.decided = true
		close(ps.first)
	}
}

func (ps *PESession) ignore(err error) {
	ps.ignored.Add(1)
	ps.ctr.ignored.Add(1)
	ps.cfg.log.Debug("asap: session control message ignored", "remote", ps.conn.RemoteAddr(), "err", err)
	ps.owner.emit(PESessionEvent{Kind: PESessionControlIgnored, Time: time.Now(), Session: ps, Remote: ps.conn.RemoteAddr(), Err: err})
}

// control handles one message on PPID 11 from the pool user.
func (ps *PESession) control(m transport.Message) {
	msg, err := ps.cfg.limits.ParseASAP(m.Data)
	if err != nil {
		ps.ignore(err)
		return
	}
	switch x := msg.(type) {
	case *tlv.CookieEcho:
		switch {
		case len(x.Cookie) == 0:
			ps.ignore(ErrEmptyCookie)
			return
		case len(x.Cookie) > ps.cfg.maxCookie:
			ps.ignore(fmt.Errorf("%w: echo of %d bytes, limit %d", ErrCookieTooLarge, len(x.Cookie), ps.cfg.maxCookie))
			return
		}
		ps.mu.Lock()
		if ps.decided {
			ps.mu.Unlock()
			ps.ignore(fmt.Errorf("%w: ASAP_COOKIE_ECHO after the session's first message (RFC 5352 §3.10: it comes first)", ErrUnexpectedControl))
			return
		}
		ps.echo = slices.Clone(x.Cookie)
		late := ps.handed
		ps.mu.Unlock()
		ps.decide()
		ps.ctr.echoes.Add(1)
		if late {
			ps.owner.emit(PESessionEvent{Kind: PESessionLateCookieEcho, Time: time.Now(), Session: ps, Remote: ps.conn.RemoteAddr()})
		}
		ps.handover()
	case *tlv.BusinessCard:
		card := cloneBusinessCard(x)
		ps.mu.Lock()
		ps.card = card
		ps.mu.Unlock()
		ps.cardsIn.Add(1)
		ps.ctr.cards.Add(1)
		ps.owner.emit(PESessionEvent{Kind: PESessionBusinessCard, Time: time.Now(), Session: ps, Remote: ps.conn.RemoteAddr(), BusinessCard: cloneBusinessCard(card)})
	default:
		ps.ignore(fmt.Errorf("%w: %v from a pool user", ErrUnexpectedControl, msg.ASAPType()))
	}
}

func cloneBusinessCard(c *tlv.BusinessCard) *tlv.BusinessCard {
	out := &tlv.BusinessCard{PoolHandle: slices.Clone(c.PoolHandle)}
	if c.Policy != nil {
		out.Policy = &tlv.Policy{Type: c.Policy.Type, Value: slices.Clone(c.Policy.Value)}
	}
	for _, pe := range c.PEs {
		out.PEs = append(out.PEs, clonePE(pe))
	}
	return out
}

// CookieEcho returns the cookie the pool user echoed (ASAP_COOKIE_ECHO,
// RFC 5352 §3.10) as its first message, or nil when it sent none. When
// Accept handed the session over after its first message (the usual
// case), the answer is final; when it handed it over after
// FirstMessageWait, an echo that still arrives before any data is
// returned from then on (and reported as PESessionLateCookieEcho): use
// WaitCookieEcho to wait for it. Open the cookie with asap/cookie's
// Sealer before trusting it: the pool user can change it.
func (ps *PESession) CookieEcho() []byte {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	return slices.Clone(ps.echo)
}

// WaitCookieEcho waits for the session's first message and returns the
// cookie it echoed, nil when the first message was data or the
// association ended first. It returns ctx's error when ctx ends first.
func (ps *PESession) WaitCookieEcho(ctx context.Context) ([]byte, error) {
	select {
	case <-ps.first:
		return ps.CookieEcho(), nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// BusinessCard returns the latest ASAP_BUSINESS_CARD the pool user sent
// (RFC 5352 §3.11), a copy the caller owns, or nil when it sent none.
func (ps *PESession) BusinessCard() *tlv.BusinessCard {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if ps.card == nil {
		return nil
	}
	return cloneBusinessCard(ps.card)
}

// RemoteAddr is the pool user's address.
func (ps *PESession) RemoteAddr() transport.Addr { return ps.conn.RemoteAddr() }

// PeerIdentity returns the pool user's identity as the transport verified
// it (SCTP over DTLS: its certificate; memnet: a test identity), and false
// when the association is not authenticated. It implements
// transport.PeerIdentifier, so transport.PeerIdentityOf takes a PESession
// too. Use it to authorise the pool user per session, or to bind the state
// a cookie carries to it (seal the name in, and compare it with the
// echoing session's, RFC 5355 §4): a cookie is otherwise valid in any pool
// user's session.
func (ps *PESession) PeerIdentity() (transport.Identity, bool) {
	return transport.PeerIdentityOf(ps.conn)
}

// Stats returns the session's counts.
func (ps *PESession) Stats() PESessionStats {
	return PESessionStats{
		DataIn: ps.dataIn.Load(), DataOut: ps.dataOut.Load(), CookiesSent: ps.cookiesOut.Load(),
		BusinessCardsSent: ps.cardsOut.Load(), BusinessCardsReceived: ps.cardsIn.Load(), ControlIgnored: ps.ignored.Load(),
	}
}

// Recv returns the next data message from the pool user (any PPID but
// 11), in order per stream. After the association ended it returns the
// messages still queued and then the transport's error
// (transport.ErrPeerClosed, transport.ErrAssociationLost). It returns
// ctx's error when ctx ends first, and ErrClosed after Close.
func (ps *PESession) Recv(ctx context.Context) (transport.Message, error) {
	select {
	case <-ps.done:
		return transport.Message{}, ErrClosed
	default:
	}
	select {
	case m, ok := <-ps.in:
		if !ok {
			return transport.Message{}, ps.readErr()
		}
		ps.dataIn.Add(1)
		return m, nil
	case <-ctx.Done():
		return transport.Message{}, ctx.Err()
	case <-ps.done:
		return transport.Message{}, ErrClosed
	}
}

func (ps *PESession) readErr() error {
	ps.mu.Lock()
	err := ps.rerr
	ps.mu.Unlock()
	select {
	case <-ps.done:
		return ErrClosed
	default:
	}
	if ps.ctx.Err() != nil && !errors.Is(err, transport.ErrPeerClosed) && !errors.Is(err, transport.ErrAssociationLost) {
		return ErrClosed // the server closed
	}
	return err
}

// Send sends one data message to the pool user. A message with PPID 11
// is refused with ErrControlPPID; otherwise it fails as
// transport.Conn.Send does, and with ErrClosed after Close.
func (ps *PESession) Send(ctx context.Context, m transport.Message) error {
	if m.PPID == transport.PPIDASAP {
		return ErrControlPPID
	}
	if err := ps.send(ctx, m); err != nil {
		return err
	}
	ps.dataOut.Add(1)
	return nil
}

func (ps *PESession) send(ctx context.Context, m transport.Message) error {
	select {
	case <-ps.done:
		return ErrClosed
	default:
	}
	return ps.conn.Send(ctx, m)
}

func (ps *PESession) sendControl(ctx context.Context, msg tlv.ASAPMessage) error {
	b, err := tlv.Marshal(msg)
	if err != nil {
		return fmt.Errorf("asap: %v: %w", msg.ASAPType(), err)
	}
	return ps.send(ctx, transport.Message{PPID: transport.PPIDASAP, Stream: 0, Data: b})
}

// SendCookie sends cookie to the pool user in an ASAP_COOKIE (RFC 5352
// §3.9), on PPID 11, stream 0; the pool user keeps the latest one and
// echoes it to the PE it fails over to. Seal it first (asap/cookie): the
// pool user can read and change it. Send the cookie before the answer it
// covers, and the answer on stream 0 too (SCTP orders messages per
// stream only): then the pool user holds the new state when the answer
// arrives (Session.Cookie right after Session.Request is current). A PE
// that fails between the two leaves the pool user the new state and the
// request unanswered, which it sends again to the next PE: let the state
// carry the request's sequence number so that it is not applied twice.
// Sent after the answer, the cookie may arrive after the pool user moved
// on, and a crash in between loses the answer's state. It fails with ErrEmptyCookie,
// ErrCookieTooLarge (over MaxCookieLen), ErrClosed, or the transport's
// error.
func (ps *PESession) SendCookie(ctx context.Context, cookie []byte) error {
	switch {
	case len(cookie) == 0:
		return ErrEmptyCookie
	case len(cookie) > MaxCookieLen:
		return fmt.Errorf("%w: %d bytes, at most %d fit in an ASAP_COOKIE", ErrCookieTooLarge, len(cookie), MaxCookieLen)
	}
	if err := ps.sendControl(ctx, &tlv.CookieMessage{Cookie: cookie}); err != nil {
		return err
	}
	ps.cookiesOut.Add(1)
	return nil
}

// SendBusinessCard sends the pool user an ASAP_BUSINESS_CARD (RFC 5352
// §3.11): the pool elements it should fail over to, in order of
// preference, and optionally the pool's policy. A nil card.PoolHandle is
// the server's pool handle. It fails with ErrEmptyBusinessCard when
// card.PEs is empty, with a *tlv.ParseError when the card does not fit in
// one message (tlv.ErrTooLarge) or would not parse at the pool user (a PE
// without a user transport, say), with ErrClosed, or with the
// transport's error.
func (ps *PESession) SendBusinessCard(ctx context.Context, card tlv.BusinessCard) error {
	if len(card.PEs) == 0 {
		return ErrEmptyBusinessCard
	}
	if card.PoolHandle == nil {
		card.PoolHandle = ps.cfg.handle
	}
	b, err := tlv.Marshal(&card)
	if err != nil {
		return fmt.Errorf("asap: %v: %w", tlv.ASAPBusinessCard, err)
	}
	// What the pool user could not parse is not sent: a PE without a
	// user transport, say.
	if _, err := tlv.ParseASAP(b); err != nil {
		return fmt.Errorf("asap: %v is not valid: %w", tlv.ASAPBusinessCard, err)
	}
	if err := ps.send(ctx, transport.Message{PPID: transport.PPIDASAP, Stream: 0, Data: b}); err != nil {
		return err
	}
	ps.cardsOut.Add(1)
	return nil
}

// Close ends the session: it shuts the association down gracefully
// (transport.Conn.Close; a pool user's Session fails over to another PE
// without reporting this one, ReasonPeerClosed) and waits for the
// session's reader to stop.
// Messages not yet taken with Recv are dropped. Later calls return nil.
func (ps *PESession) Close() error { return ps.end(ps.conn.Close) }

// Abort ends the session at once (transport.Conn.Abort: the pool user
// sees the association lost, fails over and reports this PE unreachable,
// RFC 5352 §3.5).
func (ps *PESession) Abort() error { return ps.end(ps.conn.Abort) }

func (ps *PESession) end(f func() error) error {
	first := false
	ps.closeOnce.Do(func() {
		first = true
		close(ps.done)
		ps.stop()
		ps.closeErr = f()
		<-ps.exited
	})
	if !first {
		return nil
	}
	return ps.closeErr
}
