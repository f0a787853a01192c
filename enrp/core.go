package enrp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"time"

	"github.com/go-rserpool/rserpool/handlespace"
	"github.com/go-rserpool/rserpool/tlv"
)

// ASAPStats counts what a [Core] did since it was created.
type ASAPStats struct {
	Registrations      uint64 // accepted ASAP_REGISTRATIONs (new and re-registrations)
	RegistrationsRefd  uint64 // registrations answered with R=1
	Deregistrations    uint64 // PEs removed by ASAP_DEREGISTRATION
	Resolutions        uint64 // ASAP_HANDLE_RESOLUTIONs answered (with PEs or an error)
	ResolutionsRefused uint64 // of them, refused by AuthorizeResolution (answered with 0xa)
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

// Core is the sans-IO registrar (RFC 5353 server, RFC 5352 registrar
// side): the one owner of the registrar's handlespace and of the
// supervision of the PEs registered here. It accepts, refuses and removes
// registrations, answers handle resolutions with the pool's policy,
// supervises the PEs it owns with Endpoint Keep Alive, counts Endpoint
// Unreachable reports once per reporting association and checks a
// reported PE with a keep-alive before it removes it, aborts idle
// associations, and emits periodic Server Announces. It runs the ENRP
// procedures of RFC 5353 §3 too: the peer table and Presence (peers.go),
// the start-up with a mentor and the paged handle table (sync.go), handle
// updates (update.go), the checksum audit (audit.go) and the takeover of a
// dead peer (takeover_core.go), with the inputs HandleENRP,
// HandleENRPMulticast, HandleConnected and HandleConnectFailed and the
// outputs [SendENRP], [ConnectPeer], [Multicast] and [PeerEvent].
//
// Ownership has one truth: the store's owner lists, keyed by home server
// ID. A PE is this registrar's exactly when the store holds it with home
// ServerID; the core keeps its keep-alive state in a heap indexed by the
// same PEs, and every store change to one of them goes through the core.
//
// It does no I/O and reads no clock: every call takes the host's now. The
// host tells it about associations (HandleAccepted, HandleLost, and for
// the ones it asked for HandleConnected, HandleConnectFailed), feeds it
// messages (HandleASAP for raw bytes, HandleASAPMessage for parsed ones,
// HandleENRP and HandleENRPMulticast) and timeouts (HandleTimeout at
// NextDeadline), and carries out the Outbox: [SendASAP], [SendENRP],
// [Multicast], [ConnectPeer], [CloseAssoc], and the events [PEEvent] and
// [PeerEvent].
// Messages in the outbox may alias the input and the store: encode them
// before the next call of any method of the core.
//
// Bad input never panics and never changes the store unless it is a valid
// request: malformed messages are answered with ASAP_ERROR when their
// action bits ask for a report (RFC 5354 §2) and dropped otherwise. What
// one association and one source address may register is bounded by the
// resource limits of [ASAPConfig] (RFC 5355 §3), and every message the
// core queues fits the 16-bit Message Length: a handle resolution leaves
// out the PEs that would not fit, best-chosen first, and long error
// causes are cut ([ASAPStats].PEsLeftOut).
//
// A Core is not safe for concurrent use.
type Core struct {
	id    uint32
	cfg   ASAPConfig
	log   *slog.Logger
	store *handlespace.Store
	out   []Output
	hr    tlv.HandleResolution // HandleASAP parses handle resolutions into it

	assocs map[AssocID]*assoc
	sup    map[peKey]*supPE         // index of timers: exactly the stored PEs of home id
	srcs   map[netip.Addr]*srcState // per source address counts (asap_limits.go)
	timers supHeap

	announce           bool            // the host multicasts announces
	announceTransports []tlv.Transport // ASAP transports in them
	announceAt         time.Time       // next announce; zero until the first call
	encBuf             [][]byte        // the selected PEs' encodings, reused
	resPool            []*resolution   // Handle Resolution Responses, reused after Outbox
	resUsed            int             // how many of resPool the outbox holds
	stats              ASAPStats

	clock              time.Time // the now of the last call
	idleHead, idleTail *assoc    // associations without PEs, least recently active first
	grace              graceTable

	en      enrpState  // ENRP peering (peers.go)
	to      *takeovers // RFC 5353 §3.9 (takeover.go)
	expPEs  []tlv.PoolElement
	expKeys []peKey
}

type peKey struct {
	handle string
	id     uint32
}

// assoc is one ASAP association of a PE or PU.
type assoc struct {
	info   AssocInfo
	pes    map[peKey]struct{} // PEs registered over it
	pools  map[string]int32   // pool handle -> its PEs in pes (asap_limits.go)
	tokens float64
	last   time.Time

	id                 AssocID
	eu, hr             bucket             // MaxEURate, MaxHRRate
	grace              map[peKey]struct{} // identifiers held for it
	idleSince          time.Time          // last message, or when its last PE left
	idlePrev, idleNext *assoc
	idleIn             bool
}

// NewCore validates cfg and returns a registrar core with an empty
// handlespace. It uses ServerID (drawing a random non-zero one from Rand
// when zero, RFC 5353 §3.1), Rand, the ASAP and handlespace settings,
// Logger, and whether Announcer is set (the core then emits announces as
// [Multicast] outputs); it opens nothing and keeps no reference to the
// host's objects.
func NewCore(cfg Config) (*Core, error) {
	src := cfg.Rand
	if src == nil {
		src = rand.NewPCG(rand.Uint64(), rand.Uint64())
	}
	id := cfg.ServerID
	for r := rand.New(src); id == 0; {
		id = r.Uint32() // RFC 5353 §3.1: a random non-zero server ID
	}
	hs := cfg.Handlespace
	if hs.Rand == nil {
		hs.Rand = src
	}
	c, err := newCore(id, cfg.ASAP, hs, cfg.Announcer != nil, logger(cfg.Logger))
	if err != nil {
		return nil, err
	}
	if err := c.initPeers(cfg.Peers); err != nil {
		return nil, err
	}
	return c, nil
}

func newCore(id uint32, ac ASAPConfig, hs handlespace.Config, announce bool, log *slog.Logger) (*Core, error) {
	ac, err := ac.withDefaults()
	if err != nil {
		return nil, err
	}
	ts, err := ac.announceTransports(id)
	if err != nil {
		return nil, err
	}
	st, err := handlespace.New(hs)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	c := &Core{
		id:                 id,
		cfg:                ac,
		log:                log,
		store:              st,
		announce:           announce,
		announceTransports: ts,
		assocs:             make(map[AssocID]*assoc),
		sup:                make(map[peKey]*supPE),
	}
	if err := c.initPeers(PeersConfig{}); err != nil {
		return nil, err
	}
	return c, nil
}

// ServerID returns the registrar's server identifier.
func (c *Core) ServerID() uint32 { return c.id }

// Stats returns the counters.
func (c *Core) Stats() ASAPStats { return c.stats }

// Associations is the number of associations the core knows.
func (c *Core) Associations() int { return len(c.assocs) }

// Owned is the number of PEs this registrar is home of (and supervises):
// the store's count for ServerID.
func (c *Core) Owned() int { return c.store.Owned(c.id) }

// Lookup returns a deep copy of PE id of the pool named handle and its
// registrar-local data, e.g. to go with a [PEEvent]. The handlespace
// itself stays the core's: every change to it goes through the core.
func (c *Core) Lookup(handle tlv.PoolHandle, id uint32) (tlv.PoolElement, handlespace.Info, bool) {
	return c.store.Lookup(handle, id)
}

// Outbox returns the outputs queued since its last call and empties the
// queue. The returned slice, and the messages in it, are valid until the
// next call of any method of the core, which reuses the slice: carry out
// the outputs (encode the messages) before calling the core again.
func (c *Core) Outbox() []Output {
	out := c.out
	c.out = c.out[:0]
	c.resUsed = 0
	return out
}

// send queues m for association id. A message that would not fit the
// 16-bit Message Length is shortened first (fit), so that it is never
// dropped for its size by the driver.
func (c *Core) send(id AssocID, m tlv.ASAPMessage) {
	if !fit(m) {
		c.stats.Oversize++
		if c.log.Enabled(context.Background(), slog.LevelDebug) {
			c.log.Debug("enrp: ASAP message too large to send", "assoc", id, "type", m.ASAPType(), "len", m.Len())
		}
		return
	}
	c.out = append(c.out, SendASAP{Assoc: id, Msg: m})
}

// HandleAccepted tells the core that a PE or PU opened ASAP association
// id. The caller picks unique non-zero ids. A known id is left unchanged.
func (c *Core) HandleAccepted(now time.Time, id AssocID, info AssocInfo) {
	c.start(now)
	if id == 0 || c.assocs[id] != nil {
		return
	}
	a := &assoc{id: id, info: info, tokens: float64(c.cfg.AssocBurst), last: now}
	c.assocs[id] = a
	c.idleTouch(now, a)
}

// HandleLost tells the core that association id is gone: every PE
// registered over it is removed (RFC 5352 §3.7: the registrar treats the
// loss of a PE's association like a failed keep-alive).
func (c *Core) HandleLost(now time.Time, id AssocID) {
	c.peerAssocLost(now, id)
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
func (c *Core) start(now time.Time) {
	c.clock = now
	if c.announceAt.IsZero() {
		c.announceAt = now
	}
	if !c.en.started {
		c.startPeers(now)
	}
}

// HandleASAP parses one ASAP message received on association id (SCTP
// PPID transport.PPIDASAP) and handles it. A message that does not parse is answered with
// ASAP_ERROR when its error's action asks for a report — Unrecognized
// Message with the message attached, Unrecognized Parameter with the
// parameter, or Invalid Values (RFC 5352 §2.2.14, RFC 5354 §2) — and is
// dropped silently otherwise (action 00). b may be aliased by the outbox.
func (c *Core) HandleASAP(now time.Time, id AssocID, b []byte) {
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
	var m tlv.ASAPMessage
	var err error
	if len(b) > 0 && tlv.ASAPType(b[0]) == tlv.ASAPHandleResolution {
		// The most frequent message goes into a struct of the core's:
		// nothing keeps it after it is handled.
		err = c.cfg.Limits.ParseHandleResolution(b, &c.hr)
		m = &c.hr
	} else {
		m, err = c.cfg.Limits.ParseASAP(b)
	}
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
			c.log.Debug("enrp: malformed ASAP message", "assoc", id, "err", err)
		}
		return
	}
	c.handle(now, id, a, m)
}

