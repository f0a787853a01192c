package asap

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"time"

	"github.com/go-rserpool/rserpool/handlespace"
	"github.com/go-rserpool/rserpool/tlv"
)

// ServerStats counts what a [ServerCore] did since it was created.
type ServerStats struct {
	Registrations      uint64 // accepted ASAP_REGISTRATIONs (new and re-registrations)
	RegistrationsRefd  uint64 // registrations answered with R=1
	Deregistrations    uint64 // PEs removed by ASAP_DEREGISTRATION
	Resolutions        uint64 // ASAP_HANDLE_RESOLUTIONs answered (with PEs or an error)
	UnreachableReports uint64 // ASAP_ENDPOINT_UNREACHABLEs about owned PEs, counted
	UnreachableRemoved uint64 // reported PEs removed because they did not answer the check
	KeepAlivesSent     uint64 // ASAP_ENDPOINT_KEEP_ALIVEs sent
	KeepAliveTimeouts  uint64 // PEs removed for a missing keep-alive ack (not after reports)
	Expired            uint64 // PEs removed at the end of their registration life
	AssocLostRemoved   uint64 // PEs removed because their association went down
	ErrorsSent         uint64 // ASAP_ERRORs sent
	Malformed          uint64 // messages that did not parse
	Dropped            uint64 // messages dropped by flood protection or unexpected at a registrar
	Announces          uint64 // ASAP_SERVER_ANNOUNCEs emitted
	PEsLeftOut         uint64 // PEs left out of Handle Resolution Responses to fit 65,535 bytes
	Oversize           uint64 // messages to send that could not be shortened to 65,535 bytes (dropped)

	// Defences against false reports, floods and idle peers (RFC 5355 §3).
	UnreachableRepeated uint64 // reports from an association that had already reported the PE (counted once)
	UnreachableIgnored  uint64 // reports about PEs this registrar does not own (unknown or another home's)
	UnreachableChecks   uint64 // immediate keep-alives asked for by MAX-BAD-PE-REPORT reporters
	UnreachableCleared  uint64 // reported PEs that answered: kept, reports reset
	EURateDropped       uint64 // ASAP_ENDPOINT_UNREACHABLEs over MaxEURate, dropped
	HRRateDropped       uint64 // ASAP_HANDLE_RESOLUTIONs over MaxHRRate, dropped
	DeregistrationsRefd uint64 // deregistrations of PEs of another home registrar, refused
	GraceRefused        uint64 // registrations refused because IDGrace holds the PE identifier or pool
	IdleAborted         uint64 // associations aborted after IdleTimeout without PE or message
	KeepAliveAborted    uint64 // associations aborted when their last PE failed a keep-alive
}

// ServerCore is the sans-IO registrar side of ASAP (RFC 5352 §3.2-3.7):
// it accepts, refuses and removes registrations, answers handle
// resolutions with the pool's policy, supervises the PEs it owns with
// Endpoint Keep Alive, counts Endpoint Unreachable reports once per
// reporting association and checks a reported PE with a keep-alive before
// it removes it, aborts idle associations, and emits periodic Server
// Announces. It works on a [handlespace.Store] it does not own: the ENRP
// server that owns the store also applies ENRP updates to it, and learns
// what ASAP changed from the [PEStored] and [PERemoved] outputs.
//
// It does no I/O and reads no clock. The driver tells it about
// associations (HandleAccepted, HandleLost), feeds it messages (HandleData
// for raw bytes, Handle for parsed ones) and timeouts (HandleTimeout at
// NextDeadline), and carries out the Outbox: [Send], [SendAnnounce],
// [AbortAssoc], and the events [PEStored] and [PERemoved]. Messages in the
// outbox may alias the input and the store: encode them before the next
// call of any method of the core or the store.
//
// Bad input never panics and never changes the store unless it is a valid
// request: malformed messages are answered with ASAP_ERROR when their
// action bits ask for a report (RFC 5354 §2) and dropped otherwise. What
// one association and one source address may register is bounded by the
// resource limits of [ServerConfig] (RFC 5355 §3), and every message the
// core queues fits the 16-bit Message Length: a handle resolution leaves
// out the PEs that would not fit, best-chosen first, and long error
// causes are cut ([ServerStats].PEsLeftOut).
//
// A ServerCore is not safe for concurrent use.
type ServerCore struct {
	cfg   ServerConfig
	log   *slog.Logger
	store *handlespace.Store
	out   []Output

	assocs map[AssocID]*srvAssoc
	pes    map[peKey]*srvPE
	srcs   map[netip.Addr]*srcState // per source address counts (server_limits.go)
	timers peHeap

	announceAt time.Time // next announce; zero until the first call
	selBuf     []tlv.PoolElement
	expired    []peKey
	stats      ServerStats

	clock              time.Time // the now of the last call
	idleHead, idleTail *srvAssoc // associations without PEs, least recently active first
	grace              graceTable
}

