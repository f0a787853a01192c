package enrp

// The takeover procedure (RFC 5353 §3.9) in the Core: the takeovers
// sub-state-machine (takeover.go) decides; this file sends its messages,
// moves the PEs and supervises the PEs taken over.
//
// A PE taken over has no association to this registrar yet: the core asks
// the host to connect to the PE's ASAP transport (the address it
// registered from, which the handle update carried) with [ConnectPeer],
// one association per address, and on HandleConnected sends each PE of
// that address an ASAP_ENDPOINT_KEEP_ALIVE with H=1 (RFC 5352 §3.7): the
// PE adopts the new home and acks. A PE whose association fails, or that
// does not ack within KeepAliveTimeout, is removed like any PE of ours
// that fails a keep-alive.

import (
	"context"
	"log/slog"
	"time"

	"github.com/go-rserpool/rserpool/asap"
	"github.com/go-rserpool/rserpool/tlv"
	"github.com/go-rserpool/rserpool/transport"
)

// peDial is an association the core asked for to reach PEs it took
// over.
type peDial struct {
	addr transport.Addr
	kas  []*tlv.EndpointKeepAlive
}

// presenceFromPeer ends every takeover of a peer that shows it lives.
func (c *Core) presenceFromPeer(now time.Time, p *peer) {
	c.to.onPresence(now, p.id)
}

// presumedDead runs when peer id was presumed dead and left the table
// (RFC 5353 §3.2): the takeovers that waited for its ACK, or that it ran,
// are settled, and our own takeover of it starts if it owns PEs here and
// nobody we acknowledged takes it over already.
// The INIT_TAKEOVER goes to the target too, over last (its last
// association, if still up): if it lives it answers with a Presence.
func (c *Core) presumedDead(now time.Time, id uint32, last AssocID) {
	c.peerGone(now, id)
	c.startTakeover(now, id, last)
}

// peerGone tells the takeovers that peer id left the table.
func (c *Core) peerGone(now time.Time, id uint32) {
	r := c.to.peerDown(now, id)
	for _, t := range r.Done {
		c.finishTakeover(now, t)
	}
	for _, t := range r.Orphaned {
		if c.en.peers[t] == nil {
			c.startTakeover(now, t, 0)
		}
	}
}

// startTakeover sends ENRP_INIT_TAKEOVER(target) to every peer
// (RFC 5353 §3.9) when the takeovers agree to start one.
func (c *Core) startTakeover(now time.Time, target uint32, targetAssoc AssocID) {
	peers := make([]uint32, 0, len(c.en.peers))
	for id := range c.en.peers {
		peers = append(peers, id)
	}
	sortIDs(peers)
	r := c.to.start(now, target, c.store.Owned(target), peers)
	if !r.Started {
		return
	}
	c.out = append(c.out, PeerEvent{Kind: TakeoverStarted, ServerID: target, PEs: c.store.Owned(target)})
	if c.log.Enabled(context.Background(), slog.LevelDebug) {
		c.log.Debug("enrp: takeover started", "target", target, "pes", c.store.Owned(target), "peers", len(r.Init))
	}
	if _, ok := c.en.assocs[targetAssoc]; ok && targetAssoc != 0 {
		c.sendENRP(targetAssoc, &tlv.InitTakeover{ENRPHeader: tlv.ENRPHeader{SenderID: c.id, ReceiverID: target}, TargetID: target})
	}
	for _, id := range r.Init {
		if p := c.en.peers[id]; p != nil && id != target {
			c.sendENRP(p.assoc, &tlv.InitTakeover{ENRPHeader: tlv.ENRPHeader{SenderID: c.id, ReceiverID: id}, TargetID: target})
		}
	}
	if r.Done {
		c.finishTakeover(now, target)
	}
}

