package enrp

// Initialisation with a mentor (RFC 5353 §3.4), the peer list
// (LIST_REQUEST/LIST_RESPONSE, §3.3) and the handle table
// (HANDLE_TABLE_REQUEST/RESPONSE with W, M and R, paged, §3.5).

import (
	"context"
	"log/slog"
	"time"

	"github.com/go-rserpool/rserpool/handlespace"
	"github.com/go-rserpool/rserpool/tlv"
)

// cursorState is where the table walk for one requester stands: the
// continuation a response with M=1 leaves behind (RFC 5353 §3.5).
type cursorState struct {
	active bool
	w      bool
	at     handlespace.Cursor
}

// chooseMentor makes p the mentor of a starting registrar: it asks p for
// its peer list and its whole handle table (RFC 5353 §3.4).
func (c *Core) chooseMentor(now time.Time, p *peer) {
	e := &c.en
	e.mentor = p
	p.listDone = false
	e.startupAt = now.Add(e.cfg.MentorTimeout)
	c.sendENRP(p.assoc, &tlv.ListRequest{ENRPHeader: tlv.ENRPHeader{SenderID: c.id, ReceiverID: p.id}})
	c.requestTable(now, p, false)
	if c.log.Enabled(context.Background(), slog.LevelDebug) {
		c.log.Debug("enrp: mentor chosen", "server", p.id)
	}
}

// requestTable sends p a HANDLE_TABLE_REQUEST; w asks for p's own PEs
// only (W=1).
// An answer that does not come within MaxTimeNoResponse gives the request
// up (syncFailed), so that a later audit can ask again.
func (c *Core) requestTable(now time.Time, p *peer, w bool) {
	p.syncing, p.syncW, p.pageDue = true, w, true
	p.syncDue = now.Add(c.en.cfg.MaxTimeNoResponse)
	c.sendENRP(p.assoc, &tlv.HandleTableRequest{ENRPHeader: tlv.ENRPHeader{SenderID: c.id, ReceiverID: p.id}, OwnChildrenOnly: w})
}

// endStartup ends the start-up phase: registrations are accepted.
func (c *Core) endStartup(why string) {
	if !c.en.startup {
		return
	}
	c.en.startup = false
	if c.log.Enabled(context.Background(), slog.LevelDebug) {
		c.log.Debug("enrp: start-up phase over", "why", why)
	}
}

// startupTimeout ends the start-up phase when no peer was heard within
// MentorTimeout, or the mentor has been silent that long (RFC 5353 §3.4;
// the registrar starts with what it has).
func (c *Core) startupTimeout(now time.Time) {
	e := &c.en
	if !e.startup || now.Before(e.startupAt) {
		return
	}
	if e.mentor != nil {
		e.mentor.syncing = false
		e.mentor = nil
		c.endStartup("mentor silent")
		return
	}
	c.endStartup("no mentor found")
}

// mentorProgress ends the start-up phase once the mentor's list and table
// have both arrived.
func (c *Core) mentorProgress(now time.Time, p *peer) {
	e := &c.en
	if !e.startup || p != e.mentor {
		return
	}
	e.startupAt = now.Add(e.cfg.MentorTimeout)
	if p.listDone && !p.syncing {
		c.endStartup("mentor's list and table arrived")
	}
}

// syncFailed gives up the table request to p (rejected, an error, or its
// association lost). A mentor that failed is replaced by another peer
// that has not failed as mentor yet, if there is one; when every peer
// has (registrars that start together all refuse, RFC 5353 §3.4-3.5),
// the start-up phase ends.
func (c *Core) syncFailed(now time.Time, p *peer) {
	e := &c.en
	p.syncing = false
	if !e.startup || p != e.mentor {
		return
	}
	e.mentor = nil
	p.failedMentor = true
	for _, q := range e.peers {
		if q != p && q.assoc != 0 && !q.failedMentor {
			c.chooseMentor(now, q)
			return
		}
	}
	c.endStartup("mentor failed")
}

// maxPagePEs keeps a page within what a receiver with the default
// tlv.Limits parses: each PE takes up to about ten parameters (the PE, two
// transports with their addresses, the policy).
const maxPagePEs = tlv.DefaultMaxParams / 12

