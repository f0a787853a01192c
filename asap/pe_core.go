package asap

import (
	"bytes"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/go-rserpool/rserpool/policy"
	"github.com/go-rserpool/rserpool/tlv"
	"github.com/go-rserpool/rserpool/transport"
)

// PEConfig configures a pool element. The zero value of every field not
// marked required takes the default named in its comment.
type PEConfig struct {
	// PoolHandle names the pool to join (required, 1..tlv.DefaultMaxPoolHandle bytes).
	PoolHandle []byte
	// UserTransport is where pool users reach this PE (required): usually
	// TransportParam(listener.Addr(), tlv.TransportUseDataOnly). It is the
	// RFC 5354 transport parameter the PE advertises (a tlv.Transport),
	// not the transport.Transport that NewPoolElement dials registrars
	// with.
	UserTransport tlv.Transport
	// Policy is the pool member selection policy (RFC 5356) and
	// PolicyValues its per-PE fields (weight, load, ...). Zero Policy means
	// policy.RoundRobin.
	Policy       policy.Type
	PolicyValues policy.Values
	// RegistrationLife is the Registration Life sent to the registrar, in
	// whole milliseconds (at least 1 ms); default DefaultRegistrationLife.
	// It sets T4-reregistration.
	RegistrationLife time.Duration
	// PEID is the PE Identifier; 0 picks a random non-zero one from Rand
	// (RFC 5352 §3.1). It stays the same for the PE's lifetime.
	PEID uint32
	// Registrars are registrars known by configuration (RFC 5352 §3.6);
	// announced ones are added as ASAP_SERVER_ANNOUNCEs arrive.
	Registrars []transport.Addr
	// Kind is the transport.Kind that SCTP transport parameters from
	// announces map to (see TransportParam). When zero, NewPoolElement
	// takes it from the transport if that is a transport.KindReporter
	// (memnet: KindMem); otherwise it is transport.KindSCTPUDP (the zero
	// Kind).
	Kind transport.Kind
	// EndpointAddr is the local address of the PE's ASAP endpoint
	// (PoolElement only; the core ignores it). When the transport is a
	// transport.EndpointTransport, the PoolElement opens one
	// transport.Endpoint there, dials its registrars from it and accepts
	// the associations registrars open to it (HandleAccepted), as an
	// RSPLIB PE's one SCTP socket does: a registrar that takes the PE
	// over (RFC 5353 §3.9) reaches it at the address it registered from
	// with an Endpoint Keep Alive with the H flag (RFC 5352 §3.7), and
	// the PE adopts it as its home. When zero it is the unspecified
	// address of the first configured registrar's IP family (IPv4 when
	// none is configured), port 0 (a free port), of Kind. Registrars of
	// another Kind or IP family are dialled with Transport.Dial.
	EndpointAddr transport.Addr
	// MaxAccepted bounds the associations registrars opened to the
	// PE's endpoint that are open at once and are not its home
	// (PoolElement only): one more closes the oldest. If zero,
	// DefaultMaxAccepted; negative turns the endpoint off: the PE dials
	// every registrar with Transport.Dial, from an address of the
	// transport's choosing, and accepts nothing, so a registrar taking
	// it over cannot reach it. Without a transport.EndpointTransport
	// there is no endpoint either.
	MaxAccepted int
	// Timers overrides RFC 5352 §5 timers.
	Timers Timers
	// HuntParallel is how many registrars one server-hunt round dials at
	// once; default DefaultHuntParallel.
	HuntParallel int
	// MaxServerHunts is MAX-NUMBER-SERVER-HUNT: after this many failed
	// server hunts (passes over the whole registrar table) a registration
	// waiting for a registrar fails with a *NoRegistrarError
	// (PoolElement.Register returns it); the PE goes on hunting with
	// back-off and registers when a registrar answers. Default
	// DefaultMaxServerHunts.
	MaxServerHunts int
	// Events, if not nil, receives a PEEvent for every change of the
	// registration (PoolElement only; the core ignores it). Sends never
	// block the PE: an event that finds the channel full is dropped and
	// counted (PoolElement.EventsDropped), so give it a buffer.
	Events chan<- PEEvent
	// AuthorizeRegistrar, if set, decides whether the peer of an
	// association with a registrar may act as one (RFC 5355 §2.6,
	// registration with a malicious registrar). It is asked about every
	// association the server hunt dials and every association a
	// registrar opens to the PE's endpoint (a takeover's Endpoint Keep
	// Alive, RFC 5352 §3.7), before any ASAP message is sent or taken on
	// it. A refusal aborts the association, counts it
	// (PEStats.RegistrarsRefused) and sends a PEEventRegistrarRefused; a
	// refused dial is a failed dial of the hunt, so a *NoRegistrarError
	// names it (Last, a *RegistrarRefusedError matching
	// ErrRegistrarRefused), and a refused takeover does not change the
	// home. RegistrarNames gives one for the common case. Over DTLS the
	// transport's roots only say the peer holds a certificate of the
	// pool's CA, which every PE holds too; this says it is a registrar.
	// If nil (the default: RFC 5352 has no such check), every registrar
	// is used. (Driver setting; the core ignores it.)
	AuthorizeRegistrar RegistrarAuthorizer
	// Rand is the source of PE IDs and server-hunt order; nil means a
	// randomly seeded one. Tests pass a seeded source.
	Rand rand.Source
	// Logger receives debug logs; nil logs nothing.
	Logger *slog.Logger
}

