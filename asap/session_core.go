package asap

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/go-rserpool/rserpool/tlv"
	"github.com/go-rserpool/rserpool/transport"
)

// DefaultRequestTimeout is how long Session.Request waits for the answer of
// one attempt before it takes the PE as hung and fails over. It is not an
// RFC value (RFC 5352 §3.5 leaves failure detection to the pool user); it
// matches DefaultDialTimeout.
const DefaultRequestTimeout = 5 * time.Second

// DefaultRequestRetries is how many times Session.Request sends a request
// again on the next PE after a failover cut its attempt short; not an RFC
// value. A request is thus tried on at most three PEs.
const DefaultRequestRetries = 2

// DefaultSessionRecvQueue is how many data messages a session holds for
// Session.Recv before it stops reading from the PE (and the transport's
// flow control slows the PE down): 256, this package's choice, not an RFC
// value. A pool user holds one session per pool, so it can afford a deeper
// queue than a PE's session (DefaultPESessionRecvQueue, 32): a PE that
// pushes a burst of messages (notifications, a streamed answer) between
// two Recv calls is not throttled at once.
const DefaultSessionRecvQueue = 256

// ErrFailover: a session's PE failed while a request was in flight and the
// request was not retried (its retries were used up, or
// SessionConfig.RequestRetries is negative): the old PE may or may not have
// processed it. A *FailoverError matches it.
var ErrFailover = errors.New("asap: session failed over")

// FailoverReason says why a session left its PE.
type FailoverReason uint8

const (
	// ReasonAssociationLost: the association to the PE failed (ABORT,
	// path failure, the transport's error); the PE is reported
	// unreachable.
	ReasonAssociationLost FailoverReason = iota + 1
	// ReasonSendFailed: sending on the association failed; the PE is
	// reported unreachable.
	ReasonSendFailed
	// ReasonRequestTimeout: a request's answer did not come within
	// SessionConfig.RequestTimeout: the PE is taken as hung.
	ReasonRequestTimeout
	// ReasonForced: the host asked for it (Session.Failover, as RSPLIB's
	// rsp_forcefailover).
	ReasonForced
	// ReasonPeerClosed: the PE shut the association down gracefully
	// (SCTP SHUTDOWN, transport.ErrPeerClosed; PESession.Close or
	// SessionServer.Close on the PE side). The PE is alive and ended the
	// session on purpose (it is leaving, or done with the session), so it
	// is not reported unreachable (RFC 5352 §3.5 is for a PE that cannot
	// be reached); the session goes on with the next PE all the same.
	ReasonPeerClosed
	// ReasonResumed: a session that a failover left without a PE
	// (SessionBroken) reached one again, on a new attempt started by
	// Resume, Request, Send or Failover. The FailoverEvent's Cause is the
	// error the session was broken with. Only the attempt that reaches a
	// PE is an event: those that find none fail their callers with the
	// first failover's *FailoverError and emit nothing.
	ReasonResumed
)

var reasonNames = [...]string{
	ReasonAssociationLost: "association lost",
	ReasonSendFailed:      "send failed",
	ReasonRequestTimeout:  "request timeout",
	ReasonForced:          "forced by host",
	ReasonPeerClosed:      "closed by PE",
	ReasonResumed:         "resumed",
}

// String names the reason.
func (r FailoverReason) String() string {
	if int(r) < len(reasonNames) && reasonNames[r] != "" {
		return reasonNames[r]
	}
	return fmt.Sprintf("reason(%d)", uint8(r))
}

// FailoverError is the error of a request cut short by a failover that was
// not retried, and of what waited on a session whose failover found no PE
// (Err then says why). It matches ErrFailover, Cause and Err with errors.Is.
type FailoverError struct {
	Reason FailoverReason
	PE     tlv.PoolElement // the PE the session left
	Cause  error           // what failed on it (nil when forced without a cause)
	Err    error           // nil when a new PE was found; else why none was (a *DialError, ...)
}

