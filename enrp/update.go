package enrp

// Handle update propagation (RFC 5353 §3.6): ENRP_HANDLE_UPDATE to every
// peer for every change to a PE this registrar owns, and the updates of
// the peers applied to the store.

import (
	"context"
	"log/slog"
	"time"

	"github.com/go-rserpool/rserpool/handlespace"
	"github.com/go-rserpool/rserpool/tlv"
)

// updateOwned sends ENRP_HANDLE_UPDATE(action) about PE key, one of
// ours, to every peer with an association up (RFC 5353 §3.6). For ADD_PE
// the PE is read from the store; for DEL_PE pe is what the store held
// (RSPLIB carries the full Pool Element in a DEL_PE too).
func (c *Core) updateOwned(key peKey, action tlv.UpdateAction, pe *tlv.PoolElement) {
	if len(c.en.peers) == 0 {
		return
	}
	var el tlv.PoolElement
	switch {
	case action == tlv.UpdateAddPE:
		var ok bool
		if el, _, ok = c.store.Lookup(tlv.PoolHandle(key.handle), key.id); !ok {
			return
		}
	case pe != nil:
		el = handlespace.ClonePoolElement(*pe)
	default:
		return
	}
	el.HomeServerID = c.id
	h := tlv.PoolHandle(key.handle)
	for _, p := range c.en.peers {
		if p.assoc == 0 {
			continue
		}
		c.en.stats.UpdatesSent++
		c.sendENRP(p.assoc, &tlv.HandleUpdate{
			ENRPHeader: tlv.ENRPHeader{SenderID: c.id, ReceiverID: p.id},
			Action:     action,
			PoolHandle: h,
			PE:         el,
		})
	}
}

// onHandleUpdate applies a peer's update (RFC 5353 §3.6). Only the
// home registrar speaks for a PE: an ADD_PE must name the sender as the
// PE's home, a DEL_PE may remove only a PE whose stored home is the
// sender, and nobody else's update touches a PE this registrar owns.
// The policy consistency rules of a registration apply (RFC 5352 §3.2).
// The T flag (draft-dreibholz-rserpool-enrp-takeover) is ignored.
func (c *Core) onHandleUpdate(now time.Time, p *peer, m *tlv.HandleUpdate) {
	var why string
	switch m.Action {
	case tlv.UpdateAddPE:
		if m.PE.HomeServerID != p.id {
			why = "ADD_PE for a PE of another home"
			break
		}
		why = c.storeForeign(now, m.PoolHandle, m.PE)
	case tlv.UpdateDelPE:
		why = c.deleteForeign(now, p.id, m.PoolHandle, m.PE.ID)
	default:
		why = "unknown update action"
	}
	if why != "" {
		c.en.stats.UpdatesRefused++
		if c.log.Enabled(context.Background(), slog.LevelDebug) {
			c.log.Debug("enrp: handle update refused", "server", p.id, "pool", m.PoolHandle, "pe", tlv.PEIdentifier(m.PE.ID), "why", why)
		}
		return
	}
	c.en.stats.UpdatesApplied++
}

// storeForeign stores a PE whose home is another registrar (from an
// update or a table response). It has no expiry: a live peer's PEs are
// its to remove (RFC 5353 §3.6). It returns why it refused, or "".
func (c *Core) storeForeign(now time.Time, h tlv.PoolHandle, pe tlv.PoolElement) string {
	home := pe.HomeServerID
	if home == 0 || home == c.id {
		return "PE claims this registrar as home"
	}
	if c.sup[peKey{string(h), pe.ID}] != nil {
		return "PE owned by this registrar"
	}
	if _, _, ok := validatePE(&pe); !ok {
		return "invalid PE"
	}
	if c.store.Owned(home) >= c.en.cfg.MaxPEsPerPeer {
		if _, _, ok := c.store.Lookup(h, pe.ID); !ok {
			return "MaxPEsPerPeer reached"
		}
	}
	stripUnknown(&pe)
	if _, err := c.store.Register(now, h, &pe, time.Time{}); err != nil {
		return err.Error()
	}
	return ""
}

// deleteForeign removes a PE of home from on its home's word.
func (c *Core) deleteForeign(now time.Time, from uint32, h tlv.PoolHandle, id uint32) string {
	if c.sup[peKey{string(h), id}] != nil {
		return "DEL_PE for a PE owned by this registrar"
	}
	pe, _, ok := c.store.Lookup(h, id)
	if !ok {
		return "" // already gone: nothing to do
	}
	if pe.HomeServerID != from {
		return "DEL_PE for a PE of another home"
	}
	c.store.Deregister(now, h, id)
	return ""
}
