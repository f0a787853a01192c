package enrp

// The checksum audit (RFC 5353 §3.7): a peer's Presence carries the
// checksum of the PEs it owns; when ours of its PEs differs, its PEs are
// marked, its own PEs asked for with HANDLE_TABLE_REQUEST(W=1), and at the
// last page the PEs still marked are swept.

import "time"

// audit compares the checksum p advertised with ours of its PEs and
// starts a resynchronisation when they differ, unless a table request to
// p is under way already.
func (c *Core) audit(now time.Time, p *peer) {
	if p.syncing || p.assoc == 0 {
		return
	}
	if p.checksum == c.store.Checksum(p.id) {
		return
	}
	c.en.stats.Audits++
	c.store.Mark(now, p.id)
	c.requestTable(now, p, true)
}
