package enrp

// ENRP peers (RFC 5353 §3.1-3.3, §3.8): the peer table, Presence, the
// MAX-TIME-LAST-HEARD probe and MAX-TIME-NO-RESPONSE, the dials to static
// peers, ENRP_ERROR, and the dispatch of every ENRP message.

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"time"

	"github.com/go-rserpool/rserpool/tlv"
	"github.com/go-rserpool/rserpool/transport"
)

// ENRPStats counts what the ENRP side of a [Core] did.
type ENRPStats struct {
	PresencesSent     uint64 // ENRP_PRESENCEs sent (unicast and multicast)
	PresencesReceived uint64 // ENRP_PRESENCEs taken in
	PeersAdded        uint64 // peers that entered the peer table
	PeersDead         uint64 // peers presumed dead (MAX-TIME-NO-RESPONSE)
	PeersRefused      uint64 // peers refused by Accept, StaticOnly or MaxPeers
	Probes            uint64 // Presences with R=1 sent after MAX-TIME-LAST-HEARD
	UpdatesSent       uint64 // ENRP_HANDLE_UPDATEs sent
	UpdatesApplied    uint64 // ENRP_HANDLE_UPDATEs applied
	UpdatesRefused    uint64 // updates refused: our PE, not the sender's, policy rules, limits
	TableRequests     uint64 // ENRP_HANDLE_TABLE_REQUESTs answered
	TablePagesIn      uint64 // ENRP_HANDLE_TABLE_RESPONSE pages taken in
	TableUnrequested  uint64 // table responses nobody asked for, dropped
	Audits            uint64 // audits started (checksum mismatch, RFC 5353 §3.7)
	AuditRemoved      uint64 // PEs removed by the sweep at an audit's end
	ListRequests      uint64 // ENRP_LIST_REQUESTs answered
	ErrorsSent        uint64 // ENRP_ERRORs sent
	ErrorsReceived    uint64 // ENRP_ERRORs received
	Malformed         uint64 // ENRP messages that did not parse
	Dropped           uint64 // ENRP messages ignored: own ID, misrouted, unknown sender, flood
	Dials             uint64 // ConnectPeers emitted
}

// ENRPStats returns the ENRP counters.
func (c *Core) ENRPStats() ENRPStats { return c.en.stats }

// PeerInfo describes one peer of the table, for the host's view.
type PeerInfo struct {
	ServerID  uint32
	Assoc     AssocID // 0 when no association is up
	LastHeard time.Time
	Checksum  uint16 // the last one it advertised
	Probing   bool   // MAX-TIME-NO-RESPONSE runs
	Mentor    bool
}

// Peers returns the peer table.
func (c *Core) Peers() []PeerInfo {
	out := make([]PeerInfo, 0, len(c.en.peers))
	for _, p := range c.en.peers {
		out = append(out, PeerInfo{ServerID: p.id, Assoc: p.assoc, LastHeard: p.lastHeard, Checksum: p.checksum, Probing: p.probing, Mentor: p == c.en.mentor})
	}
	return out
}

// InStartup reports whether the registrar is still in its start-up
// phase (RFC 5353 §3.4), refusing registrations.
func (c *Core) InStartup() bool { return c.en.startup }

// enrpState is the ENRP part of the Core.
type enrpState struct {
	cfg       PeersConfig
	multicast bool // Peers.Announcer set: Presence goes to the group too
	started   bool

	peers   map[uint32]*peer
	assocs  map[AssocID]*passoc // associations that carry ENRP
	dialers []*dialer
	nextID  AssocID // next AssocID for ConnectPeer, from 1<<63

	heartbeatAt time.Time

	startup   bool
	startupAt time.Time // end of the mentor search, or of the mentor's silence
	mentor    *peer

	peDials map[AssocID]*peDial // dials to PEs taken over (takeover_core.go)

	stats ENRPStats
}