// PoolElementCore is the sans-IO pool element role of RFC 5352: it
// registers (§3.1), re-registers (§3.1, T4), deregisters (§3.3), answers
// Endpoint Keep Alive (§3.7), follows a new home registrar (§3.7) and hunts
// for registrars (§3.6). It does no I/O: feed it messages and timeouts
// with an explicit now, and take what it wants done from Outbox.
type PoolElementCore struct {
	log    *slog.Logger
	handle []byte
	id     uint32
	life   time.Duration
	t      Timers
	user   tlv.Transport
	ptype  policy.Type
	values policy.Values
	h      hunter
	out    []Output
	rng    *rand.Rand
	hunts  int // MaxServerHunts

	want       bool      // the host wants to be registered
	registered bool      // the last registration was accepted
	attempts   int       // registrations sent to the current home without answer
	regDue     time.Time // T2 expiry; zero when no registration is outstanding
	reregAt    time.Time // T4 expiry; zero when not registered
	dirty      bool      // values changed while a registration was outstanding
	retryAt    time.Time // registration retry after a transient refusal; zero when none
	refusals   int       // transient refusals in a row, for the back-off
	noRegAt    int       // failed hunts at which a waiting registration fails next

	deregistering bool
	deregAttempts int
	deregDue      time.Time // T3 expiry
}

// NewPoolElementCore validates cfg and returns a core in the unregistered
// state.
func NewPoolElementCore(cfg PEConfig) (*PoolElementCore, error) {
	if len(cfg.PoolHandle) == 0 || len(cfg.PoolHandle) > tlv.DefaultMaxPoolHandle {
		return nil, fmt.Errorf("%w: PoolHandle must hold 1..%d bytes", ErrInvalidConfig, tlv.DefaultMaxPoolHandle)
	}
	if cfg.UserTransport.Type == 0 || len(cfg.UserTransport.Addrs) == 0 {
		return nil, fmt.Errorf("%w: UserTransport needs a transport type and an address", ErrInvalidConfig)
	}
	if cfg.Policy == 0 {
		cfg.Policy = policy.RoundRobin
	}
	if !cfg.Policy.Known() {
		return nil, fmt.Errorf("%w: unknown Policy %v", ErrInvalidConfig, cfg.Policy)
	}
	// The wire field counts milliseconds (RFC 5354 §3.10): a life under
	// 1 ms would go out as 0.
	if cfg.RegistrationLife < 0 || (cfg.RegistrationLife > 0 && cfg.RegistrationLife < time.Millisecond) ||
		cfg.RegistrationLife > time.Duration(1<<31-1)*time.Millisecond {
		return nil, fmt.Errorf("%w: RegistrationLife %v out of range (0 or 1 ms..2^31-1 ms)", ErrInvalidConfig, cfg.RegistrationLife)
	}
	if cfg.RegistrationLife == 0 {
		cfg.RegistrationLife = DefaultRegistrationLife
	}
	if cfg.HuntParallel < 0 || cfg.MaxServerHunts < 0 {
		return nil, fmt.Errorf("%w: HuntParallel and MaxServerHunts must not be negative", ErrInvalidConfig)
	}
	if cfg.MaxServerHunts == 0 {
		cfg.MaxServerHunts = DefaultMaxServerHunts
	}
	if cfg.HuntParallel == 0 {
		cfg.HuntParallel = DefaultHuntParallel
	}
	t, err := cfg.Timers.withDefaults()
	if err != nil {
		return nil, err
	}
	t.T4Reregistration = reregistrationInterval(t.T4Reregistration, cfg.RegistrationLife)
	src := cfg.Rand
	if src == nil {
		src = rand.NewPCG(rand.Uint64(), rand.Uint64())
	}
	rng := rand.New(src)
	id := cfg.PEID
	for id == 0 {
		id = rng.Uint32()
	}
	c := &PoolElementCore{
		log:    logger(cfg.Logger),
		handle: bytes.Clone(cfg.PoolHandle),
		id:     id,
		life:   cfg.RegistrationLife,
		t:      t,
		user:   cfg.UserTransport,
		ptype:  cfg.Policy,
		values: cfg.Policy.Mask(cfg.PolicyValues),
		rng:    rng,
		hunts:  cfg.MaxServerHunts,
	}
	c.h = newHunter(&c.out, c.log, rng, cfg.Kind, cfg.Registrars, t, cfg.HuntParallel)
	return c, nil
}