// Error implements error.
func (e *FailoverError) Error() string {
	s := fmt.Sprintf("asap: session failed over from PE %v (%v", tlv.PEIdentifier(e.PE.ID), e.Reason)
	if e.Cause != nil {
		s += ": " + e.Cause.Error()
	}
	s += ")"
	if e.Err != nil {
		s += ", no new PE: " + e.Err.Error()
	} else {
		s += " with the request in flight"
	}
	return s
}

// Unwrap returns ErrFailover, Cause and Err.
func (e *FailoverError) Unwrap() []error {
	errs := []error{ErrFailover}
	if e.Cause != nil {
		errs = append(errs, e.Cause)
	}
	if e.Err != nil {
		errs = append(errs, e.Err)
	}
	return errs
}

// SessionState is where a session is.
type SessionState uint8

const (
	// SessionIdle: Start was not called yet.
	SessionIdle SessionState = iota
	// SessionConnecting: selecting or dialling a PE (the first one, or
	// failing over).
	SessionConnecting
	// SessionEstablished: connected to a PE; data flows.
	SessionEstablished
	// SessionBroken: the last connect or failover found no PE; Resume (or
	// a request) starts another.
	SessionBroken
	// SessionClosed: closed.
	SessionClosed
)

var stateNames = [...]string{
	SessionIdle:        "idle",
	SessionConnecting:  "connecting",
	SessionEstablished: "established",
	SessionBroken:      "broken",
	SessionClosed:      "closed",
}

// String names the state.
func (s SessionState) String() string {
	if int(s) < len(stateNames) {
		return stateNames[s]
	}
	return fmt.Sprintf("state(%d)", uint8(s))
}

// SessionStats counts a session's work.
type SessionStats struct {
	// Failovers counts completed failovers (a new PE reached, also after
	// a Resume, ReasonResumed), each also a FailoverEvent; FailoversFailed
	// those that found no PE (once per failover: the later attempts on a
	// broken session that find none are not counted again).
	Failovers       uint64
	FailoversFailed uint64
	// PEsTried counts PEs dialled (the first connect included); Unreachable
	// those reported with ASAP_ENDPOINT_UNREACHABLE (RFC 5352 §3.5).
	PEsTried    uint64
	Unreachable uint64
	// CookiesReceived counts ASAP_COOKIEs received (RFC 5352 §3.9),
	// CookieEchoesSent ASAP_COOKIE_ECHOs sent (§3.10),
	// BusinessCardsReceived ASAP_BUSINESS_CARDs taken (§3.11); the PE
	// side's PESessionStats and SessionServerStats use the same names.
	CookiesReceived       uint64
	CookieEchoesSent      uint64
	BusinessCardsReceived uint64
	// ControlIgnored counts messages on PPID 11 that were malformed,
	// unknown, or not for a pool user (a business card of another pool);
	// Stale counts messages that arrived on an association the session had
	// already given up.
	ControlIgnored uint64
	Stale          uint64
	// Retries counts requests sent again after a failover; RequestsFailed
	// those reported to the caller with an error.
	Retries        uint64
	RequestsFailed uint64
	// EventsDropped counts events a full SessionConfig.Events channel
	// could not take (driver only).
	EventsDropped uint64
}

// SessionOutput is one thing a SessionCore asks its driver to do or tell:
// SessionSelect, SessionDial, SessionSend, SessionAbort, SessionReport,
// SessionDeliver, SessionUp, SessionDown, SessionRequestDone, or an event
// (FailoverEvent, SessionCookieReceived, SessionCardReceived).
type SessionOutput interface{ isSessionOutput() }

// SessionEvent is what a session tells its host (SessionConfig.Events):
// FailoverEvent, SessionCookieReceived or SessionCardReceived.
type SessionEvent interface {
	SessionOutput
	isSessionEvent()
}

// SessionSelect asks the driver to select a PE of the pool, leaving out
// Skip (PEs this failover already tried): from the pool user's cache, else
// by a new handle resolution (RFC 5352 §3.5). The driver answers with
// HandleSelected or HandleSelectFailed.
type SessionSelect struct {
	Skip []uint32
}