// peer is one entry of the peer table (RFC 5353 §3.8).
type peer struct {
	id        uint32
	assoc     AssocID // where messages to it go; 0: none up
	info      tlv.ServerInfo
	lastHeard time.Time
	due       time.Time // MAX-TIME-LAST-HEARD, or MAX-TIME-NO-RESPONSE when probing
	probing   bool
	checksum  uint16

	// Our table request to it (sync.go, audit.go).
	syncing bool
	syncW   bool
	syncDue time.Time // the answer's deadline
	// pageDue: the one answer to our last table request is yet to come;
	// it is not charged to the association's MaxENRPRate (the pages of a
	// sync come as fast as we ask for them).
	pageDue bool
	// Its table request to us: the continuation (sync.go).
	cursor   cursorState
	listDone bool // its LIST_RESPONSE came (mentor)
	// failedMentor: it was our mentor in the start-up phase and the
	// table request failed (refused with R=1, an error, no answer): it is
	// not asked again in this start-up phase.
	failedMentor bool
}

// passoc is one association that carries ENRP.
type passoc struct {
	id     AssocID
	info   AssocInfo
	peer   *peer   // nil until a Presence names the sender
	dialer *dialer // the dial it came from, nil if the host accepted it
	rate   bucket
}

// dialer keeps an association up to one configured or learned peer
// address.
type dialer struct {
	addr     transport.Addr
	static   bool
	assoc    AssocID // the dial in progress or the association up; 0: none
	up       bool
	redialAt time.Time
	backoff  time.Duration
}

const firstCoreAssoc AssocID = 1 << 63

func (c *Core) initPeers(cfg PeersConfig) error {
	pc, err := cfg.withDefaults()
	if err != nil {
		return err
	}
	c.en = enrpState{
		cfg:       pc,
		multicast: pc.Announcer != nil,
		peers:     make(map[uint32]*peer),
		assocs:    make(map[AssocID]*passoc),
		nextID:    firstCoreAssoc,
		peDials:   make(map[AssocID]*peDial),
		startup:   pc.MentorTimeout > 0 && (len(pc.Static) > 0 || pc.Announcer != nil),
	}
	c.to = newTakeovers(c.id, pc.TakeoverExpiry)
	for _, a := range pc.Static {
		c.en.dialers = append(c.en.dialers, &dialer{addr: a, static: true})
	}
	return nil
}

// startPeers runs once, at the core's first call: dials the static
// peers, starts the heartbeat and the mentor search.
func (c *Core) startPeers(now time.Time) {
	e := &c.en
	if e.started {
		return
	}
	e.started = true
	e.heartbeatAt = now
	if e.startup {
		e.startupAt = now.Add(e.cfg.MentorTimeout)
	}
	for _, d := range e.dialers {
		c.dial(now, d)
	}
}

func (c *Core) dial(now time.Time, d *dialer) {
	e := &c.en
	id := e.nextID
	e.nextID++
	d.assoc, d.up = id, false
	d.redialAt = time.Time{}
	e.assocs[id] = &passoc{id: id, dialer: d}
	e.stats.Dials++
	c.out = append(c.out, ConnectPeer{Assoc: id, Addr: d.addr})
}

// redial schedules the next dial of d with a doubling back-off.
func (c *Core) redial(now time.Time, d *dialer) {
	d.assoc, d.up = 0, false
	if !d.static {
		c.dropDialer(d)
		return
	}
	switch {
	case d.backoff == 0:
		d.backoff = c.en.cfg.RedialMin
	default:
		d.backoff = min(2*d.backoff, c.en.cfg.RedialMax)
	}
	d.redialAt = now.Add(d.backoff)
}

func (c *Core) dropDialer(d *dialer) {
	ds := c.en.dialers
	for i, x := range ds {
		if x == d {
			c.en.dialers = append(ds[:i], ds[i+1:]...)
			return
		}
	}
}

// HandleConnected tells the core that the association of a ConnectPeer
// came up: it sends the peer a Presence with R=1 (RFC 5353 §3.2), whose
// answer names the peer.
func (c *Core) HandleConnected(now time.Time, id AssocID, info AssocInfo) {
	c.start(now)
	if d := c.en.peDials[id]; d != nil {
		c.peDialed(now, id, info, d)
		return
	}
	pa := c.en.assocs[id]
	if pa == nil || pa.dialer == nil || pa.dialer.assoc != id {
		return
	}
	pa.info = info
	pa.dialer.up = true
	pa.dialer.backoff = 0
	c.sendPresence(id, 0, true)
}

