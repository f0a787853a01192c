package enrp

// The identifier grace after a forced removal (RFC 5355 §3: a PE
// identifier is not taken over while its PE may come back).

import (
	"net/netip"
	"time"

	"github.com/go-rserpool/rserpool/tlv"
)

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
func (c *Core) GraceEntries() int { return c.grace.len() }

func (c *Core) holdID(now time.Time, key peKey, assoc AssocID) {
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

func (c *Core) holdPool(now time.Time, handle string, p gracePool) {
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
func (c *Core) graceRoom(now time.Time) {
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
func (c *Core) graceLive(r graceRec) bool {
	if r.pool {
		p, ok := c.grace.pools[r.key.handle]
		return ok && p.until.Equal(r.until)
	}
	b, ok := c.grace.ids[r.key]
	return ok && b.until.Equal(r.until)
}

// graceExpire drops the entries whose grace ended at now.
func (c *Core) graceExpire(now time.Time) {
	for c.grace.head < len(c.grace.q) && !c.grace.q[c.grace.head].until.After(now) {
		c.gracePop()
	}
}

// gracePop drops the oldest record of the queue and its entry, unless the
// entry was renewed since.
func (c *Core) gracePop() {
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

func (c *Core) graceUnbind(key peKey, b graceID) {
	delete(c.grace.ids, key)
	if a := c.assocs[b.assoc]; a != nil {
		delete(a.grace, key)
	}
}

// graceAssocGone: the identifiers bound to a may come back only from its
// peer address now.
func (c *Core) graceAssocGone(a *assoc) {
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
func (c *Core) graceRefuses(now time.Time, id AssocID, a *assoc, handle tlv.PoolHandle, pe *tlv.PoolElement) (tlv.CauseCode, []byte, string) {
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
func (c *Core) graceDone(key peKey) {
	if c.grace.len() == 0 {
		return
	}
	if b, ok := c.grace.ids[key]; ok {
		c.graceUnbind(key, b)
	}
	delete(c.grace.pools, key.handle)
}