// SessionDial asks the driver to open an association to PE, named Assoc
// from then on. The driver answers with HandleConnected or
// HandleConnectFailed for the same Assoc.
type SessionDial struct {
	Assoc AssocID
	PE    tlv.PoolElement
}

// SessionSend asks the driver to send Msg on the association, in order
// with the session's other SessionSends: a COOKIE_ECHO (PPID 11), or a
// request. Host data sent with Session.Send goes beside it once SessionUp
// said the association is ready.
type SessionSend struct {
	Assoc AssocID
	Msg   transport.Message
}

// SessionAbort asks the driver to abort an association the session gave
// up (RFC 9260 §9.1, as RSPLIB's failover does); the core ignores what
// still arrives on it.
type SessionAbort struct {
	Assoc AssocID
}

// SessionReport asks the driver to report the PE unreachable
// (PoolUser.ReportUnreachable, RFC 5352 §3.5).
type SessionReport struct {
	PE uint32
}

// SessionDeliver hands the host a data message for Session.Recv.
type SessionDeliver struct {
	Msg transport.Message
}

// SessionUp: the association is up and its COOKIE_ECHO (if any) queued:
// host data may follow on it.
type SessionUp struct {
	Assoc AssocID
	PE    tlv.PoolElement
}

// SessionDown: connecting (the first connect, or a failover) found no PE;
// Err says why (a *DialError, or the selection's error). What waited for
// the session fails; Resume, Request or Failover start again.
type SessionDown struct {
	Err error
}

// SessionRequestDone ends a request started with SessionCore.Request: Msg
// is its answer, or Err why there is none.
type SessionRequestDone struct {
	Req uint64
	Msg transport.Message
	Err error
}

// FailoverEvent: a session left its PE (RFC 5352 §3.5, §3.10), one event
// per failover. New is the PE it reached, or zero with Err set when none
// was found; a broken session that reaches a PE later is one more event,
// ReasonResumed. Duration runs
// from the failure's detection to the new association being up with the
// COOKIE_ECHO queued (or to giving up). Tried counts the PEs dialled.
type FailoverEvent struct {
	Pool         tlv.PoolHandle
	Old, New     tlv.PoolElement
	Reason       FailoverReason
	Cause        error
	Err          error
	Duration     time.Duration
	Tried        int
	CookieEchoed bool
	// Retried counts requests in flight that are sent again on New.
	Retried int
}

// SessionCookieReceived: the PE sent an ASAP_COOKIE (RFC 5352 §3.9); the
// session now holds its Cookie (a copy) and forgot the previous one.
type SessionCookieReceived struct {
	PE     uint32
	Cookie []byte
}

// SessionCardReceived: the PE sent an ASAP_BUSINESS_CARD (RFC 5352 §3.11):
// PEs (copies, in its order) are the session's next failover candidates.
type SessionCardReceived struct {
	PE  uint32
	PEs []tlv.PoolElement
}

func (SessionSelect) isSessionOutput()         {}
func (SessionDial) isSessionOutput()           {}
func (SessionSend) isSessionOutput()           {}
func (SessionAbort) isSessionOutput()          {}
func (SessionReport) isSessionOutput()         {}
func (SessionDeliver) isSessionOutput()        {}
func (SessionUp) isSessionOutput()             {}
func (SessionDown) isSessionOutput()           {}
func (SessionRequestDone) isSessionOutput()    {}
func (FailoverEvent) isSessionOutput()         {}
func (SessionCookieReceived) isSessionOutput() {}
func (SessionCardReceived) isSessionOutput()   {}
func (FailoverEvent) isSessionEvent()          {}
func (SessionCookieReceived) isSessionEvent()  {}
func (SessionCardReceived) isSessionEvent()    {}