// ID returns the PE Identifier.
func (c *PoolElementCore) ID() uint32 { return c.id }

// Registered reports whether the last registration was accepted and no
// deregistration started since.
func (c *PoolElementCore) Registered() bool { return c.registered }

// Home returns the home association and the home registrar's server ID (0
// while unknown); the association is 0 when there is no home.
func (c *PoolElementCore) Home() (AssocID, uint32) { return c.h.home, c.h.homeSID }

// Outbox returns the outputs queued since its last call and empties the
// queue. The returned slice, and the messages in it, are valid until the
// next call of any method of the core, which reuses the slice: carry out
// the outputs (encode the messages) before calling the core again.
func (c *PoolElementCore) Outbox() []Output {
	out := c.out
	c.out = c.out[:0]
	return out
}

// Register starts registration (RFC 5352 §3.1): at once on the home
// association, or after a server hunt when there is none. While a
// registration is outstanding, a retry after a transient refusal is
// pending or a hunt runs, it changes nothing: the next Registered or
// RegistrationFailed answers it too (calling Register again does not
// undo a back-off).
func (c *PoolElementCore) Register(now time.Time) {
	c.want = true
	c.deregistering, c.deregDue = false, time.Time{}
	if !c.regDue.IsZero() || !c.retryAt.IsZero() || c.h.hunting {
		return // a registration is already under way
	}
	c.attempts = 0
	c.sendRegistration(now)
}

// UpdatePolicy changes the policy values (e.g. the load of a Least Used
// pool); a registered PE re-registers at once with them (RFC 5352 §3.1).
func (c *PoolElementCore) UpdatePolicy(now time.Time, v policy.Values) {
	v = c.ptype.Mask(v)
	if v == c.values {
		return
	}
	c.values = v
	if !c.want {
		return
	}
	if !c.regDue.IsZero() {
		c.dirty = true
		return
	}
	if !c.retryAt.IsZero() || c.h.hunting {
		return // the next registration carries the new values
	}
	c.attempts = 0
	c.sendRegistration(now)
}

// Deregister starts deregistration (RFC 5352 §3.3). It returns
// ErrNotRegistered when there is nothing to deregister; the end is told by
// a Deregistered output.
func (c *PoolElementCore) Deregister(now time.Time) error {
	wasActive := c.registered || !c.regDue.IsZero()
	c.want, c.registered = false, false
	c.regDue, c.reregAt, c.dirty = time.Time{}, time.Time{}, false
	c.retryAt, c.refusals = time.Time{}, 0
	if !c.h.hasHome() && c.h.hunting {
		c.h.stopHunt() // nothing waits for a registrar any more
	}
	if !wasActive {
		return ErrNotRegistered
	}
	if !c.h.hasHome() {
		c.out = append(c.out, Deregistered{Err: ErrNoRegistrar})
		return nil
	}
	c.deregistering, c.deregAttempts = true, 0
	c.sendDeregistration(now)
	return nil
}

func (c *PoolElementCore) registration() *tlv.Registration {
	return &tlv.Registration{
		PoolHandle: c.handle,
		PE: tlv.PoolElement{
			ID:               c.id,
			HomeServerID:     c.h.homeSID,
			RegistrationLife: int32(c.life / time.Millisecond),
			UserTransport:    c.user,
			Policy:           policy.Encode(c.ptype, c.values),
		},
	}
}