type peKey struct {
	handle string
	id     uint32
}

// srvAssoc is one association of a PE or PU.
type srvAssoc struct {
	info   AssocInfo
	pes    map[peKey]struct{} // PEs registered over it
	pools  map[string]int32   // pool handle -> its PEs in pes (server_limits.go)
	tokens float64
	last   time.Time

	id                 AssocID
	eu, hr             bucket             // MaxEURate, MaxHRRate
	grace              map[peKey]struct{} // identifiers held for it
	idleSince          time.Time          // last message, or when its last PE left
	idlePrev, idleNext *srvAssoc
	idleIn             bool
}

// srvPE is the registrar-local state of a PE this registrar owns.
type srvPE struct {
	key     peKey
	assoc   AssocID
	due     time.Time // keep-alive send time, or ack deadline when waiting
	waiting bool      // a keep-alive is outstanding
	idx     int       // position in the timer heap
	src     *srcState // counts of its source address, nil if none

	reporters []AssocID // associations that reported it unreachable since it last proved alive
	check     bool      // the outstanding keep-alive decides on those reports
}

// NewServerCore validates cfg and returns a core that works on store.
func NewServerCore(cfg ServerConfig, store *handlespace.Store) (*ServerCore, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if store == nil {
		return nil, errors.Join(ErrInvalidConfig, errors.New("asap: NewServerCore: nil store"))
	}
	return &ServerCore{
		cfg:    cfg,
		log:    serverLogger(cfg.Logger),
		store:  store,
		assocs: make(map[AssocID]*srvAssoc),
		pes:    make(map[peKey]*srvPE),
	}, nil
}

// ServerID returns the registrar's server identifier.
func (c *ServerCore) ServerID() uint32 { return c.cfg.ServerID }

// Stats returns the counters.
func (c *ServerCore) Stats() ServerStats { return c.stats }

// Associations is the number of associations the core knows.
func (c *ServerCore) Associations() int { return len(c.assocs) }

// Owned is the number of PEs under keep-alive supervision (registered
// over an association of this core).
func (c *ServerCore) Owned() int { return len(c.pes) }

// Outbox returns the outputs queued since the last call and empties the
// queue. The slice is reused by the next call.
func (c *ServerCore) Outbox() []Output {
	out := c.out
	c.out = c.out[:0]
	return out
}

// send queues m for association id. A message that would not fit the
// 16-bit Message Length is shortened first (fit), so that it is never
// dropped for its size by the driver.
func (c *ServerCore) send(id AssocID, m tlv.ASAPMessage) {
	if !fit(m) {
		c.stats.Oversize++
		if c.log.Enabled(context.Background(), slog.LevelDebug) {
			c.log.Debug("asap server: message too large to send", "assoc", id, "type", m.ASAPType(), "len", m.Len())
		}
		return
	}
	c.out = append(c.out, Send{Assoc: id, Msg: m})
}

// HandleAccepted tells the core that a PE or PU opened association id.
// The caller picks unique non-zero ids. A known id is left unchanged.
func (c *ServerCore) HandleAccepted(now time.Time, id AssocID, info AssocInfo) {
	c.start(now)
	if id == 0 || c.assocs[id] != nil {
		return
	}
	a := &srvAssoc{id: id, info: info, tokens: float64(c.cfg.AssocBurst), last: now}
	c.assocs[id] = a
	c.idleTouch(now, a)
}

// HandleLost tells the core that association id is gone: every PE
// registered over it is removed (RFC 5352 §3.7: the registrar treats the
// loss of a PE's association like a failed keep-alive).
func (c *ServerCore) HandleLost(now time.Time, id AssocID) {
	a := c.assocs[id]
	if a == nil {
		return
	}
	c.clock = now
	delete(c.assocs, id)
	c.idleUnlink(a)
	c.graceAssocGone(a)
	for k := range a.pes {
		if c.removeOwned(k, RemovedAssocLost) {
			c.stats.AssocLostRemoved++
		}
	}
}