// SessionCoreConfig configures a SessionCore; zero fields take the
// defaults named.
type SessionCoreConfig struct {
	// Cookie, when set, is echoed to the first PE: a session resumed from
	// a cookie kept elsewhere.
	Cookie []byte
	// RequestTimeout, RequestRetries and MaxFailover: see SessionConfig.
	RequestTimeout time.Duration
	RequestRetries int
	MaxFailover    int
	// AnyTransport: the driver can dial every user transport (a
	// SessionConfig.Dial hook); otherwise PEs whose user transport is not
	// SCTP are skipped without a report.
	AnyTransport bool
	Logger       *slog.Logger
}

// sessReq is one request: queued, or the active one.
type sessReq struct {
	id        uint64
	msg       transport.Message
	tries     int
	abandoned bool // the caller gave up: its answer is dropped
}

// SessionCore is the sans-IO pool user side of an ASAP session (RFC 5352
// §3.9-3.11): one association at a time to a PE of one pool, the latest
// cookie, the latest business card, requests with deadlines, and failover.
//
// A failover starts when the association is lost (HandleLost), a send
// fails (HandleSendFailed), a request's deadline passes (HandleTimeout) or
// the host asks (Failover). The core then aborts the association, reports
// the PE unreachable (SessionReport, §3.5; not when the PE shut the
// association down gracefully, ReasonPeerClosed) and tries the next PE: first
// the PEs of the latest business card in their order (§3.11), then the
// pool user's cache and a new resolution (SessionSelect), never one PE
// twice in one failover, up to MaxFailover PEs. On the new association the
// first message is ASAP_COOKIE_ECHO with the latest cookie (§3.10), when
// there is a cookie and the PE's user transport carries control
// (tlv.TransportUseDataPlusControl); then the request in flight, if it has
// retries left.
//
// Messages on PPID 11 (transport.PPIDASAP) are ASAP control: ASAP_COOKIE
// replaces the cookie (only the latest is kept, §3.9), ASAP_BUSINESS_CARD
// of the session's pool replaces the failover candidates; anything else
// is counted and ignored. Every other message is application data: the
// answer of the active request, else delivered (SessionDeliver).
type SessionCore struct {
	log     *slog.Logger
	handle  []byte
	timeout time.Duration
	retries int
	maxFO   int
	anyTr   bool

	out   []SessionOutput
	state SessionState

	nextID  AssocID
	assoc   AssocID         // the association up, or being dialled
	pe      tlv.PoolElement // its PE
	dialing bool

	cookie []byte
	card   []tlv.PoolElement

	// the failover (or first connect) under way
	fo        bool // a failover (not the first connect)
	resuming  bool // a new attempt after a failover found no PE
	down      error
	foOld     tlv.PoolElement
	foReason  FailoverReason
	foCause   error
	foStart   time.Time
	tried     []uint32
	foDialled int
	lastErr   error

	nextReq  uint64
	active   *sessReq
	deadline time.Time
	queue    []*sessReq

	stats SessionStats
}

// NewSessionCore returns an idle session core for the pool handle.
func NewSessionCore(handle []byte, cfg SessionCoreConfig) (*SessionCore, error) {
	if len(handle) == 0 || len(handle) > tlv.DefaultMaxPoolHandle {
		return nil, fmt.Errorf("%w: pool handle of %d bytes", ErrInvalidConfig, len(handle))
	}
	if cfg.MaxFailover < 0 {
		return nil, fmt.Errorf("%w: MaxFailover must not be negative", ErrInvalidConfig)
	}
	if len(cfg.Cookie) > transport.MaxMessageSize-tlv.HeaderLen-8 {
		return nil, fmt.Errorf("%w: cookie of %d bytes does not fit a message", ErrInvalidConfig, len(cfg.Cookie))
	}
	c := &SessionCore{
		log: logger(cfg.Logger), handle: bytes.Clone(handle), timeout: cfg.RequestTimeout,
		retries: cfg.RequestRetries, maxFO: cfg.MaxFailover, anyTr: cfg.AnyTransport,
		cookie: bytes.Clone(cfg.Cookie),
	}
	if c.timeout == 0 {
		c.timeout = DefaultRequestTimeout
	}
	if c.retries == 0 {
		c.retries = DefaultRequestRetries
	}
	if c.retries < 0 {
		c.retries = 0
	}
	if c.maxFO == 0 {
		c.maxFO = DefaultMaxFailover
	}
	return c, nil
}