// finishTakeover completes our takeover of target (RFC 5353 §3.9):
// ENRP_TAKEOVER_SERVER to every peer, its PEs ours, and each asked to
// adopt us with an H=1 keep-alive.
func (c *Core) finishTakeover(now time.Time, target uint32) {
	for _, p := range c.en.peers {
		c.sendENRP(p.assoc, &tlv.TakeoverServer{ENRPHeader: tlv.ENRPHeader{SenderID: c.id, ReceiverID: p.id}, TargetID: target})
	}
	kas := adoptPEs(now, c.store, target, c.id)
	if t := c.en.peers[target]; t != nil {
		c.dropPeer(t)
	}
	type dialing struct {
		d  *peDial
		id AssocID
	}
	byAddr := make(map[transport.Addr]dialing)
	kind := c.dialKind()
	for _, ka := range kas {
		key := peKey{string(ka.Msg.PoolHandle), ka.PE.ID}
		tr := ka.PE.ASAPTransport
		if tr.Type == 0 {
			tr = ka.PE.UserTransport
		}
		addr, err := asap.AddrOf(tr, kind)
		if err != nil {
			// Nowhere to reach it: it cannot be supervised (the peers'
			// next audit of us drops it there too, RFC 5353 §3.7).
			c.store.Deregister(now, ka.Msg.PoolHandle, ka.PE.ID)
			continue
		}
		dl, ok := byAddr[addr]
		if !ok {
			dl = dialing{&peDial{addr: addr}, c.en.nextID}
			c.en.nextID++
			byAddr[addr] = dl
			c.en.peDials[dl.id] = dl.d
			c.out = append(c.out, ConnectPeer{Assoc: dl.id, Addr: addr, PE: true})
		}
		dl.d.kas = append(dl.d.kas, ka.Msg)
		st := &supPE{key: key, assoc: dl.id, idx: -1, waiting: true}
		c.sup[key] = st
		// Until the association is up and the PE acks: one keep-alive
		// timeout plus the time a dial may take (RedialMax bounds it).
		c.timers.set(st, now.Add(c.cfg.KeepAliveTimeout+c.en.cfg.RedialMax))
		life := max(time.Duration(ka.PE.RegistrationLife)*time.Millisecond, c.cfg.KeepAliveTimeout)
		c.store.SetExpiry(now, ka.Msg.PoolHandle, ka.PE.ID, now.Add(life))
	}
	c.out = append(c.out, PeerEvent{Kind: TakeoverDone, ServerID: target, PEs: len(kas)})
	if c.log.Enabled(context.Background(), slog.LevelDebug) {
		c.log.Debug("enrp: takeover done", "target", target, "pes", len(kas))
	}
}

// dialKind is the transport kind of the addresses the core dials.
func (c *Core) dialKind() transport.Kind {
	if len(c.en.cfg.ENRPAddrs) > 0 {
		return c.en.cfg.ENRPAddrs[0].Kind
	}
	for _, pa := range c.en.assocs {
		if pa.info.Remote.IsValid() {
			return pa.info.Remote.Kind
		}
	}
	for _, a := range c.assocs {
		if a.info.Remote.IsValid() {
			return a.info.Remote.Kind
		}
	}
	return transport.KindSCTP
}

// peDialed handles HandleConnected for an association to PEs taken over:
// it becomes an ASAP association of those PEs, and each gets its H=1
// keep-alive.
func (c *Core) peDialed(now time.Time, id AssocID, info AssocInfo, d *peDial) {
	delete(c.en.peDials, id)
	a := &assoc{id: id, info: info, tokens: float64(c.cfg.AssocBurst), last: now, pes: make(map[peKey]struct{})}
	c.assocs[id] = a
	for _, ka := range d.kas {
		key := peKey{string(ka.PoolHandle), ka.PEID}
		st := c.sup[key]
		if st == nil || st.assoc != id {
			continue
		}
		a.pes[key] = struct{}{}
		c.charge(a, st)
		st.waiting = true
		c.timers.set(st, now.Add(c.cfg.KeepAliveTimeout))
		c.stats.KeepAlivesSent++
		c.send(id, ka)
	}
	if len(a.pes) == 0 {
		c.idleTouch(now, a)
	}
}

// peDialFailed removes the PEs an association that failed was to reach.
func (c *Core) peDialFailed(now time.Time, id AssocID, d *peDial) {
	delete(c.en.peDials, id)
	for _, ka := range d.kas {
		key := peKey{string(ka.PoolHandle), ka.PEID}
		if st := c.sup[key]; st != nil && st.assoc == id {
			c.stats.KeepAliveTimeouts++
			c.removeOwned(key, RemovedKeepAliveTimeout)
		}
	}
}