// HandleConnectFailed tells the core that the dial of a ConnectPeer
// failed: a static peer is dialled again after a back-off.
func (c *Core) HandleConnectFailed(now time.Time, id AssocID, err error) {
	c.start(now)
	if d := c.en.peDials[id]; d != nil {
		c.peDialFailed(now, id, d)
		return
	}
	pa := c.en.assocs[id]
	if pa == nil || pa.dialer == nil {
		return
	}
	delete(c.en.assocs, id)
	if pa.dialer.assoc == id {
		c.redial(now, pa.dialer)
	}
	if c.log.Enabled(context.Background(), slog.LevelDebug) {
		c.log.Debug("enrp: peer dial failed", "addr", pa.dialer.addr, "err", err)
	}
}

// peerAssocLost handles the loss of an ENRP association (from
// HandleLost). The peer stays in the table until MAX-TIME-LAST-HEARD and
// MAX-TIME-NO-RESPONSE say it is dead (RFC 5353 §3.2).
func (c *Core) peerAssocLost(now time.Time, id AssocID) {
	pa := c.en.assocs[id]
	if pa == nil {
		return
	}
	delete(c.en.assocs, id)
	if p := pa.peer; p != nil && p.assoc == id {
		p.assoc = 0
		p.cursor = cursorState{}
		if p.syncing {
			c.syncFailed(now, p) // its answer cannot come
		}
		for _, o := range c.en.assocs { // another association to it?
			if o.peer == p {
				p.assoc = o.id
				break
			}
		}
	}
	if d := pa.dialer; d != nil && d.assoc == id {
		c.redial(now, d)
	}
}

// HandleENRP parses one ENRP message (SCTP PPID 12) received on
// association id and handles it. A message that does not parse is
// answered with ENRP_ERROR when its error's action asks for a report
// (RFC 5353 §2.10, RFC 5354 §2) and dropped otherwise; nothing else
// changes. b may be aliased by the outbox.
func (c *Core) HandleENRP(now time.Time, id AssocID, b []byte) {
	c.start(now)
	pa := c.en.assocs[id]
	if pa == nil {
		a := c.assocs[id]
		if a == nil {
			c.en.stats.Dropped++
			return
		}
		// An association the host accepted carries ENRP from now on. The
		// idle reaper keeps watching it until a peer is named on it.
		pa = &passoc{id: id, info: a.info}
		c.en.assocs[id] = pa
	}
	if !c.uncharged(pa, b) && !pa.rate.take(now, c.en.cfg.MaxENRPRate) {
		c.en.stats.Dropped++
		return
	}
	m, err := c.cfg.Limits.ParseENRP(b)
	if err != nil {
		c.enrpMalformed(id, pa, err)
		return
	}
	c.handleENRP(now, pa, m)
}

// uncharged reports whether b is a message MaxENRPRate does not charge:
// a step of a table transfer (RFC 5353 §3.5) on pa — the one page we
// asked for last, or a peer's request for the next page of a table it is
// being sent (its cursor active, same W) — or a HANDLE_UPDATE (§3.6) from
// a named peer. The pages of a sync come as fast as the round trips allow,
// and a charged request starts at most one pass over the table; a peer's
// updates come as fast as its PEs register, each changes at most one PE
// of that peer, and what they can make us store is bounded by
// MaxPEsPerPeer. Dropping either would leave the handlespaces apart until
// the next audit, a heartbeat cycle later.
func (c *Core) uncharged(pa *passoc, b []byte) bool {
	p := pa.peer
	if p == nil || len(b) < 2 {
		return false
	}
	switch tlv.ENRPType(b[0]) {
	case tlv.ENRPHandleTableResponse:
		if p.pageDue {
			p.pageDue = false
			return true
		}
	case tlv.ENRPHandleTableRequest:
		return p.cursor.active && p.cursor.w == (b[1]&tlv.FlagOwnChildrenOnly != 0)
	case tlv.ENRPHandleUpdate:
		return true
	}
	return false
}