// start arms the announce timer at the first call.
func (c *ServerCore) start(now time.Time) {
	c.clock = now
	if c.announceAt.IsZero() {
		c.announceAt = now
	}
}

// allow runs the association's token bucket.
func (c *ServerCore) allow(now time.Time, a *srvAssoc) bool {
	if c.cfg.AssocRate == Unlimited {
		return true
	}
	if dt := now.Sub(a.last); dt > 0 {
		a.tokens += dt.Seconds() * c.cfg.AssocRate
		if b := float64(c.cfg.AssocBurst); a.tokens > b {
			a.tokens = b
		}
		a.last = now
	}
	if a.tokens < 1 {
		return false
	}
	a.tokens--
	return true
}

// HandleData parses one ASAP message received on association id (SCTP
// PPID 11) and handles it. A message that does not parse is answered with
// ASAP_ERROR when its error's action asks for a report — Unrecognized
// Message with the message attached, Unrecognized Parameter with the
// parameter, or Invalid Values (RFC 5352 §2.2.14, RFC 5354 §2) — and is
// dropped silently otherwise (action 00). b may be aliased by the outbox.
func (c *ServerCore) HandleData(now time.Time, id AssocID, b []byte) {
	c.start(now)
	a := c.assocs[id]
	if a == nil {
		c.stats.Dropped++
		return
	}
	c.idleTouch(now, a)
	if !c.allow(now, a) {
		c.stats.Dropped++
		return
	}
	m, err := c.cfg.Limits.ParseASAP(b)
	if err != nil {
		c.stats.Malformed++
		var pe *tlv.ParseError
		if errors.As(err, &pe) && pe.Report() {
			oe := pe.OperationError()
			for i := range oe.Causes {
				oe.Causes[i].Info = append([]byte(nil), oe.Causes[i].Info...)
			}
			c.sendError(id, oe)
		}
		if c.log.Enabled(context.Background(), slog.LevelDebug) {
			c.log.Debug("asap server: malformed message", "assoc", id, "err", err)
		}
		return
	}
	c.handle(now, id, a, m)
}

// Handle handles one parsed ASAP message received on association id. Its
// byte slices may be aliased by the outbox.
func (c *ServerCore) Handle(now time.Time, id AssocID, m tlv.ASAPMessage) {
	c.start(now)
	a := c.assocs[id]
	if a == nil || m == nil {
		c.stats.Dropped++
		return
	}
	c.idleTouch(now, a)
	if !c.allow(now, a) {
		c.stats.Dropped++
		return
	}
	c.handle(now, id, a, m)
}

func (c *ServerCore) sendError(id AssocID, oe *tlv.OperationError) {
	c.stats.ErrorsSent++
	c.send(id, &tlv.ASAPError{Error: *oe})
}

func (c *ServerCore) handle(now time.Time, id AssocID, a *srvAssoc, m tlv.ASAPMessage) {
	// Skip-and-report parameters (action 11) are reported, and the
	// message is processed without them (RFC 5354 §2).
	if u := tlv.Unrecognized(m); u != nil {
		c.sendError(id, tlv.UnrecognizedError(u))
	}
	switch m := m.(type) {
	case *tlv.Registration:
		c.onRegistration(now, id, a, m)
	case *tlv.Deregistration:
		c.onDeregistration(id, m)
	case *tlv.HandleResolution:
		if !a.hr.take(now, c.cfg.MaxHRRate) {
			c.stats.HRRateDropped++
			return
		}
		c.onHandleResolution(id, m)
	case *tlv.EndpointKeepAliveAck:
		c.onKeepAliveAck(now, id, m)
	case *tlv.EndpointUnreachable:
		if !a.eu.take(now, c.cfg.MaxEURate) {
			c.stats.EURateDropped++
			return
		}
		c.onUnreachable(now, id, m)
	default:
		// Responses, keep-alives, announces, cookies, business cards and
		// errors are for pool elements and users, not for a registrar:
		// drop them (answering an ASAP_ERROR with one could loop).
		c.stats.Dropped++
		if c.log.Enabled(context.Background(), slog.LevelDebug) {
			c.log.Debug("asap server: unexpected message dropped", "assoc", id, "type", m.ASAPType())
		}
	}
}