// HandleASAPMessage handles one parsed ASAP message received on
// association id. Its byte slices may be aliased by the outbox.
func (c *Core) HandleASAPMessage(now time.Time, id AssocID, m tlv.ASAPMessage) {
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

func (c *Core) sendError(id AssocID, oe *tlv.OperationError) {
	c.stats.ErrorsSent++
	c.send(id, &tlv.ASAPError{Error: *oe})
}

func (c *Core) handle(now time.Time, id AssocID, a *assoc, m tlv.ASAPMessage) {
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
			c.log.Debug("enrp: unexpected ASAP message dropped", "assoc", id, "type", m.ASAPType())
		}
	}
}

// NextDeadline returns when HandleTimeout must next run: the earliest of
// a registration expiry, a keep-alive to send or to give up on, the next
// announce, an idle association to abort and a grace entry to drop. It is
// the zero time when nothing is scheduled.
func (c *Core) NextDeadline() time.Time {
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
	if c.announce && !c.announceAt.IsZero() {
		earlier(c.announceAt)
	}
	if c.idleHead != nil {
		earlier(c.idleHead.idleSince.Add(c.cfg.IdleTimeout))
	}
	if g := &c.grace; g.head < len(g.q) {
		earlier(g.q[g.head].until)
	}
	c.peersDeadline(earlier)
	return d
}

