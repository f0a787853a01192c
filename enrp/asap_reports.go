package enrp

// Endpoint Unreachable reports (RFC 5352 §3.5) and the per-association
// rate limits (RFC 5355 §3).

import (
	"context"
	"log/slog"
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

// allow runs the association's token bucket.
func (c *Core) allow(now time.Time, a *assoc) bool {
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

// onUnreachable counts a report (RFC 5352 §3.5) once per reporting
// association and, at MAX-BAD-PE-REPORT reporters, checks the PE with an
// immediate keep-alive (§3.7) instead of removing it.
func (c *Core) onUnreachable(now time.Time, id AssocID, m *tlv.EndpointUnreachable) {
	st := c.sup[peKey{string(m.PoolHandle), m.PEID}]
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
		c.log.Debug("enrp: PE reported unreachable, checking it", "pool", tlv.PoolHandle(st.key.handle), "pe", tlv.PEIdentifier(st.key.id), "reporters", len(st.reporters))
	}
	if !st.waiting {
		// A keep-alive already outstanding decides as well.
		c.sendKeepAlive(now, st)
	}
}