// HandleENRPMulticast handles a datagram from the ENRP multicast group
// (RFC 5353 §3.2): a Presence of an unknown registrar makes the core
// connect to the ENRP address in its Server Information; one of a known
// peer counts as hearing from it. Presences by multicast start no audit
// (as RSPLIB), and nothing is ever answered on the group.
func (c *Core) HandleENRPMulticast(now time.Time, from transport.Addr, b []byte) {
	c.start(now)
	m, err := c.cfg.Limits.ParseENRP(b)
	if err != nil {
		c.en.stats.Malformed++
		return
	}
	pr, ok := m.(*tlv.Presence)
	if !ok || pr.SenderID == c.id || pr.SenderID == 0 {
		c.en.stats.Dropped++
		return
	}
	c.en.stats.PresencesReceived++
	if p := c.en.peers[pr.SenderID]; p != nil {
		if p.assoc != 0 {
			c.heard(now, p)
		}
		return
	}
	if pr.Info == nil {
		return
	}
	addr, ok := enrpAddr(pr.Info.Transport, from)
	if !ok {
		return
	}
	c.learn(now, pr.SenderID, addr)
}

// learn dials a registrar known by ID and address (multicast Presence,
// LIST_RESPONSE) unless it is known, dialled already or refused.
func (c *Core) learn(now time.Time, id uint32, addr transport.Addr) {
	if id == c.id || c.en.peers[id] != nil || len(c.en.peers) >= c.en.cfg.MaxPeers || len(c.en.dialers) >= c.en.cfg.MaxPeers {
		return
	}
	if c.en.cfg.StaticOnly && len(c.en.cfg.Static) > 0 && !c.isStatic(addr) {
		return
	}
	for _, d := range c.en.dialers {
		if d.addr == addr {
			return
		}
	}
	d := &dialer{addr: addr}
	c.en.dialers = append(c.en.dialers, d)
	c.dial(now, d)
}

func (c *Core) isStatic(a transport.Addr) bool {
	for _, s := range c.en.cfg.Static {
		if s.AddrPort.Addr().Unmap() == a.AddrPort.Addr().Unmap() {
			return true
		}
	}
	return false
}

// enrpAddr is the first address of a Server Information's transport, or
// the multicast source with its port when that is all there is.
func enrpAddr(t tlv.Transport, from transport.Addr) (transport.Addr, bool) {
	if t.Port == 0 {
		return transport.Addr{}, false
	}
	var ip netip.Addr
	for _, a := range t.Addrs {
		if a = a.Unmap(); a.IsValid() && !a.IsUnspecified() {
			ip = a
			break
		}
	}
	if !ip.IsValid() {
		ip = from.AddrPort.Addr().Unmap()
	}
	if !ip.IsValid() {
		return transport.Addr{}, false
	}
	return transport.Addr{Kind: from.Kind, AddrPort: netip.AddrPortFrom(ip, t.Port)}, true
}

// enrpMalformed answers a message that did not parse (RFC 5354 §2).
func (c *Core) enrpMalformed(id AssocID, pa *passoc, err error) {
	c.en.stats.Malformed++
	var pe *tlv.ParseError
	if errors.As(err, &pe) && pe.Report() {
		oe := pe.OperationError()
		for i := range oe.Causes {
			oe.Causes[i].Info = append([]byte(nil), oe.Causes[i].Info...)
		}
		c.sendENRPError(id, pa, oe)
	}
	if c.log.Enabled(context.Background(), slog.LevelDebug) {
		c.log.Debug("enrp: malformed ENRP message", "assoc", id, "err", err)
	}
}

func (c *Core) sendENRPError(id AssocID, pa *passoc, oe *tlv.OperationError) {
	var to uint32
	if pa != nil && pa.peer != nil {
		to = pa.peer.id
	}
	m := &tlv.ENRPError{ENRPHeader: tlv.ENRPHeader{SenderID: c.id, ReceiverID: to}, Error: *oe}
	for m.Len() > tlv.MaxMessageLen && len(m.Error.Causes) > 0 {
		ca := &m.Error.Causes[0]
		if len(m.Error.Causes) > 1 {
			m.Error.Causes = m.Error.Causes[:1]
			continue
		}
		ca.Info = ca.Info[:max(0, len(ca.Info)-(m.Len()-tlv.MaxMessageLen)-3)]
	}
	c.en.stats.ErrorsSent++
	c.sendENRP(id, m)
}