// onInitTakeover answers ENRP_INIT_TAKEOVER (RFC 5353 §3.9): about us,
// a Presence to every peer shows we live; otherwise an ACK when the
// takeovers agree.
func (c *Core) onInitTakeover(now time.Time, p *peer, m *tlv.InitTakeover) {
	r := c.to.onInit(now, p.id, m.TargetID)
	if r.Alive {
		for _, q := range c.en.peers {
			c.sendPresence(q.assoc, q.id, false)
		}
		if c.en.multicast {
			c.en.stats.PresencesSent++
			c.out = append(c.out, Multicast{Msg: c.presence(0, false)})
		}
		return
	}
	if r.Ack {
		c.sendENRP(p.assoc, &tlv.InitTakeoverAck{ENRPHeader: tlv.ENRPHeader{SenderID: c.id, ReceiverID: p.id}, TargetID: m.TargetID})
	}
}

// onInitTakeoverAck counts an ACK; the last one completes the takeover.
func (c *Core) onInitTakeoverAck(now time.Time, p *peer, m *tlv.InitTakeoverAck) {
	if c.to.onAck(now, p.id, m.TargetID) {
		c.finishTakeover(now, m.TargetID)
	}
}

// onTakeoverServer: the sender is the new home of the target's PEs
// (RFC 5353 §3.9); they keep no expiry (their home lives), and the target
// leaves the peer table. About us, the host is told (TakenOverBy).
func (c *Core) onTakeoverServer(now time.Time, p *peer, m *tlv.TakeoverServer) {
	if m.TargetID == c.id {
		c.out = append(c.out, PeerEvent{Kind: TakenOverBy, ServerID: p.id, PEs: c.Owned()})
		return
	}
	if m.TargetID == p.id || m.TargetID == 0 {
		return
	}
	c.to.onTakeoverServer(now, p.id, m.TargetID)
	var keys []peKey
	c.store.ForEachOwnedBy(m.TargetID, func(h tlv.PoolHandle, pe tlv.PoolElement) bool {
		keys = append(keys, peKey{string(h), pe.ID})
		return true
	})
	c.store.TransferOwner(now, m.TargetID, p.id)
	for _, k := range keys {
		c.store.SetExpiry(now, tlv.PoolHandle(k.handle), k.id, time.Time{})
	}
	if t := c.en.peers[m.TargetID]; t != nil {
		c.dropPeer(t)
		c.peerGone(now, m.TargetID)
	}
}

// takeoverTimeout runs TAKEOVER-EXPIRY: a takeover that did not get
// every ACK gives up (as RSPLIB), and the target's PEs are left to their
// registration life from now; one we acknowledged that never finished
// lets us start our own.
func (c *Core) takeoverTimeout(now time.Time) {
	r := c.to.timeout(now)
	for _, t := range r.Expired {
		c.expireOrphans(now, t)
	}
	for _, t := range r.Forgotten {
		if c.en.peers[t] == nil {
			c.startTakeover(now, t, 0)
		}
	}
}

// expireOrphans gives the PEs of a dead home nobody took over an expiry
// at the end of their registration life from now, as RSPLIB's
// handlespace timers would remove them.
func (c *Core) expireOrphans(now time.Time, home uint32) {
	type item struct {
		h    tlv.PoolHandle
		id   uint32
		life time.Duration
	}
	var items []item
	c.store.ForEachOwnedBy(home, func(h tlv.PoolHandle, pe tlv.PoolElement) bool {
		life := max(time.Duration(pe.RegistrationLife)*time.Millisecond, time.Millisecond)
		items = append(items, item{append(tlv.PoolHandle(nil), h...), pe.ID, life})
		return true
	})
	for _, it := range items {
		c.store.SetExpiry(now, it.h, it.id, now.Add(it.life))
	}
}

func (c *Core) takeoverDeadline(earlier func(time.Time)) {
	earlier(c.to.nextDeadline())
}
