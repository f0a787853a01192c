package enrp

// Supervision of the PEs this registrar owns: Endpoint Keep Alive and its
// timeout (RFC 5352 §3.7), removal of a PE that fails it, and idle
// associations.

import (
	"context"
	"log/slog"
	"time"

	"github.com/go-rserpool/rserpool/tlv"
)

// supPE is the keep-alive state of a PE this registrar owns. Core.sup
// holds one for exactly the PEs the store holds with home Core.id (the
// store's owner list): every store change to such a PE is made by the
// core, which creates the entry when it stores the PE and drops it
// (forget) when it removes it.
type supPE struct {
	key     peKey
	assoc   AssocID
	due     time.Time // keep-alive send time, or ack deadline when waiting
	waiting bool      // a keep-alive is outstanding
	idx     int       // position in the timer heap
	src     *srcState // counts of its source address, nil if none

	reporters []AssocID // associations that reported it unreachable since it last proved alive
	check     bool      // the outstanding keep-alive decides on those reports
}

// onKeepAliveAck ends an outstanding keep-alive (RFC 5352 §3.7): the PE
// is alive, and the unreachable reports about it are void. Acks on
// another association than the PE's are ignored.
func (c *Core) onKeepAliveAck(now time.Time, id AssocID, m *tlv.EndpointKeepAliveAck) {
	st := c.sup[peKey{string(m.PoolHandle), m.PEID}]
	if st == nil || st.assoc != id {
		c.stats.Dropped++
		return
	}
	c.alive(now, st)
}

// forget drops the supervision state of a PE. An association left
// without PEs starts its idle clock.
func (c *Core) forget(st *supPE) {
	delete(c.sup, st.key)
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

// sendKeepAlive sends the PE an ASAP_ENDPOINT_KEEP_ALIVE and waits
// KeepAliveTimeout for the ack (RFC 5352 §3.7).
func (c *Core) sendKeepAlive(now time.Time, st *supPE) {
	st.waiting = true
	c.timers.set(st, now.Add(c.cfg.KeepAliveTimeout))
	c.stats.KeepAlivesSent++
	c.send(st.assoc, &tlv.EndpointKeepAlive{
		ServerID:   c.id,
		PoolHandle: tlv.PoolHandle(st.key.handle),
		HasPEID:    true, // RSPLIB's extension (the PE Identifier); PEs must accept it
		PEID:       st.key.id,
	})
}

// alive records that the PE proved alive (a registration or a keep-alive
// ack): its reports are reset and its keep-alive cycle restarts.
func (c *Core) alive(now time.Time, st *supPE) {
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
func (c *Core) removeForced(now time.Time, st *supPE, why RemoveReason) {
	key, assoc := st.key, st.assoc
	pe, ok := c.store.Deregister(now, tlv.PoolHandle(key.handle), key.id)
	var res gracePool
	if ok {
		res = gracePool{assoc: assoc, ptype: pe.Policy.Type, utype: pe.UserTransport.Type, uuse: transportUse(&pe.UserTransport)}
	}
	c.forget(st)
	var peP *tlv.PoolElement
	if ok {
		peP = &pe
	}
	c.removed(key, why, peP)
	if c.log.Enabled(context.Background(), slog.LevelDebug) {
		c.log.Debug("enrp: PE failed its keep-alive", "pool", tlv.PoolHandle(key.handle), "pe", tlv.PEIdentifier(key.id), "reason", why.String())
	}
	if ok {
		c.holdID(now, key, assoc)
		if _, _, err := c.store.Select(tlv.PoolHandle(key.handle), 0, nil); err != nil {
			c.holdPool(now, key.handle, res) // the pool went with it
		}
	}
	if a := c.assocs[assoc]; a != nil && len(a.pes) == 0 {
		c.stats.KeepAliveAborted++
		c.abort(assoc, CloseKeepAlive)
	}
}

// abort forgets association id as HandleLost does and asks the driver to
// abort it.
func (c *Core) abort(id AssocID, why CloseReason) {
	c.HandleLost(c.clock, id)
	c.out = append(c.out, CloseAssoc{Assoc: id, Abort: true, Reason: why})
	if c.log.Enabled(context.Background(), slog.LevelDebug) {
		c.log.Debug("enrp: aborting association", "assoc", id, "reason", why.String())
	}
}

// Idle associations (RSPLIB's SCTP autoclose). The list holds the
// associations without PEs in the order they last sent something or lost
// their last PE; an association that gained a PE meanwhile is dropped
// from it lazily, when it comes first.

func (c *Core) idleUnlink(a *assoc) {
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
func (c *Core) idleTouch(now time.Time, a *assoc) {
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
func (c *Core) reapIdle(now time.Time) {
	for a := c.idleHead; a != nil && !a.idleSince.Add(c.cfg.IdleTimeout).After(now); a = c.idleHead {
		c.idleUnlink(a)
		if len(a.pes) > 0 {
			continue
		}
		c.stats.IdleAborted++
		c.abort(a.id, CloseIdle)
	}
}

// supHeap is a binary min-heap of PEs by due time, with positions kept in
// supPE.idx so that set and remove are O(log n).
type supHeap []*supPE

func (h *supHeap) set(st *supPE, due time.Time) {
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

func (h *supHeap) remove(st *supPE) {
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

func (h supHeap) less(i, j int) bool { return h[i].due.Before(h[j].due) }

func (h supHeap) swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].idx, h[j].idx = i, j
}

func (h supHeap) up(i int) {
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
func (h supHeap) down(i int) bool {
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