// Outbox returns the outputs queued since its last call and empties the
// queue; the slice is valid until the next call of any method.
func (c *SessionCore) Outbox() []SessionOutput {
	out := c.out
	c.out = c.out[:0]
	return out
}

// State returns where the session is.
func (c *SessionCore) State() SessionState { return c.state }

// Cookie returns a copy of the latest cookie (nil when none).
func (c *SessionCore) Cookie() []byte { return bytes.Clone(c.cookie) }

// PE returns the PE the session is connected to, and whether it is up.
func (c *SessionCore) PE() (tlv.PoolElement, bool) {
	if c.state != SessionEstablished {
		return tlv.PoolElement{}, false
	}
	return clonePE(c.pe), true
}

// Card returns copies of the latest business card's PEs, in order.
func (c *SessionCore) Card() []tlv.PoolElement {
	l := make([]tlv.PoolElement, 0, len(c.card))
	for _, pe := range c.card {
		l = append(l, clonePE(pe))
	}
	return l
}

// Stats returns the session's counts.
func (c *SessionCore) Stats() SessionStats { return c.stats }

// Start begins the first connect. It does nothing unless the core is idle.
func (c *SessionCore) Start(now time.Time) {
	if c.state != SessionIdle {
		return
	}
	c.begin(now, false, false)
}

// Resume starts a new connect after a failover found no PE (SessionDown);
// it does nothing in another state.
func (c *SessionCore) Resume(now time.Time) {
	if c.state == SessionBroken {
		// A new attempt, some time later: every PE may be tried again,
		// the one that failed included.
		c.resuming = true
		c.begin(now, c.foOld.ID != 0, false)
	}
}

func (c *SessionCore) begin(now time.Time, failover, skipOld bool) {
	c.state = SessionConnecting
	c.fo = failover
	c.foStart = now
	c.tried = c.tried[:0]
	c.foDialled = 0
	c.lastErr = nil
	if skipOld {
		c.tried = append(c.tried, c.foOld.ID)
	}
	c.next(now)
}

// next dials the next candidate: the business card's first untried PE,
// else asks the driver to select one.
func (c *SessionCore) next(now time.Time) {
	if c.foDialled >= c.maxFO {
		c.giveUp(now, ErrNoPoolElement)
		return
	}
	for _, pe := range c.card {
		if slices.Contains(c.tried, pe.ID) {
			continue
		}
		c.tried = append(c.tried, pe.ID)
		if !c.anyTr && !dialable(pe.UserTransport) {
			c.lastErr = fmt.Errorf("asap: PE %v has a %v user transport", tlv.PEIdentifier(pe.ID), pe.UserTransport.Type)
			continue
		}
		c.dial(clonePE(pe))
		return
	}
	c.out = append(c.out, SessionSelect{Skip: slices.Clone(c.tried)})
}

func (c *SessionCore) dial(pe tlv.PoolElement) {
	c.nextID++
	c.assoc, c.pe, c.dialing = c.nextID, pe, true
	c.foDialled++
	c.stats.PEsTried++
	c.out = append(c.out, SessionDial{Assoc: c.assoc, PE: pe})
}

// HandleSelected gives the PE the driver selected for a SessionSelect.
func (c *SessionCore) HandleSelected(now time.Time, pe tlv.PoolElement) {
	if c.state != SessionConnecting || c.dialing {
		return
	}
	if slices.Contains(c.tried, pe.ID) {
		// The selection should have skipped it: take it as the end.
		c.giveUp(now, ErrNoPoolElement)
		return
	}
	c.tried = append(c.tried, pe.ID)
	if !c.anyTr && !dialable(pe.UserTransport) {
		c.lastErr = fmt.Errorf("asap: PE %v has a %v user transport", tlv.PEIdentifier(pe.ID), pe.UserTransport.Type)
		c.next(now)
		return
	}
	c.dial(clonePE(pe))
}