// sendRegistration sends ASAP_REGISTRATION to the home and arms T2, or
// starts a server hunt when there is no home.
func (c *PoolElementCore) sendRegistration(now time.Time) {
	c.retryAt = time.Time{}
	if !c.h.hasHome() {
		c.regDue = time.Time{}
		c.hunt(now)
		return
	}
	c.attempts++
	c.dirty = false
	c.regDue = now.Add(c.t.T2Registration)
	c.log.Debug("pe: registration", "pe", tlv.PEIdentifier(c.id), "attempt", c.attempts, "assoc", c.h.home)
	c.out = append(c.out, Send{Assoc: c.h.home, Msg: c.registration()})
}

func (c *PoolElementCore) sendDeregistration(now time.Time) {
	c.deregAttempts++
	c.deregDue = now.Add(c.t.T3Deregistration)
	c.out = append(c.out, Send{Assoc: c.h.home, Msg: &tlv.Deregistration{PoolHandle: c.handle, PEID: c.id}})
}

// hunt starts a server hunt for the registration, unless one runs; a
// registration waiting for it fails after MaxServerHunts failed hunts.
func (c *PoolElementCore) hunt(now time.Time) {
	if c.h.hunting {
		return
	}
	c.h.startHunt(now)
	c.noRegAt = c.hunts
}

// HandleAnnounce feeds an ASAP_SERVER_ANNOUNCE received from the announce
// channel at src (RFC 5352 §3.6). A registrar new to the table is dialled
// at once when a hunt waits for its next round.
func (c *PoolElementCore) HandleAnnounce(now time.Time, src transport.Addr, m *tlv.ServerAnnounce) {
	c.h.handleAnnounce(now, src, m)
}

// HandleConnected reports that the association the core asked for with
// Connect is up.
func (c *PoolElementCore) HandleConnected(now time.Time, id AssocID) {
	if !c.h.connected(now, id) {
		return
	}
	c.attempts = 0
	if c.want {
		c.sendRegistration(now)
	}
}

// HandleConnectFailed reports that a Connect failed, and why (err may be
// nil); the last error goes into a NoRegistrarError.
func (c *PoolElementCore) HandleConnectFailed(now time.Time, id AssocID, err error) {
	c.h.connectFailed(now, id, err)
}

// HandleAccepted registers an association a registrar opened to the PE
// (for Endpoint Keep Alive after a takeover, RFC 5352 §3.7) and returns its
// ID for Handle and HandleLost.
func (c *PoolElementCore) HandleAccepted(now time.Time, from transport.Addr) AssocID {
	return c.h.accepted(from)
}

// HandleLost reports that an association went down. Losing the home ends
// the registration (a RegistrationLost output when the PE was registered:
// the registrar drops the PEs of a lost association) and starts a server
// hunt when the PE wants to be registered (RFC 5352 §3.6); the PE
// registers with the registrar the hunt finds, at once. The hunt's first
// round dials at once when the lost home had answered the PE.
func (c *PoolElementCore) HandleLost(now time.Time, id AssocID) {
	if !c.h.lost(now, id) {
		return
	}
	c.log.Debug("pe: home association lost", "pe", tlv.PEIdentifier(c.id), "assoc", id)
	if c.deregistering {
		c.deregistering, c.deregDue = false, time.Time{}
		c.out = append(c.out, Deregistered{Err: ErrNoRegistrar})
	}
	c.lose(ErrHomeLost)
	if c.want {
		c.regDue, c.retryAt = time.Time{}, time.Time{}
		c.attempts = 0
		c.hunt(now)
	}
}

// lose ends the registered state, telling the host once.
func (c *PoolElementCore) lose(err error) {
	if !c.registered {
		return
	}
	c.registered, c.reregAt = false, time.Time{}
	c.out = append(c.out, RegistrationLost{Err: err})
}

// Handle processes one ASAP message received on association from.
func (c *PoolElementCore) Handle(now time.Time, from AssocID, msg tlv.ASAPMessage) {
	if !c.h.known(from) {
		return
	}
	switch m := msg.(type) {
	case *tlv.RegistrationResponse:
		c.onRegistrationResponse(now, from, m)
	case *tlv.DeregistrationResponse:
		c.onDeregistrationResponse(now, from, m)
	case *tlv.EndpointKeepAlive:
		c.onKeepAlive(now, from, m)
	case *tlv.ServerAnnounce:
		c.h.announce(now, transport.Addr{}, m)
	case *tlv.ASAPError:
		c.onError(now, from, m)
	default:
		c.log.Debug("pe: ignoring message", "type", msg.ASAPType(), "assoc", from)
	}
}