func (c *Core) sendENRP(id AssocID, m tlv.ENRPMessage) {
	if id == 0 {
		return
	}
	if m.Len() > tlv.MaxMessageLen {
		c.stats.Oversize++
		return
	}
	c.out = append(c.out, SendENRP{Assoc: id, Msg: m})
}

// handleENRP dispatches one parsed ENRP message.
func (c *Core) handleENRP(now time.Time, pa *passoc, m tlv.ENRPMessage) {
	h := m.Header()
	if e, ok := m.(*tlv.ENRPError); ok && h.SenderID == c.id && pa.peer != nil &&
		(h.ReceiverID == 0 || h.ReceiverID == pa.peer.id) {
		// RSPLIB 3.4.4 answers with the offending message's header
		// unchanged (Sender's ID ours, Receiver's ID its own or 0). On a
		// known peer's association that is the peer's error report
		// (RFC 5353 §2.11), not our own message looping back.
		c.onENRPError(now, pa.peer, e)
		return
	}
	if h.SenderID == c.id || h.SenderID == 0 || (h.ReceiverID != 0 && h.ReceiverID != c.id) {
		// RFC 5353 §3: our own messages (a loop) and messages for
		// another server are ignored.
		c.en.stats.Dropped++
		return
	}
	if _, isErr := m.(*tlv.ENRPError); !isErr {
		// Skip-and-report parameters (action 11) are reported, and the
		// message is processed without them (RFC 5354 §2).
		if u := tlv.Unrecognized(m); u != nil {
			c.sendENRPError(pa.id, pa, tlv.UnrecognizedError(u))
		}
	}
	if pr, ok := m.(*tlv.Presence); ok {
		c.onPresence(now, pa, pr)
		return
	}
	p := c.en.peers[h.SenderID]
	if p == nil || (pa.peer != nil && pa.peer != p) {
		// RFC 5353 §3.2: a registrar introduces itself with a Presence
		// first; anything else from a stranger is dropped.
		c.en.stats.Dropped++
		return
	}
	if pa.peer == nil {
		if !c.accept(p.id, pa) {
			return
		}
		c.bind(pa, p)
	}
	switch m := m.(type) {
	case *tlv.HandleUpdate:
		c.onHandleUpdate(now, p, m)
	case *tlv.HandleTableRequest:
		c.onTableRequest(now, pa, p, m)
	case *tlv.HandleTableResponse:
		c.onTableResponse(now, p, m)
	case *tlv.ListRequest:
		c.onListRequest(pa, p)
	case *tlv.ListResponse:
		c.onListResponse(now, p, m)
	case *tlv.InitTakeover:
		c.onInitTakeover(now, p, m)
	case *tlv.InitTakeoverAck:
		c.onInitTakeoverAck(now, p, m)
	case *tlv.TakeoverServer:
		c.onTakeoverServer(now, p, m)
	case *tlv.ENRPError:
		c.onENRPError(now, p, m)
	}
}

// accept runs Accept, or the StaticOnly rule, for a new peer on pa.
func (c *Core) accept(id uint32, pa *passoc) bool {
	cfg := &c.en.cfg
	var ok bool
	switch {
	case cfg.Accept != nil:
		ok = cfg.Accept(id, pa.info) == nil
	case cfg.StaticOnly && len(cfg.Static) > 0:
		ok = (pa.dialer != nil && pa.dialer.static) || c.isStatic(pa.info.Remote)
	default:
		ok = true
	}
	if !ok {
		c.en.stats.PeersRefused++
		if c.log.Enabled(context.Background(), slog.LevelDebug) {
			c.log.Debug("enrp: peer refused", "server", id, "remote", pa.info.Remote)
		}
	}
	return ok
}