// onRegistration runs the registrar side of RFC 5352 §3.2.
func (c *ServerCore) onRegistration(now time.Time, id AssocID, a *srvAssoc, m *tlv.Registration) {
	pe := m.PE // a copy of the struct; its slices alias the message
	resp := &tlv.RegistrationResponse{PoolHandle: m.PoolHandle, PEID: pe.ID}
	reject := func(code tlv.CauseCode, info []byte, why string) {
		resp.Reject = true
		resp.Error = tlv.NewOperationError(code, info)
		c.stats.RegistrationsRefd++
		c.send(id, resp)
		if c.log.Enabled(context.Background(), slog.LevelDebug) {
			c.log.Debug("asap server: registration refused", "assoc", id, "pool", string(m.PoolHandle), "pe", pe.ID, "cause", code, "why", why)
		}
	}
	if pe.RegistrationLife <= 0 {
		reject(tlv.CauseInvalidValues, nil, "registration life not positive")
		return
	}
	if info, why, ok := validatePE(&pe); !ok {
		reject(tlv.CauseInvalidValues, info, why)
		return
	}
	if c.cfg.Authorize != nil {
		if err := c.cfg.Authorize(a.info, m.PoolHandle, &pe); err != nil {
			reject(tlv.CauseRejectedSecurity, nil, err.Error())
			return
		}
	}
	if c.cfg.AddressCheck == AddressCheckAssociation {
		ut, ok := filterUserTransport(pe.UserTransport, a.info.Remote)
		if !ok {
			reject(tlv.CauseInvalidValues, pe.UserTransport.AppendTo(nil), "no user address belongs to the association")
			return
		}
		pe.UserTransport = ut
	}
	key := peKey{string(m.PoolHandle), pe.ID}
	st := c.pes[key]
	if st != nil && st.assoc != id {
		reject(tlv.CauseNonUniquePEIdentifier, nil, "PE identifier registered over another association")
		return
	}
	if st == nil {
		if code, info, why := c.graceRefuses(now, id, a, m.PoolHandle, &pe); code != 0 {
			reject(code, info, why)
			return
		}
	}
	pe.HomeServerID = c.cfg.ServerID
	pe.ASAPTransport = tlv.Transport{}
	if a.info.Remote.AddrPort.IsValid() {
		// RFC 5352 §3.2: the registrar takes the ASAP transport from the
		// association; ENRP carries it to the peers (RFC 5354 §3.x).
		if t, err := TransportParam(a.info.Remote, tlv.TransportUseDataOnly); err == nil {
			pe.ASAPTransport = t
		}
	}
	stripUnknown(&pe)
	if why := c.admit(a, key, st, &pe); why != "" {
		reject(tlv.CauseLackOfResources, nil, why)
		return
	}
	life := time.Duration(pe.RegistrationLife) * time.Millisecond
	created, err := c.store.Register(now, m.PoolHandle, &pe, now.Add(life))
	if err != nil {
		code := tlv.CauseLackOfResources
		var he *handlespace.Error
		if errors.As(err, &he) {
			code = he.Cause
		}
		var info []byte
		switch code {
		case tlv.CauseInconsistentPoolingPolicy:
			info = m.PE.Policy.AppendTo(nil)
		case tlv.CauseInconsistentTransportType:
			info = m.PE.UserTransport.AppendTo(nil)
		}
		reject(code, info, err.Error())
		return
	}
	if st == nil {
		st = &srvPE{key: key, assoc: id, idx: -1}
		c.pes[key] = st
		if a.pes == nil {
			a.pes = make(map[peKey]struct{})
		}
		a.pes[key] = struct{}{}
		c.charge(a, st)
	}
	// A (re-)registration proves the PE alive: restart its keep-alive cycle.
	c.alive(now, st)
	c.graceDone(key)
	c.stats.Registrations++
	c.send(id, resp)
	c.out = append(c.out, PEStored{PoolHandle: tlv.PoolHandle(key.handle), PEID: pe.ID, Created: created})
}