// onTableRequest answers a HANDLE_TABLE_REQUEST (RFC 5353 §3.5), with
// R=1 for a whole table while we are still starting ourselves; else the
// next page from the requester's cursor, all PEs or (W=1) only ours, with
// M=1 while more follow. A page holds PageSize PEs, fewer when they would
// not fit the 16-bit Message Length, and at most maxPagePEs.
func (c *Core) onTableRequest(now time.Time, pa *passoc, p *peer, m *tlv.HandleTableRequest) {
	e := &c.en
	e.stats.TableRequests++
	if e.startup && !m.OwnChildrenOnly {
		// Our own table is not complete yet: refuse (R=1), so that the
		// requester takes another mentor (RFC 5353 §3.4-3.5). Our own
		// PEs (W=1) are complete: we accept none while starting.
		c.sendENRP(pa.id, &tlv.HandleTableResponse{ENRPHeader: tlv.ENRPHeader{SenderID: c.id, ReceiverID: p.id}, Reject: true})
		return
	}
	cs := &p.cursor
	if !cs.active || cs.w != m.OwnChildrenOnly {
		*cs = cursorState{active: true, w: m.OwnChildrenOnly}
	}
	var filter uint32
	if m.OwnChildrenOnly {
		filter = c.id
	}
	resp := &tlv.HandleTableResponse{ENRPHeader: tlv.ENRPHeader{SenderID: c.id, ReceiverID: p.id}}
	var next handlespace.Cursor
	for n := min(e.cfg.PageSize, maxPagePEs); ; n = max(1, n/2) {
		resp.Pools, next, resp.MoreToSend = c.store.Page(cs.at, n, filter)
		if resp.Len() <= tlv.MaxMessageLen || n == 1 {
			break
		}
	}
	if resp.MoreToSend {
		cs.at = next
	} else {
		*cs = cursorState{}
	}
	c.sendENRP(pa.id, resp)
}

// onTableResponse takes in a page of a table we asked for (RFC 5353
// §3.5): each PE as an ADD_PE from its home; at M=1 the next page is
// asked for; at the last page an audit sweeps the PEs still marked
// (§3.7) and a mentor's sync may end the start-up phase. Unrequested
// responses are dropped.
func (c *Core) onTableResponse(now time.Time, p *peer, m *tlv.HandleTableResponse) {
	e := &c.en
	if !p.syncing {
		e.stats.TableUnrequested++
		return
	}
	if m.Reject {
		c.syncFailed(now, p)
		return
	}
	e.stats.TablePagesIn++
	for i := range m.Pools {
		pool := &m.Pools[i]
		for j := range pool.PEs {
			pe := pool.PEs[j]
			why := ""
			if p.syncW && pe.HomeServerID != p.id {
				why = "W=1 table entry of another home"
			} else {
				why = c.storeForeign(now, pool.PoolHandle, pe)
			}
			if why != "" {
				e.stats.UpdatesRefused++
			}
		}
	}
	if m.MoreToSend {
		c.requestTable(now, p, p.syncW)
		c.mentorProgress(now, p)
		return
	}
	p.syncing = false
	if p.syncW {
		n := c.store.Sweep(now, p.id, nil)
		e.stats.AuditRemoved += uint64(n)
	}
	c.mentorProgress(now, p)
}

// onListRequest answers a LIST_REQUEST with our peers' Server
// Information (RFC 5353 §3.3), as many as fit.
func (c *Core) onListRequest(pa *passoc, p *peer) {
	c.en.stats.ListRequests++
	resp := &tlv.ListResponse{ENRPHeader: tlv.ENRPHeader{SenderID: c.id, ReceiverID: p.id}}
	for _, q := range c.en.peers {
		if q == p || q.info.Transport.Port == 0 {
			continue
		}
		resp.Servers = append(resp.Servers, q.info)
		if resp.Len() > tlv.MaxMessageLen {
			resp.Servers = resp.Servers[:len(resp.Servers)-1]
			break
		}
	}
	c.sendENRP(pa.id, resp)
}

// onListResponse learns the peers of a peer (RFC 5353 §3.3): each one not
// known yet is dialled.
func (c *Core) onListResponse(now time.Time, p *peer, m *tlv.ListResponse) {
	var from AssocInfo
	if pa := c.en.assocs[p.assoc]; pa != nil {
		from = pa.info
	}
	if !m.Reject {
		for _, s := range m.Servers {
			if s.ServerID == 0 || s.ServerID == c.id {
				continue
			}
			if addr, ok := enrpAddr(s.Transport, from.Remote); ok {
				c.learn(now, s.ServerID, addr)
			}
		}
	}
	p.listDone = true
	c.mentorProgress(now, p)
}