func (c *PoolElementCore) mine(h tlv.PoolHandle, id uint32) bool {
	return bytes.Equal(h, c.handle) && id == c.id
}

// onRegistrationResponse: RFC 5352 §3.1 (PE side of §3.2).
func (c *PoolElementCore) onRegistrationResponse(now time.Time, from AssocID, m *tlv.RegistrationResponse) {
	if from != c.h.home || c.regDue.IsZero() || !c.mine(m.PoolHandle, m.PEID) {
		return
	}
	c.regDue, c.attempts = time.Time{}, 0
	c.h.success() // the home answers: a later hunt starts at once
	if m.Reject {
		c.refused(now, newRejectError(tlv.ASAPRegistration, m.Error))
		return
	}
	renewal := c.registered
	c.registered, c.refusals = true, 0
	c.reregAt = now.Add(c.t.T4Reregistration)
	c.out = append(c.out, Registered{PEID: c.id, ServerID: c.h.homeSID, Renewal: renewal})
	if c.dirty {
		c.sendRegistration(now)
	}
}

// refused handles a refused registration (RFC 5352 §3.1). The PE is not
// registered any more: the registrar did not take this registration.
// After a transient refusal (RejectError.Transient) it sends the
// registration again after an exponential, jittered back-off from
// Timers.RefusedRetry to Timers.RefusedRetryMax; after a final one it
// stops trying.
func (c *PoolElementCore) refused(now time.Time, err *RejectError) {
	c.registered, c.reregAt = false, time.Time{}
	if !err.Transient() {
		c.log.Debug("pe: registration refused for good", "pe", tlv.PEIdentifier(c.id), "err", err)
		c.want, c.dirty, c.refusals = false, false, 0
		c.out = append(c.out, RegistrationFailed{Err: err})
		return
	}
	c.refusals++
	c.retryAt = now.Add(backoff(c.rng, c.t.RefusedRetry, c.t.RefusedRetryMax, c.refusals))
	c.log.Debug("pe: registration refused, retrying", "pe", tlv.PEIdentifier(c.id), "err", err, "in", c.retryAt.Sub(now))
	c.out = append(c.out, RegistrationFailed{Err: err, Retry: c.retryAt})
}

// onDeregistrationResponse: RFC 5352 §3.3.
func (c *PoolElementCore) onDeregistrationResponse(now time.Time, from AssocID, m *tlv.DeregistrationResponse) {
	if from != c.h.home || !c.deregistering || !c.mine(m.PoolHandle, m.PEID) {
		return
	}
	c.deregistering, c.deregDue = false, time.Time{}
	var err error
	if m.Error != nil && len(m.Error.Causes) > 0 {
		err = newRejectError(tlv.ASAPDeregistration, m.Error)
	}
	c.out = append(c.out, Deregistered{Err: err})
}

// onKeepAlive answers ASAP_ENDPOINT_KEEP_ALIVE with an ACK (RFC 5352
// §3.7) and follows a registrar that claims to be home: the H flag, or a
// keep-alive from another registrar than the home (takeover).
func (c *PoolElementCore) onKeepAlive(now time.Time, from AssocID, m *tlv.EndpointKeepAlive) {
	if !bytes.Equal(m.PoolHandle, c.handle) || (m.HasPEID && m.PEID != c.id) {
		return
	}
	switch {
	case from != c.h.home:
		// Another registrar supervises us: it is our home now (takeover,
		// RFC 5353 §3.9). Outstanding requests move to it.
		c.log.Debug("pe: new home registrar", "pe", tlv.PEIdentifier(c.id), "server", tlv.ServerID(m.ServerID), "assoc", from)
		c.h.adopt(from, m.ServerID)
		if !c.regDue.IsZero() || (c.want && !c.registered && c.retryAt.IsZero()) {
			// An outstanding registration moves; one that waited for a
			// hunt goes out now.
			c.attempts = 0
			c.sendRegistration(now)
		}
		if c.deregistering {
			c.deregAttempts = 0
			c.sendDeregistration(now)
		}
	case c.h.homeSID != m.ServerID:
		known := c.h.homeSID != 0
		c.h.homeSID = m.ServerID
		if known || m.Home {
			c.out = append(c.out, HomeChanged{Assoc: from, ServerID: m.ServerID})
		}
	}
	c.out = append(c.out, Send{Assoc: from, Msg: &tlv.EndpointKeepAliveAck{PoolHandle: c.handle, PEID: c.id}})
}