// HandleSelectFailed reports that the selection for a SessionSelect found
// no PE (err: ErrNoPoolElement, ErrUnknownPool, a *NoRegistrarError, ...).
func (c *SessionCore) HandleSelectFailed(now time.Time, err error) {
	if c.state != SessionConnecting || c.dialing {
		return
	}
	c.giveUp(now, err)
}

// giveUp ends the connect or failover without a PE.
func (c *SessionCore) giveUp(now time.Time, err error) {
	if c.foDialled > 0 {
		err = &DialError{Pool: bytes.Clone(c.handle), Tried: c.foDialled, Last: c.lastErr, Err: err}
	} else if c.lastErr != nil {
		err = fmt.Errorf("%w (last failure: %w)", err, c.lastErr)
	}
	c.state = SessionBroken
	c.assoc, c.dialing = 0, false
	if c.fo && !c.resuming {
		c.stats.FailoversFailed++
		c.out = append(c.out, FailoverEvent{
			Pool: bytes.Clone(c.handle), Old: clonePE(c.foOld), Reason: c.foReason, Cause: c.foCause,
			Err: err, Duration: now.Sub(c.foStart), Tried: c.foDialled,
		})
	}
	ferr := err
	if c.fo {
		ferr = &FailoverError{Reason: c.foReason, PE: clonePE(c.foOld), Cause: c.foCause, Err: err}
	}
	c.down = ferr
	c.failRequests(ferr)
	c.out = append(c.out, SessionDown{Err: ferr})
}

// failRequests ends the active and the queued requests with err.
func (c *SessionCore) failRequests(err error) {
	if c.active != nil {
		c.doneReq(c.active, transport.Message{}, err)
		c.active = nil
		c.deadline = time.Time{}
	}
	for _, r := range c.queue {
		c.doneReq(r, transport.Message{}, err)
	}
	c.queue = c.queue[:0]
}

func (c *SessionCore) doneReq(r *sessReq, m transport.Message, err error) {
	if err != nil {
		c.stats.RequestsFailed++
	}
	if !r.abandoned {
		c.out = append(c.out, SessionRequestDone{Req: r.id, Msg: m, Err: err})
	}
}

// HandleConnected reports that the association of a SessionDial is up.
// The core queues COOKIE_ECHO first when it has a cookie and the PE
// carries control (RFC 5352 §3.10), then the request in flight.
func (c *SessionCore) HandleConnected(now time.Time, id AssocID) {
	if c.state != SessionConnecting || !c.dialing || id != c.assoc {
		return
	}
	c.dialing = false
	c.state = SessionEstablished
	echoed := false
	if len(c.cookie) > 0 && c.pe.UserTransport.Use == tlv.TransportUseDataPlusControl {
		b, err := tlv.Marshal(&tlv.CookieEcho{Cookie: c.cookie})
		if err == nil {
			c.out = append(c.out, SessionSend{Assoc: id, Msg: transport.Message{PPID: transport.PPIDASAP, Data: b}})
			c.stats.CookieEchoesSent++
			echoed = true
		}
	}
	c.out = append(c.out, SessionUp{Assoc: id, PE: clonePE(c.pe)})
	retried := 0
	if c.active != nil && c.active.tries > 0 {
		retried = 1
	}
	if c.fo {
		reason, cause := c.foReason, c.foCause
		if c.resuming {
			reason, cause = ReasonResumed, c.down
		}
		c.stats.Failovers++
		c.out = append(c.out, FailoverEvent{
			Pool: bytes.Clone(c.handle), Old: clonePE(c.foOld), New: clonePE(c.pe), Reason: reason,
			Cause: cause, Duration: now.Sub(c.foStart), Tried: c.foDialled, CookieEchoed: echoed, Retried: retried,
		})
	}
	c.foOld = tlv.PoolElement{}
	c.fo, c.resuming, c.down = false, false, nil
	c.sendActive(now)
}