// onDeregistration runs RFC 5352 §3.4: remove the PE and confirm; an
// unknown pool is answered with Unknown Pool Handle, an unknown PE with
// Invalid Values carrying its PE Identifier, and a PE registered over
// another association, or owned by another registrar, with Rejected due
// to security considerations.
func (c *ServerCore) onDeregistration(id AssocID, m *tlv.Deregistration) {
	resp := &tlv.DeregistrationResponse{PoolHandle: m.PoolHandle, PEID: m.PEID}
	key := peKey{string(m.PoolHandle), m.PEID}
	if st := c.pes[key]; st != nil && st.assoc != id {
		resp.Error = tlv.NewOperationError(tlv.CauseRejectedSecurity, nil)
		c.send(id, resp)
		return
	}
	if c.removeOwned(key, RemovedDeregistered) {
		c.stats.Deregistrations++
		c.send(id, resp)
		return
	}
	// Not one of ours: a PE another registrar owns is for its home to
	// remove (RFC 5353 §3.6), not for an association of this one.
	if _, _, ok := c.store.Lookup(m.PoolHandle, m.PEID); ok {
		c.stats.DeregistrationsRefd++
		resp.Error = tlv.NewOperationError(tlv.CauseRejectedSecurity, nil)
		c.send(id, resp)
		return
	}
	if _, _, err := c.store.Select(m.PoolHandle, 0, nil); err != nil {
		resp.Error = tlv.NewOperationError(tlv.CauseUnknownPoolHandle, nil)
	} else {
		resp.Error = tlv.NewOperationError(tlv.CauseInvalidValues, tlv.PEIdentifier(m.PEID).AppendTo(nil))
	}
	c.send(id, resp)
}

// onHandleResolution runs RFC 5352 §3.5 with the HROPT item count.
func (c *ServerCore) onHandleResolution(id AssocID, m *tlv.HandleResolution) {
	c.stats.Resolutions++
	n := c.cfg.ResolutionItems
	if m.HasItems && m.Items != 0 {
		n = c.cfg.MaxResolutionItems
		if uint64(m.Items) < uint64(n) {
			n = int(m.Items)
		}
	}
	resp := &tlv.HandleResolutionResponse{PoolHandle: m.PoolHandle}
	pes, pol, err := c.store.Select(m.PoolHandle, n, c.selBuf)
	c.selBuf = pes[:0]
	if err != nil || len(pes) == 0 {
		resp.Error = tlv.NewOperationError(tlv.CauseUnknownPoolHandle, nil)
		c.send(id, resp)
		return
	}
	resp.Policy = &tlv.Policy{Type: pol.Type, Value: pol.Value}
	// The ASAP transports are cleared (for ENRP only, RFC 5354 §3.10),
	// and PEs that would take the response over 65,535 bytes are left
	// out, so that a pool of large PEs is answered with fewer PEs rather
	// than not at all.
	pes, left := fitResolution(resp, pes)
	if left > 0 {
		c.stats.PEsLeftOut += uint64(left)
		if len(pes) == 0 {
			resp.Policy = nil
			resp.Error = tlv.NewOperationError(tlv.CauseLackOfResources, nil)
			c.send(id, resp)
			return
		}
	}
	resp.PEs = pes
	c.send(id, resp)
}

// onKeepAliveAck ends an outstanding keep-alive (RFC 5352 §3.7): the PE
// is alive, and the unreachable reports about it are void. Acks on
// another association than the PE's are ignored.
func (c *ServerCore) onKeepAliveAck(now time.Time, id AssocID, m *tlv.EndpointKeepAliveAck) {
	st := c.pes[peKey{string(m.PoolHandle), m.PEID}]
	if st == nil || st.assoc != id {
		c.stats.Dropped++
		return
	}
	c.alive(now, st)
}

// removeOwned removes one of our PEs from the store and from supervision,
// and reports it. It returns false when the PE is not ours.
func (c *ServerCore) removeOwned(key peKey, why RemoveReason) bool {
	st := c.pes[key]
	if st == nil {
		return false
	}
	c.forget(st)
	c.store.Deregister(c.clock, tlv.PoolHandle(key.handle), key.id)
	c.out = append(c.out, PERemoved{PoolHandle: tlv.PoolHandle(key.handle), PEID: key.id, Reason: why})
	return true
}

// forget drops the supervision state of a PE. An association left
// without PEs starts its idle clock.
func (c *ServerCore) forget(st *srvPE) {
	delete(c.pes, st.key)
	a := c.assocs[st.assoc]
	if a != nil {
		delete(a.pes, st.key)
		if len(a.pes) == 0 {
			c.idleTouch(c.clock, a)
		}
	}
	c.release(a, st)
	c.timers.remove(st)
}

