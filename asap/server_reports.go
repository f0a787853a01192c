package asap

import (
	"context"
	"log/slog"
	"net/netip"
	"slices"
	"time"

	"github.com/go-rserpool/rserpool/tlv"
)

// The registrar's defences against false Endpoint Unreachable reports,
// handle resolution floods, identifier takeover and idle associations
// (RFC 5352 §3.5 and §3.7, RFC 5355 §3).
//
// A report about a PE this registrar owns counts once per reporting
// association. At MAX-BAD-PE-REPORT distinct reporters the registrar
// does not remove the PE at once: it sends it an ASAP_ENDPOINT_KEEP_ALIVE
// and removes it only when no ack comes within KeepAliveTimeout; an ack
// keeps it and resets its reports. A PE removed for a missing ack leaves
// its identifier bound to its association, and an emptied pool its policy
// and transport type, for IDGrace. Reports and deregistrations about PEs
// of another home registrar change nothing.

// bucket is a token bucket of RateLimitBurst tokens.
type bucket struct {
	tokens float64
	last   time.Time
	used   bool
}

// take reports whether a message may pass at rate (per second).
func (b *bucket) take(now time.Time, rate float64) bool {
	if rate == Unlimited {
		return true
	}
	if !b.used {
		b.used, b.tokens, b.last = true, RateLimitBurst, now
	}
	if dt := now.Sub(b.last); dt > 0 {
		b.tokens = min(b.tokens+dt.Seconds()*rate, RateLimitBurst)
		b.last = now
	}
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// onUnreachable counts a report (RFC 5352 §3.5) once per reporting
// association and, at MAX-BAD-PE-REPORT reporters, checks the PE with an
// immediate keep-alive (§3.7) instead of removing it.
func (c *ServerCore) onUnreachable(now time.Time, id AssocID, m *tlv.EndpointUnreachable) {
	st := c.pes[peKey{string(m.PoolHandle), m.PEID}]
	if st == nil {
		// Unknown, or owned by another registrar: only its home may
		// check it and remove it.
		c.stats.UnreachableIgnored++
		return
	}
	if st.check {
		c.stats.UnreachableReports++ // a check is under way already
		return
	}
	if slices.Contains(st.reporters, id) {
		c.stats.UnreachableRepeated++
		return
	}
	st.reporters = append(st.reporters, id)
	c.store.ReportUnreachable(now, m.PoolHandle, m.PEID) // for the host's view
	c.stats.UnreachableReports++
	if len(st.reporters) < c.cfg.MaxBadPEReport {
		return
	}
	st.check = true
	c.stats.UnreachableChecks++
	if c.log.Enabled(context.Background(), slog.LevelDebug) {
		c.log.Debug("asap server: PE reported unreachable, checking it", "pool", st.key.handle, "pe", st.key.id, "reporters", len(st.reporters))
	}
	if !st.waiting {
		// A keep-alive already outstanding decides as well.
		c.sendKeepAlive(now, st)
	}
}

// sendKeepAlive sends the PE an ASAP_ENDPOINT_KEEP_ALIVE and waits
// KeepAliveTimeout for the ack (RFC 5352 §3.7).
func (c *ServerCore) sendKeepAlive(now time.Time, st *srvPE) {
	st.waiting = true
	c.timers.set(st, now.Add(c.cfg.KeepAliveTimeout))
	c.stats.KeepAlivesSent++
	c.send(st.assoc, &tlv.EndpointKeepAlive{
		ServerID:   c.cfg.ServerID,
		PoolHandle: tlv.PoolHandle(st.key.handle),
		HasPEID:    true, // RSPLIB's extension, SPEC D6; PEs must accept it
		PEID:       st.key.id,
	})
}

// alive records that the PE proved alive (a registration or a keep-alive
// ack): its reports are reset and its keep-alive cycle restarts.
func (c *ServerCore) alive(now time.Time, st *srvPE) {
	if st.check {
		c.stats.UnreachableCleared++
	}
	st.waiting, st.check = false, false
	st.reporters = st.reporters[:0]
	c.timers.set(st, now.Add(c.cfg.KeepAliveInterval))
}

// removeForced removes an owned PE that failed a keep-alive: its
// identifier (and its pool, if it was the last PE) is held for IDGrace,
// and its association is aborted when it carries no other PE (as RSPLIB
// does).
func (c *ServerCore) removeForced(now time.Time, st *srvPE, why RemoveReason) {
	key, assoc := st.key, st.assoc
	pe, ok := c.store.Deregister(now, tlv.PoolHandle(key.handle), key.id)
	var res gracePool
	if ok {
		res = gracePool{assoc: assoc, ptype: pe.Policy.Type, utype: pe.UserTransport.Type, uuse: transportUse(&pe.UserTransport)}
	}
	c.forget(st)
	c.out = append(c.out, PERemoved{PoolHandle: tlv.PoolHandle(key.handle), PEID: key.id, Reason: why})
	if c.log.Enabled(context.Background(), slog.LevelDebug) {
		c.log.Debug("asap server: PE failed its keep-alive", "pool", key.handle, "pe", key.id, "reason", why.String())
	}
	if ok {
		c.holdID(now, key, assoc)
		if _, _, err := c.store.Select(tlv.PoolHandle(key.handle), 0, nil); err != nil {
			c.holdPool(now, key.handle, res) // the pool went with it
		}
	}
	if a := c.assocs[assoc]; a != nil && len(a.pes) == 0 {
		c.stats.KeepAliveAborted++
		c.abort(assoc, AbortKeepAlive)
	}
}

// abort forgets association id as HandleLost does and asks the driver to
// abort it.
func (c *ServerCore) abort(id AssocID, why AbortReason) {
	c.HandleLost(c.clock, id)
	c.out = append(c.out, AbortAssoc{Assoc: id, Reason: why})
	if c.log.Enabled(context.Background(), slog.LevelDebug) {
		c.log.Debug("asap server: aborting association", "assoc", id, "reason", why.String())
	}
}

func transportUse(t *tlv.Transport) tlv.TransportUse {
	if t.Type == tlv.ParamSCTPTransport || t.Type == tlv.ParamTCPTransport {
		return t.Use
	}
	return 0
}

// Idle associations (RSPLIB's SCTP autoclose). The list holds the
// associations without PEs in the order they last sent something or lost
// their last PE; an association that gained a PE meanwhile is dropped
// from it lazily, when it comes first.

func (c *ServerCore) idleUnlink(a *srvAssoc) {
	if !a.idleIn {
		return
	}
	if a.idlePrev != nil {
		a.idlePrev.idleNext = a.idleNext
	} else {
		c.idleHead = a.idleNext
	}
	if a.idleNext != nil {
		a.idleNext.idlePrev = a.idlePrev
	} else {
		c.idleTail = a.idlePrev
	}
	a.idlePrev, a.idleNext, a.idleIn = nil, nil, false
}

// idleTouch restarts a's idle clock at now, if it carries no PE.
func (c *ServerCore) idleTouch(now time.Time, a *srvAssoc) {
	if c.cfg.IdleTimeout < 0 {
		return
	}
	c.idleUnlink(a)
	if len(a.pes) > 0 {
		return
	}
	a.idleSince = now
	a.idlePrev, a.idleIn = c.idleTail, true
	if c.idleTail != nil {
		c.idleTail.idleNext = a
	} else {
		c.idleHead = a
	}
	c.idleTail = a
}

// reapIdle aborts the associations idle for IdleTimeout at now.
func (c *ServerCore) reapIdle(now time.Time) {
	for a := c.idleHead; a != nil && !a.idleSince.Add(c.cfg.IdleTimeout).After(now); a = c.idleHead {
		c.idleUnlink(a)
		if len(a.pes) > 0 {
			continue
		}
		c.stats.IdleAborted++
		c.abort(a.id, AbortIdle)
	}
}

// The grace table: identifiers and pools held after a PE failed a
// keep-alive. Every entry lives IDGrace, so the queue is in expiry order.

type graceID struct {
	assoc  AssocID    // 0 once the association is gone
	remote netip.Addr // its peer address, which may come back on a new association
	until  time.Time
}

type gracePool struct {
	assoc AssocID
	ptype uint32
	utype tlv.ParamType
	uuse  tlv.TransportUse
	until time.Time
}

type graceRec struct {
	key   peKey // handle only, for a pool
	pool  bool
	until time.Time
}

type graceTable struct {
	ids   map[peKey]graceID
	pools map[string]gracePool
	q     []graceRec
	head  int
}

func (g *graceTable) len() int { return len(g.ids) + len(g.pools) }

// GraceEntries is the number of identifiers and pools held for IDGrace.
func (c *ServerCore) GraceEntries() int { return c.grace.len() }

func (c *ServerCore) holdID(now time.Time, key peKey, assoc AssocID) {
	a := c.assocs[assoc]
	if c.cfg.IDGrace < 0 || a == nil {
		return
	}
	c.graceRoom(now)
	if c.grace.ids == nil {
		c.grace.ids = make(map[peKey]graceID)
	}
	until := now.Add(c.cfg.IDGrace)
	var remote netip.Addr
	if ap := a.info.Remote.AddrPort; ap.IsValid() {
		remote = ap.Addr().Unmap().WithZone("")
	}
	c.grace.ids[key] = graceID{assoc: assoc, remote: remote, until: until}
	if a.grace == nil {
		a.grace = make(map[peKey]struct{})
	}
	a.grace[key] = struct{}{}
	c.grace.q = append(c.grace.q, graceRec{key: key, until: until})
}

func (c *ServerCore) holdPool(now time.Time, handle string, p gracePool) {
	if c.cfg.IDGrace < 0 {
		return
	}
	c.graceRoom(now)
	if c.grace.pools == nil {
		c.grace.pools = make(map[string]gracePool)
	}
	p.until = now.Add(c.cfg.IDGrace)
	c.grace.pools[handle] = p
	c.grace.q = append(c.grace.q, graceRec{key: peKey{handle: handle}, pool: true, until: p.until})
}

// graceRoom expires what is due and drops the oldest entries until one
// more fits.
func (c *ServerCore) graceRoom(now time.Time) {
	c.graceExpire(now)
	for c.grace.len() >= c.cfg.MaxGraceEntries && c.grace.head < len(c.grace.q) {
		c.gracePop()
	}
	if c.grace.len() == 0 {
		clear(c.grace.q)
		c.grace.q, c.grace.head = c.grace.q[:0], 0
	} else if len(c.grace.q)-c.grace.head > 2*c.cfg.MaxGraceEntries {
		// Renewed entries left stale records: keep the live ones.
		q := c.grace.q[:0]
		for _, r := range c.grace.q[c.grace.head:] {
			if c.graceLive(r) {
				q = append(q, r)
			}
		}
		clear(c.grace.q[len(q):])
		c.grace.q, c.grace.head = q, 0
	}
}

// graceLive reports whether r is the record of a held entry.
func (c *ServerCore) graceLive(r graceRec) bool {
	if r.pool {
		p, ok := c.grace.pools[r.key.handle]
		return ok && p.until.Equal(r.until)
	}
	b, ok := c.grace.ids[r.key]
	return ok && b.until.Equal(r.until)
}

// graceExpire drops the entries whose grace ended at now.
func (c *ServerCore) graceExpire(now time.Time) {
	for c.grace.head < len(c.grace.q) && !c.grace.q[c.grace.head].until.After(now) {
		c.gracePop()
	}
}

// gracePop drops the oldest record of the queue and its entry, unless the
// entry was renewed since.
func (c *ServerCore) gracePop() {
	g := &c.grace
	r := g.q[g.head]
	g.q[g.head] = graceRec{}
	g.head++
	if c.graceLive(r) {
		if r.pool {
			delete(g.pools, r.key.handle)
		} else {
			c.graceUnbind(r.key, g.ids[r.key])
		}
	}
	if g.head > 64 && g.head*2 > len(g.q) {
		n := copy(g.q, g.q[g.head:])
		clear(g.q[n:])
		g.q, g.head = g.q[:n], 0
	}
}

func (c *ServerCore) graceUnbind(key peKey, b graceID) {
	delete(c.grace.ids, key)
	if a := c.assocs[b.assoc]; a != nil {
		delete(a.grace, key)
	}
}

// graceAssocGone: the identifiers bound to a may come back only from its
// peer address now.
func (c *ServerCore) graceAssocGone(a *srvAssoc) {
	for key := range a.grace {
		b := c.grace.ids[key]
		if !b.remote.IsValid() {
			delete(c.grace.ids, key)
			continue
		}
		b.assoc = 0
		c.grace.ids[key] = b
	}
	a.grace = nil
}

// graceRefuses returns the cause that refuses the registration of pe in
// handle over association id, or 0: during IDGrace the identifier of a
// removed PE is for its association (or, once that is gone, for its peer
// address), and an emptied pool keeps its policy and transport type.
func (c *ServerCore) graceRefuses(now time.Time, id AssocID, a *srvAssoc, handle tlv.PoolHandle, pe *tlv.PoolElement) (tlv.CauseCode, []byte, string) {
	if c.grace.len() == 0 {
		return 0, nil, ""
	}
	c.graceExpire(now)
	if b, ok := c.grace.ids[peKey{string(handle), pe.ID}]; ok && b.assoc != id {
		var from netip.Addr
		if ap := a.info.Remote.AddrPort; ap.IsValid() {
			from = ap.Addr().Unmap().WithZone("")
		}
		if b.assoc != 0 || from != b.remote {
			c.stats.GraceRefused++
			return tlv.CauseNonUniquePEIdentifier, nil, "PE identifier held for the association of the removed PE"
		}
	}
	if p, ok := c.grace.pools[string(handle)]; ok && p.assoc != id {
		if _, _, err := c.store.Select(handle, 0, nil); err == nil {
			delete(c.grace.pools, string(handle)) // the pool is back: the store checks
			return 0, nil, ""
		}
		var code tlv.CauseCode
		var info []byte
		switch {
		case pe.Policy.Type != p.ptype:
			code, info = tlv.CauseInconsistentPoolingPolicy, pe.Policy.AppendTo(nil)
		case pe.UserTransport.Type != p.utype:
			code, info = tlv.CauseInconsistentTransportType, pe.UserTransport.AppendTo(nil)
		case transportUse(&pe.UserTransport) != p.uuse:
			code = tlv.CauseInconsistentDataControlConfig
		default:
			return 0, nil, ""
		}
		c.stats.GraceRefused++
		return code, info, "emptied pool held for the association of its removed PE"
	}
	return 0, nil, ""
}

// graceDone: the PE key is registered again; what was held for it is
// released.
func (c *ServerCore) graceDone(key peKey) {
	if c.grace.len() == 0 {
		return
	}
	if b, ok := c.grace.ids[key]; ok {
		c.graceUnbind(key, b)
	}
	delete(c.grace.pools, key.handle)
}