// HandleConnectFailed reports that the dial of a SessionDial failed: the
// PE is reported unreachable and the next one tried.
func (c *SessionCore) HandleConnectFailed(now time.Time, id AssocID, err error) {
	if c.state != SessionConnecting || !c.dialing || id != c.assoc {
		return
	}
	c.dialing = false
	c.lastErr = fmt.Errorf("asap: PE %v: %w", tlv.PEIdentifier(c.pe.ID), err)
	c.report(c.pe.ID)
	c.dropCard(c.pe.ID)
	c.next(now)
}

func (c *SessionCore) report(id uint32) {
	c.stats.Unreachable++
	c.out = append(c.out, SessionReport{PE: id})
}

// dropCard removes a PE found unreachable from the business card.
func (c *SessionCore) dropCard(id uint32) {
	c.card = slices.DeleteFunc(c.card, func(pe tlv.PoolElement) bool { return pe.ID == id })
}

// HandleLost reports that the association failed or was closed by the PE:
// ReasonPeerClosed (no report) when err is transport.ErrPeerClosed, else
// ReasonAssociationLost.
func (c *SessionCore) HandleLost(now time.Time, id AssocID, err error) {
	if c.state == SessionEstablished && id == c.assoc {
		c.failover(now, lostReason(err, ReasonAssociationLost), err)
	}
}

// HandleSendFailed reports that a send on the association failed:
// ReasonPeerClosed (no report) when err is transport.ErrPeerClosed, else
// ReasonSendFailed.
func (c *SessionCore) HandleSendFailed(now time.Time, id AssocID, err error) {
	if c.state == SessionEstablished && id == c.assoc {
		c.failover(now, lostReason(err, ReasonSendFailed), err)
	}
}

// lostReason is ReasonPeerClosed for a graceful shutdown by the PE, else r.
func lostReason(err error, r FailoverReason) FailoverReason {
	if errors.Is(err, transport.ErrPeerClosed) {
		return ReasonPeerClosed
	}
	return r
}

// Failover leaves the PE because the host asks (ReasonForced, cause may be
// nil). While connecting it does nothing; when down it starts a new
// connect, as Resume.
func (c *SessionCore) Failover(now time.Time, cause error) {
	switch c.state {
	case SessionEstablished:
		c.failover(now, ReasonForced, cause)
	case SessionBroken:
		c.Resume(now)
	}
}

// failover gives up the current PE.
func (c *SessionCore) failover(now time.Time, reason FailoverReason, cause error) {
	old := c.pe
	c.log.Debug("session: failover", "pool", tlv.PoolHandle(c.handle), "pe", tlv.PEIdentifier(old.ID), "reason", reason, "err", cause)
	c.out = append(c.out, SessionAbort{Assoc: c.assoc})
	if reason != ReasonPeerClosed {
		c.report(old.ID)
	}
	// Not the PE to prefer next time either way: it failed, or it ended
	// the session.
	c.dropCard(old.ID)
	c.foOld, c.foReason, c.foCause = clonePE(old), reason, cause
	c.resuming, c.down = false, nil
	c.deadline = time.Time{}
	if r := c.active; r != nil {
		if r.abandoned || r.tries > c.retries {
			c.active = nil
			c.doneReq(r, transport.Message{}, &FailoverError{Reason: reason, PE: clonePE(old), Cause: cause})
		} else {
			c.stats.Retries++
		}
	}
	c.begin(now, true, true)
}

// HandleMessage feeds a message received on association id.
func (c *SessionCore) HandleMessage(now time.Time, id AssocID, m transport.Message) {
	if c.state != SessionEstablished || id != c.assoc {
		c.stats.Stale++
		return
	}
	if m.PPID == transport.PPIDASAP {
		c.control(now, m.Data)
		return
	}
	if r := c.active; r != nil {
		c.active, c.deadline = nil, time.Time{}
		c.doneReq(r, m, nil)
		c.sendActive(now)
		return
	}
	c.out = append(c.out, SessionDeliver{Msg: m})
}