// onPresence runs RFC 5353 §3.2-3.3 for a Presence on an association.
func (c *Core) onPresence(now time.Time, pa *passoc, m *tlv.Presence) {
	e := &c.en
	e.stats.PresencesReceived++
	p := e.peers[m.SenderID]
	if pa.peer != nil && pa.peer != p {
		// The association speaks for another server: not this one's.
		e.stats.Dropped++
		return
	}
	created := false
	if p == nil {
		if len(e.peers) >= e.cfg.MaxPeers || !c.accept(m.SenderID, pa) {
			if len(e.peers) >= e.cfg.MaxPeers {
				e.stats.PeersRefused++
			}
			return
		}
		p = &peer{id: m.SenderID, assoc: pa.id}
		e.peers[p.id] = p
		e.stats.PeersAdded++
		created = true
		c.out = append(c.out, PeerEvent{Kind: PeerUp, ServerID: p.id})
	} else if pa.peer == nil && !c.accept(m.SenderID, pa) {
		return
	}
	c.bind(pa, p)
	p.assoc = pa.id
	if m.Info != nil && m.Info.ServerID == m.SenderID {
		p.info = tlv.ServerInfo{ServerID: p.id, Transport: cloneTr(m.Info.Transport)}
	}
	p.checksum = m.Checksum
	c.heard(now, p)
	c.presenceFromPeer(now, p)
	switch {
	case created:
		// A new peer: tell it about us (R=1 asks for its answer too, when
		// it does not know us yet), and learn its peers (RFC 5353 §3.3).
		c.sendPresence(p.assoc, p.id, m.ReplyRequired || pa.dialer == nil)
		if e.startup && e.mentor == nil {
			c.chooseMentor(now, p)
		} else {
			c.sendENRP(p.assoc, &tlv.ListRequest{ENRPHeader: tlv.ENRPHeader{SenderID: c.id, ReceiverID: p.id}})
		}
	case m.ReplyRequired:
		c.sendPresence(p.assoc, p.id, false)
	}
	if !created {
		c.audit(now, p)
	}
}

// bind makes pa an association of peer p. One the host accepted is no
// PE's: the idle reaper leaves it alone from now on (MAX-TIME-LAST-HEARD
// watches it instead).
func (c *Core) bind(pa *passoc, p *peer) {
	pa.peer = p
	if a := c.assocs[pa.id]; a != nil {
		c.idleUnlink(a)
	}
}

// heard restarts the peer's MAX-TIME-LAST-HEARD and ends a probe.
func (c *Core) heard(now time.Time, p *peer) {
	p.lastHeard = now
	p.probing = false
	p.due = now.Add(c.en.cfg.MaxTimeLastHeard)
}

// sendPresence sends our Presence (RFC 5353 §2.1) on association id.
func (c *Core) sendPresence(id AssocID, to uint32, reply bool) {
	if id == 0 {
		return
	}
	c.en.stats.PresencesSent++
	c.sendENRP(id, c.presence(to, reply))
}

func (c *Core) presence(to uint32, reply bool) *tlv.Presence {
	m := &tlv.Presence{
		ENRPHeader:    tlv.ENRPHeader{SenderID: c.id, ReceiverID: to},
		ReplyRequired: reply,
		Checksum:      c.store.Checksum(c.id),
	}
	if len(c.en.cfg.ENRPAddrs) > 0 {
		a := c.en.cfg.ENRPAddrs[0]
		t := tlv.Transport{Type: tlv.ParamSCTPTransport, Port: a.AddrPort.Port()}
		for _, x := range c.en.cfg.ENRPAddrs {
			t.Addrs = append(t.Addrs, x.AddrPort.Addr().Unmap())
		}
		m.Info = &tlv.ServerInfo{ServerID: c.id, Transport: t}
	}
	return m
}

func cloneTr(t tlv.Transport) tlv.Transport {
	t.Addrs = append([]netip.Addr(nil), t.Addrs...)
	t.Unknown = nil
	return t
}