// HandleTimeout runs what is due at now: registration expiry (RFC 5352
// §3.2), keep-alive sends and timeouts (§3.7; the association of a PE
// that failed one is aborted when it carries no other PE), idle
// associations (IdleTimeout), and the Server Announce (§3.6, T6). A
// driver calls it once when it starts, which sends the first announce.
func (c *Core) HandleTimeout(now time.Time) {
	c.start(now)
	c.expKeys, c.expPEs = c.expKeys[:0], c.expPEs[:0]
	c.store.PopExpired(now, func(h tlv.PoolHandle, pe tlv.PoolElement) {
		k := peKey{string(h), pe.ID}
		if c.sup[k] == nil {
			// A PE of a dead peer that nobody took over, left to
			// expire at the end of its registration life
			// (expireOrphans, after TAKEOVER-EXPIRY, RFC 5353
			// §3.9): not ours, nothing to tell.
			return
		}
		c.expKeys = append(c.expKeys, k)
		c.expPEs = append(c.expPEs, handlespace.ClonePoolElement(pe))
	})
	for i, k := range c.expKeys {
		c.stats.Expired++
		c.forget(c.sup[k])
		c.removed(k, RemovedExpired, &c.expPEs[i])
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
	c.peersTimeout(now)
	if c.announce && !now.Before(c.announceAt) {
		c.stats.Announces++
		c.out = append(c.out, Multicast{Msg: &tlv.ServerAnnounce{ServerID: c.id, Transports: c.announceTransports}})
		c.announceAt = now.Add(c.cfg.AnnounceInterval)
	}
}

// AssocOf returns the association a PE owned by this registrar was
// registered over, for diagnostics and the host's view.
func (c *Core) AssocOf(handle tlv.PoolHandle, id uint32) (AssocID, AssocInfo, bool) {
	st := c.sup[peKey{string(handle), id}]
	if st == nil {
		return 0, AssocInfo{}, false
	}
	var info AssocInfo
	if a := c.assocs[st.assoc]; a != nil {
		info = a.info
	}
	return st.assoc, info, true
}

// stored reports a stored registration of PE key.
func (c *Core) stored(key peKey, created bool) {
	kind := EventUpdated
	if created {
		kind = EventRegistered
	}
	c.out = append(c.out, PEEvent{Kind: kind, PoolHandle: tlv.PoolHandle(key.handle), PEID: key.id})
	c.updateOwned(key, tlv.UpdateAddPE, nil)
	if c.log.Enabled(context.Background(), slog.LevelDebug) {
		c.log.Debug("enrp: PE stored", "pool", tlv.PoolHandle(key.handle), "pe", tlv.PEIdentifier(key.id), "new", created)
	}
}

// removed reports that PE key, one of ours, left the store; pe is what
// the store held (read only here; nil if unknown).
func (c *Core) removed(key peKey, why RemoveReason, pe *tlv.PoolElement) {
	c.out = append(c.out, PEEvent{Kind: EventRemoved, PoolHandle: tlv.PoolHandle(key.handle), PEID: key.id, Reason: why})
	c.updateOwned(key, tlv.UpdateDelPE, pe)
	if c.log.Enabled(context.Background(), slog.LevelDebug) {
		c.log.Debug("enrp: PE removed", "pool", tlv.PoolHandle(key.handle), "pe", tlv.PEIdentifier(key.id), "reason", why.String())
	}
}

// fit shortens a message the core is about to send when it does not fit
// the 16-bit Message Length (RFC 5352 §2.1): trailing error causes are
// left out, then the information of the first one is cut (RFC 5354
// §3.12 carries the offending parameter or message there, which can be as
// large as the message that caused it). It reports whether m fits now; it
// does not when the pool handle alone is too long (only with a
// tlv.Limits.MaxPoolHandle near 64 KiB).
func fit(m tlv.ASAPMessage) bool {
	over := m.Len() - tlv.MaxMessageLen
	if over <= 0 {
		return true
	}
	var e *tlv.OperationError
	switch m := m.(type) {
	case *tlv.ASAPError:
		e = &m.Error
	case *tlv.RegistrationResponse:
		e = m.Error
	case *tlv.DeregistrationResponse:
		e = m.Error
	case *tlv.HandleResolutionResponse:
		e = m.Error
	}
	if e == nil || len(e.Causes) == 0 {
		return false
	}
	for len(e.Causes) > 1 && over > 0 {
		last := e.Causes[len(e.Causes)-1]
		e.Causes = e.Causes[:len(e.Causes)-1]
		over -= (4 + len(last.Info) + 3) &^ 3
	}
	if over > 0 {
		// Cutting over+3 bytes shortens the padded cause by at least over.
		info := e.Causes[0].Info
		e.Causes[0].Info = info[:max(0, len(info)-over-3)]
	}
	return m.Len() <= tlv.MaxMessageLen
}