// NextDeadline returns when HandleTimeout must next run: the earliest of
// a registration expiry, a keep-alive to send or to give up on, the next
// announce, an idle association to abort and a grace entry to drop. It is
// the zero time when nothing is scheduled.
func (c *ServerCore) NextDeadline() time.Time {
	var d time.Time
	earlier := func(t time.Time) {
		if !t.IsZero() && (d.IsZero() || t.Before(d)) {
			d = t
		}
	}
	if t, ok := c.store.NextExpiry(); ok {
		earlier(t)
	}
	if len(c.timers) > 0 {
		earlier(c.timers[0].due)
	}
	if c.cfg.Announce && !c.announceAt.IsZero() {
		earlier(c.announceAt)
	}
	if c.idleHead != nil {
		earlier(c.idleHead.idleSince.Add(c.cfg.IdleTimeout))
	}
	if g := &c.grace; g.head < len(g.q) {
		earlier(g.q[g.head].until)
	}
	return d
}

// HandleTimeout runs what is due at now: registration expiry (RFC 5352
// §3.2), keep-alive sends and timeouts (§3.7; the association of a PE
// that failed one is aborted when it carries no other PE), idle
// associations (IdleTimeout), and the Server Announce (§3.6, T6). A
// driver calls it once when it starts, which sends the first announce.
func (c *ServerCore) HandleTimeout(now time.Time) {
	c.start(now)
	c.expired = c.expired[:0]
	c.store.PopExpired(now, func(h tlv.PoolHandle, pe tlv.PoolElement) {
		c.expired = append(c.expired, peKey{string(h), pe.ID})
	})
	for _, k := range c.expired {
		c.stats.Expired++
		if st := c.pes[k]; st != nil {
			c.forget(st)
		}
		c.out = append(c.out, PERemoved{PoolHandle: tlv.PoolHandle(k.handle), PEID: k.id, Reason: RemovedExpired})
	}
	for len(c.timers) > 0 && !c.timers[0].due.After(now) {
		st := c.timers[0]
		if st.waiting {
			why := RemovedKeepAliveTimeout
			if st.check {
				why = RemovedUnreachable
				c.stats.UnreachableRemoved++
			} else {
				c.stats.KeepAliveTimeouts++
			}
			c.removeForced(now, st, why)
			continue
		}
		c.sendKeepAlive(now, st)
	}
	c.reapIdle(now)
	c.graceExpire(now)
	if c.cfg.Announce && !now.Before(c.announceAt) {
		c.stats.Announces++
		c.out = append(c.out, SendAnnounce{Msg: &tlv.ServerAnnounce{ServerID: c.cfg.ServerID, Transports: c.cfg.AnnounceTransports}})
		c.announceAt = now.Add(c.cfg.AnnounceInterval)
	}
}

// AssocOf returns the association a PE owned by this registrar was
// registered over, for diagnostics and the host's view.
func (c *ServerCore) AssocOf(handle tlv.PoolHandle, id uint32) (AssocID, AssocInfo, bool) {
	st := c.pes[peKey{string(handle), id}]
	if st == nil {
		return 0, AssocInfo{}, false
	}
	var info AssocInfo
	if a := c.assocs[st.assoc]; a != nil {
		info = a.info
	}
	return st.assoc, info, true
}

// peHeap is a binary min-heap of PEs by due time, with positions kept in
// srvPE.idx so that set and remove are O(log n).
type peHeap []*srvPE

func (h *peHeap) set(st *srvPE, due time.Time) {
	st.due = due
	if st.idx < 0 {
		st.idx = len(*h)
		*h = append(*h, st)
		h.up(st.idx)
		return
	}
	if !h.down(st.idx) {
		h.up(st.idx)
	}
}

func (h *peHeap) remove(st *srvPE) {
	i := st.idx
	if i < 0 {
		return
	}
	s := *h
	last := len(s) - 1
	if i != last {
		s[i] = s[last]
		s[i].idx = i
	}
	s[last] = nil
	*h = s[:last]
	st.idx = -1
	if i != last {
		if !h.down(i) {
			h.up(i)
		}
	}
}

func (h peHeap) less(i, j int) bool { return h[i].due.Before(h[j].due) }

func (h peHeap) swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].idx, h[j].idx = i, j
}

func (h peHeap) up(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if !h.less(i, p) {
			return
		}
		h.swap(i, p)
		i = p
	}
}

// down sifts i down and reports whether it moved.
func (h peHeap) down(i int) bool {
	start := i
	n := len(h)
	for {
		l := 2*i + 1
		if l >= n {
			break
		}
		m := l
		if r := l + 1; r < n && h.less(r, l) {
			m = r
		}
		if !h.less(m, i) {
			break
		}
		h.swap(i, m)
		i = m
	}
	return i > start
}