// onError: an ASAP_ERROR from the home while a registration is outstanding
// means the registrar could not take it (RFC 5352 §2.2.14), and is a
// refusal like a rejecting response (transient or final by its causes).
// An ASAP_ERROR that only reports parameters the registrar skipped
// (Unrecognized Parameter for a type whose action bits are 11, "skip and
// report", RFC 5354 §2) is not a refusal: the registrar went on with the
// message, and its response, or T2, follows.
func (c *PoolElementCore) onError(now time.Time, from AssocID, m *tlv.ASAPError) {
	c.log.Debug("pe: ASAP_ERROR from registrar", "assoc", from, "causes", len(m.Error.Causes))
	if from != c.h.home {
		return
	}
	if onlySkipped(&m.Error) {
		return
	}
	if !c.regDue.IsZero() {
		c.regDue, c.attempts = time.Time{}, 0
		c.refused(now, newRejectError(tlv.ASAPRegistration, &m.Error))
		return
	}
	if c.deregistering {
		c.deregistering, c.deregDue = false, time.Time{}
		c.out = append(c.out, Deregistered{Err: newRejectError(tlv.ASAPDeregistration, &m.Error)})
	}
}

// onlySkipped reports whether every cause is Unrecognized Parameter about a
// parameter whose type says "skip and report" (RFC 5354 §2).
func onlySkipped(oe *tlv.OperationError) bool {
	if len(oe.Causes) == 0 {
		return false
	}
	for _, cs := range oe.Causes {
		if cs.Code != tlv.CauseUnrecognizedParameter || len(cs.Info) < 2 || tlv.Action(cs.Info[0]>>6) != tlv.ActionSkipReport {
			return false
		}
	}
	return true
}

// NextDeadline returns when HandleTimeout must next run, or the zero time.
func (c *PoolElementCore) NextDeadline() time.Time {
	d := c.h.nextDeadline()
	d = earliest(d, c.retryAt)
	d = earliest(d, c.regDue)
	d = earliest(d, c.reregAt)
	d = earliest(d, c.deregDue)
	return d
}

// HandleTimeout runs the timers due at now: T2 (retry, then server hunt
// after MAX-REG-ATTEMPT), the retry after a transient refusal, T4
// (re-registration), T3 (deregistration retry) and T5 (server-hunt
// round; a RegistrationFailed with a *NoRegistrarError after each
// MaxServerHunts failed hunts).
func (c *PoolElementCore) HandleTimeout(now time.Time) {
	c.h.timeout(now)
	if c.want && c.h.hunting && c.h.failed >= c.noRegAt {
		err := c.h.noRegistrar()
		c.noRegAt = c.h.failed + c.hunts
		c.log.Debug("pe: no registrar reachable, still hunting", "pe", tlv.PEIdentifier(c.id), "err", err)
		c.out = append(c.out, RegistrationFailed{Err: err, Retry: c.h.deadline})
	}
	if !c.retryAt.IsZero() && !now.Before(c.retryAt) {
		c.retryAt = time.Time{}
		if c.want && c.regDue.IsZero() {
			c.attempts = 0
			c.sendRegistration(now)
		}
	}
	if !c.regDue.IsZero() && !now.Before(c.regDue) {
		c.regDue = time.Time{}
		if c.attempts < c.t.MaxRegAttempt {
			c.sendRegistration(now)
		} else {
			c.log.Debug("pe: MAX-REG-ATTEMPT reached, server hunt", "pe", tlv.PEIdentifier(c.id), "attempts", c.attempts)
			c.attempts = 0
			c.lose(ErrTimeout) // the home is closed: it drops our registration
			c.hunt(now)
		}
	}
	if !c.reregAt.IsZero() && !now.Before(c.reregAt) {
		c.reregAt = now.Add(c.t.T4Reregistration)
		if c.regDue.IsZero() {
			c.attempts = 0
			c.sendRegistration(now)
		}
	}
	if c.deregistering && !now.Before(c.deregDue) {
		if c.deregAttempts < c.t.MaxRegAttempt && c.h.hasHome() {
			c.sendDeregistration(now)
		} else {
			c.deregistering, c.deregDue = false, time.Time{}
			c.out = append(c.out, Deregistered{Err: ErrTimeout})
		}
	}
}

func logger(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.New(slog.DiscardHandler)
	}
	return l
}