// peersTimeout runs the ENRP timers due at now: heartbeat, dials, the
// probe and presumed death of silent peers, and the start-up phase.
func (c *Core) peersTimeout(now time.Time) {
	e := &c.en
	if e.beating() && !e.heartbeatAt.IsZero() && !now.Before(e.heartbeatAt) {
		e.heartbeatAt = now.Add(e.cfg.HeartbeatCycle)
		for _, p := range e.peers {
			c.sendPresence(p.assoc, p.id, false)
		}
		for _, pa := range e.assocs {
			if pa.peer == nil && (pa.dialer == nil || pa.dialer.up) {
				c.sendPresence(pa.id, 0, true)
			}
		}
		if e.multicast {
			e.stats.PresencesSent++
			c.out = append(c.out, Multicast{Msg: c.presence(0, false)})
		}
	}
	for _, d := range e.dialers {
		if d.assoc == 0 && !d.redialAt.IsZero() && !now.Before(d.redialAt) {
			c.dial(now, d)
		}
	}
	var dead []*peer
	for _, p := range e.peers {
		if p.syncing && !now.Before(p.syncDue) {
			c.syncFailed(now, p)
		}
		if p.due.IsZero() || now.Before(p.due) {
			continue
		}
		if !p.probing {
			// RFC 5353 §3.2: probe it and wait MAX-TIME-NO-RESPONSE.
			p.probing = true
			p.due = now.Add(e.cfg.MaxTimeNoResponse)
			e.stats.Probes++
			c.sendPresence(p.assoc, p.id, true)
			continue
		}
		dead = append(dead, p)
	}
	for _, p := range dead {
		c.peerDead(now, p)
	}
	c.takeoverTimeout(now)
	c.startupTimeout(now)
}

// peerDead removes a peer presumed dead (RFC 5353 §3.2 MAX-TIME-NO-
// RESPONSE); its PEs are left to the takeover (RFC 5353 §3.9).
func (c *Core) peerDead(now time.Time, p *peer) {
	e := &c.en
	e.stats.PeersDead++
	last := p.assoc
	c.dropPeer(p)
	c.out = append(c.out, PeerEvent{Kind: PeerDown, ServerID: p.id, PEs: c.store.Owned(p.id)})
	if c.log.Enabled(context.Background(), slog.LevelDebug) {
		c.log.Debug("enrp: peer presumed dead", "server", p.id, "pes", c.store.Owned(p.id))
	}
	c.presumedDead(now, p.id, last)
}

// dropPeer removes p from the peer table and its associations.
func (c *Core) dropPeer(p *peer) {
	e := &c.en
	delete(e.peers, p.id)
	for _, pa := range e.assocs {
		if pa.peer == p {
			pa.peer = nil
		}
	}
	if e.mentor == p {
		e.mentor = nil
	}
}

// beating reports whether there is anyone to send a Presence to.
func (e *enrpState) beating() bool {
	return e.multicast || len(e.peers) > 0 || len(e.assocs) > 0
}

// peersDeadline is the earliest ENRP timer.
func (c *Core) peersDeadline(earlier func(time.Time)) {
	e := &c.en
	if e.beating() {
		earlier(e.heartbeatAt)
	}
	for _, d := range e.dialers {
		if d.assoc == 0 {
			earlier(d.redialAt)
		}
	}
	for _, p := range e.peers {
		earlier(p.due)
		if p.syncing {
			earlier(p.syncDue)
		}
	}
	if e.startup {
		earlier(e.startupAt)
	}
	c.takeoverDeadline(earlier)
}

// onENRPError handles an ENRP_ERROR (RFC 5353 §2.10): it is counted and
// logged, never answered; a table request under way to that peer is
// given up.
func (c *Core) onENRPError(now time.Time, p *peer, m *tlv.ENRPError) {
	c.en.stats.ErrorsReceived++
	if c.log.Enabled(context.Background(), slog.LevelDebug) {
		var code tlv.CauseCode
		if len(m.Error.Causes) > 0 {
			code = m.Error.Causes[0].Code
		}
		c.log.Debug("enrp: ENRP_ERROR received", "server", p.id, "cause", code)
	}
	if p.syncing {
		c.syncFailed(now, p)
	}
}