// control handles an ASAP message from the PE (RFC 5352 §3.9, §3.11).
func (c *SessionCore) control(now time.Time, b []byte) {
	msg, err := tlv.ParseASAP(b)
	if err != nil {
		c.stats.ControlIgnored++
		c.log.Debug("session: bad ASAP message from PE", "pe", tlv.PEIdentifier(c.pe.ID), "err", err)
		return
	}
	switch m := msg.(type) {
	case *tlv.CookieMessage:
		c.cookie = bytes.Clone(m.Cookie)
		c.stats.CookiesReceived++
		c.out = append(c.out, SessionCookieReceived{PE: c.pe.ID, Cookie: bytes.Clone(m.Cookie)})
	case *tlv.BusinessCard:
		if !bytes.Equal(m.PoolHandle, c.handle) {
			c.stats.ControlIgnored++
			return
		}
		card := make([]tlv.PoolElement, 0, len(m.PEs))
		for _, pe := range m.PEs {
			if pe.ID == 0 || slices.ContainsFunc(card, func(o tlv.PoolElement) bool { return o.ID == pe.ID }) {
				continue
			}
			card = append(card, clonePE(pe))
		}
		c.card = card
		c.stats.BusinessCardsReceived++
		c.out = append(c.out, SessionCardReceived{PE: c.pe.ID, PEs: c.Card()})
	default:
		c.stats.ControlIgnored++
	}
}

// Request queues a request (an application message) and returns its
// number; SessionRequestDone with that number ends it. Requests go one at
// a time: the first data message after a request is its answer. When the
// session is down, Request starts a new connect (Resume).
func (c *SessionCore) Request(now time.Time, m transport.Message) uint64 {
	c.nextReq++
	r := &sessReq{id: c.nextReq, msg: transport.Message{PPID: m.PPID, Stream: m.Stream, Data: bytes.Clone(m.Data)}}
	if c.state == SessionClosed {
		c.doneReq(r, transport.Message{}, ErrClosed)
		return r.id
	}
	c.queue = append(c.queue, r)
	if c.state == SessionBroken {
		c.Resume(now)
	}
	if c.active == nil {
		c.sendActive(now)
	}
	return r.id
}

// CancelRequest forgets a request whose caller stopped waiting. A queued
// one is dropped; the one in flight stays until its answer (dropped) or
// its deadline (a failover without retry).
func (c *SessionCore) CancelRequest(now time.Time, req uint64) {
	if c.active != nil && c.active.id == req {
		c.active.abandoned = true
		return
	}
	c.queue = slices.DeleteFunc(c.queue, func(r *sessReq) bool { return r.id == req })
}

// sendActive sends the active request, or activates the next queued one,
// when the session is up.
func (c *SessionCore) sendActive(now time.Time) {
	if c.state != SessionEstablished {
		return
	}
	if c.active == nil {
		if len(c.queue) == 0 {
			return
		}
		c.active = c.queue[0]
		c.queue = slices.Delete(c.queue, 0, 1)
	}
	c.active.tries++
	c.out = append(c.out, SessionSend{Assoc: c.assoc, Msg: c.active.msg})
	if c.timeout > 0 {
		c.deadline = now.Add(c.timeout)
	}
}

// NextDeadline returns when the request in flight times out, or zero.
func (c *SessionCore) NextDeadline() time.Time { return c.deadline }

// HandleTimeout fails over when the request in flight passed its deadline
// (ReasonRequestTimeout).
func (c *SessionCore) HandleTimeout(now time.Time) {
	if c.state != SessionEstablished || c.deadline.IsZero() || now.Before(c.deadline) {
		return
	}
	c.failover(now, ReasonRequestTimeout, fmt.Errorf("asap: no answer within %v", c.timeout))
}

// Close ends the session: requests still waiting fail with ErrClosed, and
// the core takes nothing more. The driver closes the association.
func (c *SessionCore) Close(now time.Time) {
	if c.state == SessionClosed {
		return
	}
	c.failRequests(ErrClosed)
	c.state = SessionClosed
}
