package enrp

// The hooks of the takeover procedure (RFC 5353 §3.9), with the minimal
// behaviour of a registrar that does not take over itself: it
// acknowledges every INIT_TAKEOVER not about itself, answers one about
// itself with a Presence to every peer, follows TAKEOVER_SERVER, and
// leaves the PEs of a dead peer to their registration life. The takeover
// sub-state-machine replaces these.

import (
	"time"

	"github.com/go-rserpool/rserpool/tlv"
)

// presenceFromPeer is called for every Presence from a peer in the
// table (a Presence from a takeover's target cancels it).
func (c *Core) presenceFromPeer(now time.Time, p *peer) {}

// presumedDead is called when peer id was presumed dead and left the
// table: without a takeover its PEs expire at the end of their
// registration life from now, as RSPLIB's handlespace timers would.
func (c *Core) presumedDead(now time.Time, id uint32) {
	type item struct {
		h    tlv.PoolHandle
		id   uint32
		life time.Duration
	}
	var items []item
	c.store.ForEachOwnedBy(id, func(h tlv.PoolHandle, pe tlv.PoolElement) bool {
		life := max(time.Duration(pe.RegistrationLife)*time.Millisecond, time.Millisecond)
		items = append(items, item{append(tlv.PoolHandle(nil), h...), pe.ID, life})
		return true
	})
	for _, it := range items {
		c.store.SetExpiry(now, it.h, it.id, now.Add(it.life))
	}
}

// onInitTakeover: about ourselves, we are alive and say so (RFC 5353
// §3.9); otherwise acknowledged.
func (c *Core) onInitTakeover(now time.Time, p *peer, m *tlv.InitTakeover) {
	if m.TargetID == c.id {
		for _, q := range c.en.peers {
			c.sendPresence(q.assoc, q.id, false)
		}
		return
	}
	c.sendENRP(p.assoc, &tlv.InitTakeoverAck{ENRPHeader: tlv.ENRPHeader{SenderID: c.id, ReceiverID: p.id}, TargetID: m.TargetID})
}

func (c *Core) onInitTakeoverAck(now time.Time, p *peer, m *tlv.InitTakeoverAck) {}

// onTakeoverServer: the sender is the new home of the target's PEs
// (RFC 5353 §3.9); the target leaves the peer table.
func (c *Core) onTakeoverServer(now time.Time, p *peer, m *tlv.TakeoverServer) {
	if m.TargetID == c.id || m.TargetID == p.id || m.TargetID == 0 {
		return
	}
	n := c.store.TransferOwner(now, m.TargetID, p.id)
	if t := c.en.peers[m.TargetID]; t != nil {
		c.dropPeer(t)
	}
	c.out = append(c.out, PeerEvent{Kind: TakenOverBy, ServerID: p.id, PEs: n})
}

func (c *Core) takeoverDeadline(earlier func(time.Time)) {}
