package enrp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/go-rserpool/rserpool/handlespace"
	"github.com/go-rserpool/rserpool/tlv"
	"github.com/go-rserpool/rserpool/transport"
)

// Tests of the ENRP procedures (RFC 5353 §3), driving two or three Cores
// message by message with an explicit now. A tiny router moves every
// SendENRP of one core to HandleENRP of the core at the other end of the
// association and carries out ConnectPeer.

var enT0 = time.Date(2025, 6, 1, 8, 0, 0, 0, time.UTC)

type rnode struct {
	c       *Core
	addr    transport.Addr
	nextID  AssocID
	silent  bool                       // its ENRP output is lost
	drop    func(tlv.ENRPMessage) bool // its ENRP output for which drop is true is lost
	down    bool                       // unreachable: dials to it fail
	ident   transport.Identity         // what its associations present to peers (zero: unauthenticated)
	sent    []tlv.ENRPMessage
	peAssoc map[AssocID]*fakePE
	asap    []tlv.ASAPMessage
	events  []Output
}

type rend struct {
	n  *rnode
	id AssocID
}

type router struct {
	t     *testing.T
	now   time.Time
	nodes []*rnode
	addrs map[transport.Addr]*rnode
	links map[rend]rend
	q     []func()
	pes   map[transport.Addr]*fakePE // ASAP addresses of PEs that answer keep-alives
}

// fakePE answers every ASAP_ENDPOINT_KEEP_ALIVE with an ack and
// remembers the server IDs of the keep-alives with H=1.
type fakePE struct {
	homes []uint32
}

func newRouter(t *testing.T) *router {
	return &router{t: t, now: enT0, addrs: map[transport.Addr]*rnode{}, links: map[rend]rend{}}
}

func enAddr(i int) transport.Addr {
	return transport.Addr{Kind: transport.KindMem, AddrPort: netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 9, 0, byte(i)}), 9901)}
}

// add creates a registrar with server ID id at enAddr(i).
func (r *router) add(id uint32, mod func(*Config)) *rnode {
	r.t.Helper()
	addr := enAddr(len(r.nodes) + 1)
	cfg := Config{ServerID: id}
	cfg.Peers.ENRPAddrs = []transport.Addr{addr}
	// The test PEs do not answer keep-alives: supervise them rarely.
	cfg.ASAP.KeepAliveInterval = time.Hour
	if mod != nil {
		mod(&cfg)
	}
	c, err := NewCore(cfg)
	if err != nil {
		r.t.Fatal(err)
	}
	n := &rnode{c: c, addr: addr, nextID: 1}
	r.nodes = append(r.nodes, n)
	r.addrs[addr] = n
	c.HandleTimeout(r.now)
	r.collect(n)
	return n
}

// collect carries out n's outbox: messages are encoded at once and queued.
func (r *router) collect(n *rnode) {
	r.t.Helper()
	for _, o := range n.c.Outbox() {
		switch o := o.(type) {
		case SendENRP:
			b := o.Msg.AppendTo(nil)
			m, err := tlv.ParseENRP(b)
			if err != nil {
				r.t.Fatalf("core sent an ENRP message that does not parse: %v", err)
			}
			n.sent = append(n.sent, m)
			to, ok := r.links[rend{n, o.Assoc}]
			if !ok || n.silent || (n.drop != nil && n.drop(m)) {
				continue
			}
			r.q = append(r.q, func() { to.n.c.HandleENRP(r.now, to.id, b); r.collect(to.n) })
		case SendASAP:
			b := o.Msg.AppendTo(nil)
			m, err := tlv.ParseASAP(b)
			if err != nil {
				r.t.Fatal(err)
			}
			n.asap = append(n.asap, m)
			if ka, ok := m.(*tlv.EndpointKeepAlive); ok && n.peAssoc[o.Assoc] != nil {
				pe, aid := n.peAssoc[o.Assoc], o.Assoc
				if ka.Home {
					pe.homes = append(pe.homes, ka.ServerID)
				}
				ack, _ := tlv.Marshal(&tlv.EndpointKeepAliveAck{PoolHandle: ka.PoolHandle, PEID: ka.PEID})
				r.q = append(r.q, func() { n.c.HandleASAP(r.now, aid, ack); r.collect(n) })
			}
		case ConnectPeer:
			dst := r.addrs[o.Addr]
			aid := o.Assoc
			if pe := r.pes[o.Addr]; pe != nil {
				r.q = append(r.q, func() {
					if n.peAssoc == nil {
						n.peAssoc = map[AssocID]*fakePE{}
					}
					n.peAssoc[aid] = pe
					n.c.HandleConnected(r.now, aid, AssocInfo{Local: n.addr, Remote: o.Addr})
					r.collect(n)
				})
				continue
			}
			r.q = append(r.q, func() {
				if dst == nil || dst.down {
					n.c.HandleConnectFailed(r.now, aid, errors.New("unreachable"))
					r.collect(n)
					return
				}
				bid := dst.nextID
				dst.nextID++
				r.links[rend{n, aid}] = rend{dst, bid}
				r.links[rend{dst, bid}] = rend{n, aid}
				dst.c.HandleAccepted(r.now, bid, AssocInfo{Local: dst.addr, Remote: n.addr, Identity: n.ident, Authenticated: !n.ident.IsZero()})
				r.collect(dst)
				n.c.HandleConnected(r.now, aid, AssocInfo{Local: n.addr, Remote: dst.addr, Identity: dst.ident, Authenticated: !dst.ident.IsZero()})
				r.collect(n)
			})
		case Multicast, CloseAssoc:
		default:
			n.events = append(n.events, o)
		}
	}
}

// pump delivers until nothing is in flight (bounded).
func (r *router) pump() {
	r.t.Helper()
	for i := 0; len(r.q) > 0; i++ {
		if i > 100000 {
			r.t.Fatal("router: messages keep flowing")
		}
		f := r.q[0]
		r.q = r.q[1:]
		f()
	}
}

// advance moves time by d, in steps of at most step, running every core's
// timers and delivering.
func (r *router) advance(d time.Duration) {
	r.t.Helper()
	end := r.now.Add(d)
	for {
		next := end
		for _, n := range r.nodes {
			if t := n.c.NextDeadline(); !t.IsZero() && t.Before(next) {
				next = t
			}
		}
		if next.Before(r.now) {
			next = r.now
		}
		r.now = next
		for _, n := range r.nodes {
			if t := n.c.NextDeadline(); !t.IsZero() && !t.After(r.now) {
				n.c.HandleTimeout(r.now)
				r.collect(n)
			}
		}
		r.pump()
		if !r.now.Before(end) {
			return
		}
	}
}

// register registers PE id in pool h at n over a new association.
func (r *router) register(n *rnode, h string, id uint32) *tlv.RegistrationResponse {
	r.t.Helper()
	aid := AssocID(1000 + id%100000)
	ip := fmt.Sprintf("10.1.%d.%d", byte(id>>8), byte(id))
	n.c.HandleAccepted(r.now, aid, AssocInfo{Local: n.addr, Remote: srvMem(ip + ":4000")})
	pe := rrPE(id, ip)
	pe.RegistrationLife = 600000 // 10 min: outlives the takeover tests
	b, err := tlv.Marshal(reg(h, pe))
	if err != nil {
		r.t.Fatal(err)
	}
	n.asap = n.asap[:0]
	n.c.HandleASAP(r.now, aid, b)
	r.collect(n)
	r.pump()
	for _, m := range n.asap {
		if rr, ok := m.(*tlv.RegistrationResponse); ok {
			return rr
		}
	}
	r.t.Fatal("no registration response")
	return nil
}

func (r *router) mustRegister(n *rnode, h string, id uint32) {
	r.t.Helper()
	if rr := r.register(n, h, id); rr.Reject {
		r.t.Fatalf("registration of %#x at %#x refused: %v", id, n.c.ServerID(), rr.Error)
	}
}

func sentOf[M tlv.ENRPMessage](n *rnode) []M {
	var out []M
	for _, m := range n.sent {
		if x, ok := m.(M); ok {
			out = append(out, x)
		}
	}
	return out
}

func peerEvents(n *rnode, k PeerEventKind) []PeerEvent {
	var out []PeerEvent
	for _, o := range n.events {
		if e, ok := o.(PeerEvent); ok && e.Kind == k {
			out = append(out, e)
		}
	}
	return out
}

func hasPeer(n *rnode, id uint32) bool {
	for _, p := range n.c.Peers() {
		if p.ServerID == id {
			return true
		}
	}
	return false
}

// peered builds A (static peer B) and B, and lets them meet.
func peered(t *testing.T, mod func(*Config)) (*router, *rnode, *rnode) {
	r := newRouter(t)
	b := r.add(0xb0b0b0b0, mod)
	a := r.add(0xa0a0a0a0, func(c *Config) {
		c.Peers.Static = []transport.Addr{b.addr}
		c.Peers.MentorTimeout = -1
		if mod != nil {
			mod(c)
		}
	})
	r.pump()
	return r, a, b
}

// RFC 5353 §3.1-3.3: A dials its static peer B; their Presences make
// each a peer of the other, and each tells the host (PeerUp).
func TestENRPPeersLearnByPresence(t *testing.T) {
	_, a, b := peered(t, nil)
	if !hasPeer(a, b.c.ServerID()) || !hasPeer(b, a.c.ServerID()) {
		t.Fatalf("peers: A %v, B %v", a.c.Peers(), b.c.Peers())
	}
	if len(peerEvents(a, PeerUp)) != 1 || len(peerEvents(b, PeerUp)) != 1 {
		t.Fatalf("PeerUp events: A %v, B %v", a.events, b.events)
	}
	for _, p := range sentOf[*tlv.Presence](a) {
		if p.Info == nil || p.Info.ServerID != a.c.ServerID() || len(p.Info.Transport.Addrs) != 1 {
			t.Fatalf("Presence without A's Server Information: %+v", p)
		}
	}
}

// RFC 5353 §3.6: a PE registered at A reaches B by ENRP_HANDLE_UPDATE
// (ADD_PE) with A as its home, and is resolvable there; its
// deregistration (DEL_PE) removes it at B. B never expires it on its own.
func TestENRPHandleUpdatePropagates(t *testing.T) {
	r, a, b := peered(t, nil)
	r.mustRegister(a, "EchoPool", 0x22222222)
	pe, info, ok := b.c.Lookup(tlv.PoolHandle("EchoPool"), 0x22222222)
	if !ok || pe.HomeServerID != a.c.ServerID() {
		t.Fatalf("PE at B: %v %+v", ok, pe)
	}
	if !info.Expiry.IsZero() {
		t.Fatalf("B holds A's PE with an expiry %v", info.Expiry)
	}
	if pe.ASAPTransport.Type == 0 {
		t.Fatal("ADD_PE without the ASAP transport")
	}
	if got, want := b.c.store.Checksum(a.c.ServerID()), a.c.store.Checksum(a.c.ServerID()); got != want {
		t.Fatalf("B's checksum of A %#x, A's own %#x", got, want)
	}
	pes, _, err := b.c.store.Select(tlv.PoolHandle("EchoPool"), 1, nil)
	if err != nil || len(pes) != 1 {
		t.Fatalf("resolution at B: %v %v", pes, err)
	}
	// Long past the registration life at B: still there (A lives).
	r.advance(11 * time.Minute)
	if _, _, ok := a.c.Lookup(tlv.PoolHandle("EchoPool"), 0x22222222); ok {
		t.Fatal("A kept a PE past its registration life")
	}
	if _, _, ok := b.c.Lookup(tlv.PoolHandle("EchoPool"), 0x22222222); ok {
		t.Fatal("the DEL_PE of A's expiry did not remove the PE at B")
	}
	// Deregistration.
	r.mustRegister(a, "EchoPool", 0x33333333)
	b2, _ := tlv.Marshal(&tlv.Deregistration{PoolHandle: tlv.PoolHandle("EchoPool"), PEID: 0x33333333})
	a.c.HandleASAP(r.now, AssocID(1000+0x33333333%100000), b2)
	r.collect(a)
	r.pump()
	if _, _, ok := b.c.Lookup(tlv.PoolHandle("EchoPool"), 0x33333333); ok {
		t.Fatal("deregistration did not propagate")
	}
	if n := len(sentOf[*tlv.HandleUpdate](a)); n != 4 {
		t.Fatalf("A sent %d updates, want 4 (2 ADD_PE, 2 DEL_PE)", n)
	}
}

// RFC 5353 §3.6: only the home registrar speaks for a PE. B may not
// change or remove a PE A owns, nor announce one for a third home; A
// refuses and its store is unchanged.
func TestENRPUpdateForeignRefused(t *testing.T) {
	r, a, b := peered(t, nil)
	r.mustRegister(a, "EchoPool", 0x22222222)
	before := a.c.store.Checksum(a.c.ServerID())
	pe, _, _ := a.c.Lookup(tlv.PoolHandle("EchoPool"), 0x22222222)
	bToA := rend{b, 1} // B's end of A's dial
	for k, v := range r.links {
		if k.n == b && v.n == a {
			bToA = k
		}
	}
	send := func(m tlv.ENRPMessage) {
		a.c.HandleENRP(r.now, r.links[bToA].id, m.AppendTo(nil))
		r.collect(a)
		r.pump()
	}
	hdr := tlv.ENRPHeader{SenderID: b.c.ServerID(), ReceiverID: a.c.ServerID()}
	steal := pe
	steal.HomeServerID = b.c.ServerID()
	send(&tlv.HandleUpdate{ENRPHeader: hdr, Action: tlv.UpdateAddPE, PoolHandle: tlv.PoolHandle("EchoPool"), PE: steal})
	send(&tlv.HandleUpdate{ENRPHeader: hdr, Action: tlv.UpdateDelPE, PoolHandle: tlv.PoolHandle("EchoPool"), PE: pe})
	third := rrPE(0x44, "10.2.0.1")
	third.HomeServerID = 0xc0c0c0c0
	send(&tlv.HandleUpdate{ENRPHeader: hdr, Action: tlv.UpdateAddPE, PoolHandle: tlv.PoolHandle("EchoPool"), PE: third})
	if got := a.c.ENRPStats().UpdatesRefused; got != 3 {
		t.Fatalf("refused %d updates, want 3", got)
	}
	if a.c.store.Checksum(a.c.ServerID()) != before || a.c.Owned() != 1 || a.c.store.PEs() != 1 {
		t.Fatalf("store changed: owned %d, PEs %d", a.c.Owned(), a.c.store.PEs())
	}
}

// RFC 5355 §3 (per-peer resource limit): a peer may make us store at most
// MaxPEsPerPeer of its PEs.
func TestENRPMaxPEsPerPeer(t *testing.T) {
	r, a, b := peered(t, func(c *Config) { c.Peers.MaxPEsPerPeer = 2 })
	for i := range uint32(3) {
		r.mustRegister(a, "EchoPool", 0x100+i)
	}
	if got := b.c.store.Owned(a.c.ServerID()); got != 2 {
		t.Fatalf("B stores %d of A's PEs, want 2", got)
	}
	if b.c.ENRPStats().UpdatesRefused != 1 {
		t.Fatalf("refused %d", b.c.ENRPStats().UpdatesRefused)
	}
}

// RFC 5353 §3.4-3.5: a new registrar C with mentor A refuses
// registrations in its start-up phase, takes A's table page by page (M=1
// on all but the last of PageSize PEs each), and then serves.
func TestENRPMentorSyncPaged(t *testing.T) {
	r := newRouter(t)
	a := r.add(0xa0a0a0a0, nil)
	for i := range uint32(300) {
		r.mustRegister(a, fmt.Sprintf("pool-%d", i%7), 0x1000+i)
	}
	var c *rnode
	c = r.add(0xc0c0c0c0, func(cfg *Config) {
		cfg.Peers.Static = []transport.Addr{a.addr}
	})
	if !c.c.InStartup() {
		t.Fatal("C not in start-up")
	}
	if rr := r.register(c, "EchoPool", 0x9); !rr.Reject {
		t.Fatal("registration accepted during start-up")
	}
	r.pump()
	if c.c.InStartup() {
		t.Fatal("C still in start-up after the mentor's table")
	}
	if got := c.c.store.Owned(a.c.ServerID()); got != 300 {
		t.Fatalf("C holds %d of A's PEs, want 300", got)
	}
	if got := c.c.ENRPStats().TablePagesIn; got != 3 {
		t.Fatalf("%d pages, want 3 (128+128+44)", got)
	}
	resps := sentOf[*tlv.HandleTableResponse](a)
	if len(resps) != 3 || !resps[0].MoreToSend || !resps[1].MoreToSend || resps[2].MoreToSend {
		t.Fatalf("M flags wrong over %d responses", len(resps))
	}
	if got, want := c.c.store.Checksum(a.c.ServerID()), a.c.store.Checksum(a.c.ServerID()); got != want {
		t.Fatalf("checksum at C %#x, at A %#x", got, want)
	}
	r.mustRegister(c, "EchoPool", 0x9)
	if _, _, ok := a.c.Lookup(tlv.PoolHandle("EchoPool"), 0x9); !ok {
		t.Fatal("C's PE did not reach A")
	}
}

// RFC 5353 §3.5: a page that would not fit 64 KiB is made smaller, so a
// large PageSize fills the messages.
func TestENRPTablePageFits(t *testing.T) {
	r := newRouter(t)
	a := r.add(0xa0a0a0a0, func(c *Config) { c.Peers.PageSize = 100000 })
	for i := range uint32(2000) {
		r.mustRegister(a, "big", 0x1000+i)
	}
	c := r.add(0xc0c0c0c0, func(cfg *Config) { cfg.Peers.Static = []transport.Addr{a.addr} })
	r.pump()
	if got := c.c.store.Owned(a.c.ServerID()); got != 2000 {
		t.Fatalf("C holds %d PEs", got)
	}
	for _, m := range sentOf[*tlv.HandleTableResponse](a) {
		if m.Len() > tlv.MaxMessageLen {
			t.Fatalf("response of %d bytes", m.Len())
		}
	}
	t.Logf("2000 PEs in %d pages", c.c.ENRPStats().TablePagesIn)
}

// RFC 5353 §3.4: with no peer heard, the start-up phase ends after the
// mentor-discovery timeout; static peers are dialled again with a
// doubling back-off.
func TestENRPStartupTimeoutAndRedial(t *testing.T) {
	r := newRouter(t)
	c := r.add(0xc0c0c0c0, func(cfg *Config) {
		cfg.Peers.Static = []transport.Addr{enAddr(9)}
	})
	r.pump()
	r.advance(DefaultMentorTimeout - time.Millisecond)
	if !c.c.InStartup() {
		t.Fatal("start-up ended early")
	}
	r.advance(time.Millisecond)
	if c.c.InStartup() {
		t.Fatal("start-up did not end at the mentor timeout")
	}
	// Dials at 0, then 1 s (1 s), 2 s (3 s), 4 s (7 s) later: three by 5 s.
	if got := c.c.ENRPStats().Dials; got != 3 {
		t.Fatalf("%d dials by %v, want 3", got, DefaultMentorTimeout)
	}
	r.advance(2 * time.Second)
	if got := c.c.ENRPStats().Dials; got != 4 {
		t.Fatalf("%d dials by 7 s, want 4", got)
	}
}

// RFC 5353 §3.7: a Presence whose checksum differs from ours of the
// sender's PEs triggers a HANDLE_TABLE_REQUEST with W=1; the PEs missing
// come back and the ones A no longer has are swept.
func TestENRPAuditRepairs(t *testing.T) {
	r, a, b := peered(t, nil)
	for i := range uint32(5) {
		r.mustRegister(a, "EchoPool", 0x100+i)
	}
	// Diverge B's view of A: one PE lost, one stale PE A never had.
	b.c.store.Deregister(r.now, tlv.PoolHandle("EchoPool"), 0x102)
	stale := rrPE(0x999, "10.3.0.1")
	stale.HomeServerID = a.c.ServerID()
	if _, err := b.c.store.Register(r.now, tlv.PoolHandle("EchoPool"), &stale, time.Time{}); err != nil {
		t.Fatal(err)
	}
	if b.c.store.Checksum(a.c.ServerID()) == a.c.store.Checksum(a.c.ServerID()) {
		t.Fatal("test setup: checksums equal")
	}
	r.advance(DefaultHeartbeatCycle)
	if got := b.c.ENRPStats().Audits; got != 1 {
		t.Fatalf("%d audits", got)
	}
	reqs := sentOf[*tlv.HandleTableRequest](b)
	if len(reqs) != 1 || !reqs[0].OwnChildrenOnly {
		t.Fatalf("table requests %+v, want one with W=1", reqs)
	}
	if _, _, ok := b.c.Lookup(tlv.PoolHandle("EchoPool"), 0x102); !ok {
		t.Fatal("lost PE not restored")
	}
	if _, _, ok := b.c.Lookup(tlv.PoolHandle("EchoPool"), 0x999); ok {
		t.Fatal("stale PE not swept")
	}
	if got, want := b.c.store.Checksum(a.c.ServerID()), a.c.store.Checksum(a.c.ServerID()); got != want {
		t.Fatalf("after the audit: %#x, want %#x", got, want)
	}
	r.advance(DefaultHeartbeatCycle)
	if got := b.c.ENRPStats().Audits; got != 1 {
		t.Fatalf("audits after repair %d, want still 1", got)
	}
}

// RFC 5353 §3.7 (checksum, RSPLIB's algorithm): a registrar owning only
// PE 0x22222222 in pool "EchoPool" advertises 0x4e0d.
func TestENRPChecksumGolden(t *testing.T) {
	st, err := handlespace.New(handlespace.Config{})
	if err != nil {
		t.Fatal(err)
	}
	pe := rrPE(0x22222222, "10.0.0.5")
	pe.HomeServerID = 0x1234
	if _, err := st.Register(enT0, tlv.PoolHandle("EchoPool"), &pe, time.Time{}); err != nil {
		t.Fatal(err)
	}
	if got := st.Checksum(0x1234); got != 0x4e0d {
		t.Fatalf("handlespace.Checksum = %#04x, want 0x4e0d", got)
	}
	r, a, _ := peered(t, nil)
	r.mustRegister(a, "EchoPool", 0x22222222)
	r.advance(DefaultHeartbeatCycle)
	ps := sentOf[*tlv.Presence](a)
	if got := ps[len(ps)-1].Checksum; got != 0x4e0d {
		t.Fatalf("Presence checksum %#04x, want 0x4e0d", got)
	}
}

// RFC 5353 §3.2: a silent peer is probed with R=1 after
// MAX-TIME-LAST-HEARD and presumed dead MAX-TIME-NO-RESPONSE later.
func TestENRPProbeAndDeath(t *testing.T) {
	r, a, b := peered(t, nil)
	b.silent = true
	probes := func() int {
		n := 0
		for _, p := range sentOf[*tlv.Presence](a) {
			if p.ReplyRequired && p.ReceiverID == b.c.ServerID() {
				n++
			}
		}
		return n
	}
	p0 := probes()
	r.advance(DefaultMaxTimeLastHeard - time.Millisecond)
	if probes() != p0 {
		t.Fatal("probe before MAX-TIME-LAST-HEARD")
	}
	r.advance(time.Millisecond)
	if probes() != p0+1 {
		t.Fatalf("no probe at MAX-TIME-LAST-HEARD")
	}
	r.advance(DefaultMaxTimeNoResponse - time.Millisecond)
	if !hasPeer(a, b.c.ServerID()) {
		t.Fatal("peer dropped early")
	}
	r.advance(time.Millisecond)
	if hasPeer(a, b.c.ServerID()) || len(peerEvents(a, PeerDown)) != 1 {
		t.Fatal("silent peer not presumed dead at MAX-TIME-NO-RESPONSE")
	}
}

// RFC 5353 §3.2: a probe answered in time keeps the peer.
func TestENRPProbeAnswered(t *testing.T) {
	r, a, b := peered(t, func(c *Config) {
		c.Peers.HeartbeatCycle = time.Hour // only the probe speaks
	})
	r.advance(DefaultMaxTimeLastHeard + DefaultMaxTimeNoResponse + time.Second)
	if !hasPeer(a, b.c.ServerID()) || !hasPeer(b, a.c.ServerID()) {
		t.Fatal("answered probe, peer dropped")
	}
	if a.c.ENRPStats().Probes == 0 {
		t.Fatal("no probe")
	}
}

// RFC 5353 §2 and RFC 5354 §2: an unknown ENRP message is answered with
// ENRP_ERROR (Unrecognized Message), a report parameter with ENRP_ERROR
// (Unrecognized Parameter), malformed ones too when their action asks; our
// own server ID and foreign receivers are ignored; none changes the
// store or the peer table.
func TestENRPErrorsAndIgnored(t *testing.T) {
	r, a, b := peered(t, nil)
	r.mustRegister(a, "EchoPool", 0x22222222)
	var aid AssocID
	for k, v := range r.links {
		if k.n == a && v.n == b {
			aid = k.id
		}
	}
	pes, peers := a.c.store.PEs(), len(a.c.Peers())
	feed := func(b []byte) []tlv.ENRPError {
		a.sent = a.sent[:0]
		a.c.HandleENRP(r.now, aid, b)
		r.collect(a)
		r.q = r.q[:0]
		var out []tlv.ENRPError
		for _, m := range sentOf[*tlv.ENRPError](a) {
			out = append(out, *m)
		}
		return out
	}
	unknown := []byte{0x0b, 0, 0, 12, 0, 0, 0, 1, 0, 0, 0, 0}
	if e := feed(unknown); len(e) != 1 || e[0].Error.Causes[0].Code != tlv.CauseUnrecognizedMessage {
		t.Fatalf("unknown message: %+v", e)
	}
	pr := &tlv.Presence{ENRPHeader: tlv.ENRPHeader{SenderID: b.c.ServerID()}, Checksum: a.c.store.Checksum(b.c.ServerID())}
	withParam := append(pr.AppendTo(nil), 0xc0, 0x77, 0, 4) // action 11: skip and report
	withParam[3] += 4
	if e := feed(withParam); len(e) != 1 || e[0].Error.Causes[0].Code != tlv.CauseUnrecognizedParameter {
		t.Fatalf("report parameter: %+v", e)
	}
	truncated := pr.AppendTo(nil)[:10]
	truncated[3] = 10
	if e := feed(truncated); len(e) != 1 {
		t.Fatalf("truncated message: %+v", e)
	}
	drop0 := a.c.ENRPStats().Dropped
	self := (&tlv.ListRequest{ENRPHeader: tlv.ENRPHeader{SenderID: a.c.ServerID()}}).AppendTo(nil)
	other := (&tlv.ListRequest{ENRPHeader: tlv.ENRPHeader{SenderID: b.c.ServerID(), ReceiverID: 0x77}}).AppendTo(nil)
	if e := feed(self); len(e) != 0 || len(a.sent) != 0 {
		t.Fatal("answered a message with our own server ID")
	}
	if e := feed(other); len(e) != 0 || len(a.sent) != 0 {
		t.Fatal("answered a message for another server")
	}
	if a.c.ENRPStats().Dropped != drop0+2 {
		t.Fatalf("dropped %d", a.c.ENRPStats().Dropped-drop0)
	}
	// An ENRP_ERROR is counted, never answered.
	ee := &tlv.ENRPError{ENRPHeader: tlv.ENRPHeader{SenderID: b.c.ServerID()}, Error: *tlv.NewOperationError(tlv.CauseInvalidValues, nil)}
	if feed(ee.AppendTo(nil)); len(a.sent) != 0 || a.c.ENRPStats().ErrorsReceived != 1 {
		t.Fatal("ENRP_ERROR answered or not counted")
	}
	// An unrequested table response is dropped.
	tr := &tlv.HandleTableResponse{ENRPHeader: tlv.ENRPHeader{SenderID: b.c.ServerID()}, Pools: []tlv.PoolEntry{{PoolHandle: tlv.PoolHandle("x"), PEs: []tlv.PoolElement{func() tlv.PoolElement { p := rrPE(5, "10.4.0.1"); p.HomeServerID = b.c.ServerID(); return p }()}}}}
	feed(tr.AppendTo(nil))
	if a.c.ENRPStats().TableUnrequested != 1 {
		t.Fatal("unrequested table response not dropped")
	}
	if a.c.store.PEs() != pes || len(a.c.Peers()) != peers {
		t.Fatalf("store or peers changed: %d PEs, %d peers", a.c.store.PEs(), len(a.c.Peers()))
	}
}

// RFC 5355 §3: with Accept, a refused registrar does not enter the table.
func TestENRPAcceptHook(t *testing.T) {
	r := newRouter(t)
	b := r.add(0xb0b0b0b0, func(c *Config) {
		c.Peers.Accept = func(id uint32, _ AssocInfo) error {
			if id == 0xa0a0a0a0 {
				return errors.New("not ours")
			}
			return nil
		}
	})
	a := r.add(0xa0a0a0a0, func(c *Config) { c.Peers.Static = []transport.Addr{b.addr}; c.Peers.MentorTimeout = -1 })
	r.pump()
	if hasPeer(b, a.c.ServerID()) || b.c.ENRPStats().PeersRefused == 0 {
		t.Fatal("refused peer entered the table")
	}
	r.mustRegister(a, "EchoPool", 1)
	if b.c.store.PEs() != 0 {
		t.Fatal("refused peer's update stored")
	}
}

// RFC 5353 §3.3: C, whose only static peer is A, learns B from A's
// LIST_RESPONSE and peers with it.
func TestENRPListResponseLearnsPeers(t *testing.T) {
	r, a, b := peered(t, nil)
	r.mustRegister(b, "EchoPool", 0x77)
	c := r.add(0xc0c0c0c0, func(cfg *Config) { cfg.Peers.Static = []transport.Addr{a.addr} })
	r.pump()
	if !hasPeer(c, b.c.ServerID()) || !hasPeer(b, c.c.ServerID()) {
		t.Fatalf("C's peers %v", c.c.Peers())
	}
	if _, _, ok := c.c.Lookup(tlv.PoolHandle("EchoPool"), 0x77); !ok {
		t.Fatal("B's PE not in C's table (mentor W=0 sync)")
	}
}

// three builds A and B peered, then C with mentor A (it learns B from
// A's list), and a PE 0x22222222 at A that answers keep-alives.
func three(t *testing.T) (*router, *rnode, *rnode, *rnode, *fakePE) {
	r, a, b := peered(t, nil)
	c := r.add(0xc0c0c0c0, func(cfg *Config) { cfg.Peers.Static = []transport.Addr{a.addr} })
	r.pump()
	pe := &fakePE{}
	r.pes = map[transport.Addr]*fakePE{srvMem("10.1.34.34:4000"): pe}
	r.mustRegister(a, "EchoPool", 0x22222222)
	for _, n := range []*rnode{b, c} {
		if _, _, ok := n.c.Lookup(tlv.PoolHandle("EchoPool"), 0x22222222); !ok || len(n.c.Peers()) != 2 {
			t.Fatalf("setup: %#x has %d peers", n.c.ServerID(), len(n.c.Peers()))
		}
	}
	return r, a, b, c, pe
}

// RFC 5353 §3.9: A dies; B and C presume it dead and both start a
// takeover; the lower server ID (B) wins, C acknowledges; B sends
// TAKEOVER_SERVER, becomes the PE's home and asks the PE to adopt it with
// an H=1 keep-alive; C follows. The PE stays resolvable at C throughout.
func TestENRPTakeover(t *testing.T) {
	r, a, b, c, pe := three(t)
	a.silent, a.down = true, true
	h := tlv.PoolHandle("EchoPool")
	step := time.Second
	for range int((DefaultMaxTimeLastHeard + DefaultMaxTimeNoResponse + DefaultTakeoverExpiry + 2*time.Second) / step) {
		r.advance(step)
		if _, _, ok := c.c.Lookup(h, 0x22222222); !ok {
			t.Fatalf("PE not resolvable at C at %v", r.now.Sub(enT0))
		}
	}
	if got := peerEvents(b, TakeoverDone); len(got) != 1 || got[0].ServerID != a.c.ServerID() || got[0].PEs != 1 {
		t.Fatalf("B's TakeoverDone events %+v", got)
	}
	if got := peerEvents(c, TakeoverDone); len(got) != 0 {
		t.Fatalf("C completed a takeover too: %+v", got)
	}
	if len(peerEvents(b, TakeoverStarted)) != 1 || len(sentOf[*tlv.InitTakeoverAck](c)) == 0 || len(sentOf[*tlv.TakeoverServer](b)) == 0 {
		t.Fatal("INIT_TAKEOVER / ACK / TAKEOVER_SERVER exchange missing")
	}
	if b.c.Owned() != 1 || len(pe.homes) == 0 || pe.homes[len(pe.homes)-1] != b.c.ServerID() {
		t.Fatalf("B owns %d PEs; PE's H=1 keep-alives from %x", b.c.Owned(), pe.homes)
	}
	for _, n := range []*rnode{b, c} {
		got, _, ok := n.c.Lookup(h, 0x22222222)
		if !ok || got.HomeServerID != b.c.ServerID() {
			t.Fatalf("at %#x: PE %v home %#x", n.c.ServerID(), ok, got.HomeServerID)
		}
		if hasPeer(n, a.c.ServerID()) {
			t.Fatalf("%#x still lists A", n.c.ServerID())
		}
	}
	if b.c.store.Checksum(b.c.ServerID()) != c.c.store.Checksum(b.c.ServerID()) {
		t.Fatal("checksums of B's PEs differ")
	}
	// The PE is supervised by its new home: its ack keeps it (it
	// re-registers before its registration life ends).
	r.advance(30 * time.Second)
	if _, _, ok := b.c.Lookup(h, 0x22222222); !ok {
		t.Fatal("taken-over PE dropped at its new home")
	}
}

// RFC 5353 §3.9: the target gets the INIT_TAKEOVER too, and its Presence
// in answer cancels the takeover: nobody takes over, the PE keeps its
// home. (C's ACKs are lost, so B waits.)
func TestENRPTakeoverCancelledByPresence(t *testing.T) {
	r, a, b, c, _ := three(t)
	a.silent = true
	c.drop = func(m tlv.ENRPMessage) bool { _, ok := m.(*tlv.InitTakeoverAck); return ok }
	r.advance(DefaultMaxTimeLastHeard + DefaultMaxTimeNoResponse - time.Second)
	a.silent = false
	r.advance(time.Second)
	if len(peerEvents(b, TakeoverStarted)) == 0 {
		t.Fatal("no takeover started")
	}
	if !hasPeer(b, a.c.ServerID()) {
		t.Fatal("A's answer to the INIT_TAKEOVER did not bring it back")
	}
	c.drop = nil
	// A hears the INIT_TAKEOVER about itself and answers with Presences.
	for _, m := range sentOf[*tlv.InitTakeover](b) {
		if m.TargetID != a.c.ServerID() {
			t.Fatalf("INIT_TAKEOVER for %#x", m.TargetID)
		}
	}
	b.sent = b.sent[:0]
	r.advance(DefaultTakeoverExpiry + time.Second)
	for _, n := range []*rnode{b, c} {
		if len(peerEvents(n, TakeoverDone)) != 0 {
			t.Fatalf("%#x took over a live peer", n.c.ServerID())
		}
		got, _, ok := n.c.Lookup(tlv.PoolHandle("EchoPool"), 0x22222222)
		if !ok || got.HomeServerID != a.c.ServerID() {
			t.Fatalf("at %#x: PE %v home %#x", n.c.ServerID(), ok, got.HomeServerID)
		}
	}
}

// RFC 5353 §3.2: a Presence with R=1 is answered with our Presence
// (R=0), unicast to the sender.
func TestENRPPresenceReplyRequired(t *testing.T) {
	r, a, b := peered(t, nil)
	var aid AssocID
	for k, v := range r.links {
		if k.n == a && v.n == b {
			aid = k.id
		}
	}
	a.sent = a.sent[:0]
	pr := &tlv.Presence{ENRPHeader: tlv.ENRPHeader{SenderID: b.c.ServerID(), ReceiverID: a.c.ServerID()}, ReplyRequired: true, Checksum: 0xffff}
	a.c.HandleENRP(r.now, aid, pr.AppendTo(nil))
	r.collect(a)
	ps := sentOf[*tlv.Presence](a)
	if len(ps) != 1 || ps[0].ReplyRequired || ps[0].ReceiverID != b.c.ServerID() {
		t.Fatalf("answer %+v", ps)
	}
}

// RFC 5353 §3.2: a Presence on the multicast group from an unknown
// registrar makes us connect to the ENRP address of its Server
// Information; our own multicast Presence is ignored; nothing is answered
// on the group.
func TestENRPMulticastPresence(t *testing.T) {
	r := newRouter(t)
	b := r.add(0xb0b0b0b0, nil)
	a := r.add(0xa0a0a0a0, nil)
	own := b.c.presence(0, false).AppendTo(nil)
	b.c.HandleENRPMulticast(r.now, b.addr, own)
	r.collect(b)
	if b.c.ENRPStats().Dials != 0 {
		t.Fatal("dialled itself")
	}
	a.c.HandleENRPMulticast(r.now, b.addr, own)
	r.collect(a)
	r.pump()
	if a.c.ENRPStats().Dials != 1 || !hasPeer(a, b.c.ServerID()) || !hasPeer(b, a.c.ServerID()) {
		t.Fatalf("dials %d, A's peers %v", a.c.ENRPStats().Dials, a.c.Peers())
	}
	a.c.HandleENRPMulticast(r.now, b.addr, own)
	r.collect(a)
	if a.c.ENRPStats().Dials != 1 {
		t.Fatal("dialled a known peer again")
	}
}

// RFC 5353 §3.1: a static peer whose association is lost is dialled
// again after RedialMin; the Presences on the new association restore the
// peering.
func TestENRPStaticRedialAfterLoss(t *testing.T) {
	r, a, b := peered(t, nil)
	var aid AssocID
	for k, v := range r.links {
		if k.n == a && v.n == b {
			aid = k.id
		}
	}
	a.c.HandleLost(r.now, aid)
	r.collect(a)
	if a.c.ENRPStats().Dials != 1 {
		t.Fatal("redialled at once")
	}
	r.advance(DefaultRedialMin)
	if a.c.ENRPStats().Dials != 2 {
		t.Fatalf("%d dials after RedialMin", a.c.ENRPStats().Dials)
	}
	for _, p := range a.c.Peers() {
		if p.ServerID == b.c.ServerID() && (p.Assoc == 0 || p.Assoc == aid) {
			t.Fatalf("peer B on association %d after the redial", p.Assoc)
		}
	}
}

// RFC 5353 §3.5: a table request that gets no answer is given up after
// MAX-TIME-NO-RESPONSE, so that the next checksum mismatch audits again.
func TestENRPAuditRetriedAfterSilence(t *testing.T) {
	r, a, b := peered(t, nil)
	r.mustRegister(a, "EchoPool", 0x22222222)
	b.c.store.Deregister(r.now, tlv.PoolHandle("EchoPool"), 0x22222222)
	a.drop = func(m tlv.ENRPMessage) bool { _, ok := m.(*tlv.HandleTableResponse); return ok }
	r.advance(DefaultHeartbeatCycle)
	if b.c.ENRPStats().Audits != 1 {
		t.Fatal("no audit")
	}
	a.drop = nil
	r.advance(DefaultHeartbeatCycle)
	if b.c.ENRPStats().Audits != 2 {
		t.Fatalf("%d audits, want a second one", b.c.ENRPStats().Audits)
	}
	if _, _, ok := b.c.Lookup(tlv.PoolHandle("EchoPool"), 0x22222222); !ok {
		t.Fatal("not repaired")
	}
}

// RFC 5353 §3.4-3.5: a registrar still in its start-up phase refuses a
// whole-table request (R=1); two registrars starting together each
// refuse the other as mentor and both start with their empty tables.
func TestENRPTableRejectedWhileStarting(t *testing.T) {
	r := newRouter(t)
	var a, b *rnode
	a = r.add(0xa0a0a0a0, func(c *Config) { c.Peers.Static = []transport.Addr{enAddr(2)} })
	b = r.add(0xb0b0b0b0, func(c *Config) { c.Peers.Static = []transport.Addr{enAddr(1)} })
	r.pump()
	for _, n := range []*rnode{a, b} {
		rej := 0
		for _, m := range sentOf[*tlv.HandleTableResponse](n) {
			if m.Reject {
				rej++
			}
		}
		if rej == 0 {
			t.Fatalf("%#x never refused its table while starting", n.c.ServerID())
		}
		if n.c.InStartup() {
			t.Fatalf("%#x still starting after its mentor refused", n.c.ServerID())
		}
	}
	r.mustRegister(a, "EchoPool", 1)
	if _, _, ok := b.c.Lookup(tlv.PoolHandle("EchoPool"), 1); !ok {
		t.Fatal("peers after start-up do not exchange updates")
	}
}

// RFC 5355 §3: an association that only sends ENRP without naming a
// peer is still aborted when idle; a peer's association is not (its
// silence is MAX-TIME-LAST-HEARD's business).
func TestENRPIdleAssociations(t *testing.T) {
	r, a, b := peered(t, func(c *Config) { c.ASAP.IdleTimeout = 10 * time.Second })
	b.c.HandleAccepted(r.now, 500, AssocInfo{Remote: srvMem("10.5.0.1:1")})
	b.c.HandleENRP(r.now, 500, []byte{0x0b, 0, 0, 12, 0, 0, 0, 9, 0, 0, 0, 0})
	r.collect(b)
	r.advance(11 * time.Second)
	if _, ok := b.c.assocs[500]; ok {
		t.Fatal("idle ENRP-only association kept")
	}
	for _, p := range b.c.Peers() {
		if p.ServerID == a.c.ServerID() && p.Assoc == 0 {
			t.Fatal("peer association reaped as idle")
		}
	}
	for id := range b.c.en.assocs {
		if id == 500 {
			t.Fatal("ENRP state of the reaped association kept")
		}
	}
}

// RFC 5353 §3.4: three registrars starting together each refuse the
// others as mentor (R=1, §3.5). Each tries every peer once and then
// starts with its empty table, instead of passing from one refusing
// mentor to the next for ever.
func TestENRPStartupAllMentorsRefuse(t *testing.T) {
	r := newRouter(t)
	ids := []uint32{0xa0a0a0a0, 0xb0b0b0b0, 0xc0c0c0c0}
	var nodes []*rnode
	for i, id := range ids {
		nodes = append(nodes, r.add(id, func(c *Config) {
			for j := range ids {
				if j != i {
					c.Peers.Static = append(c.Peers.Static, enAddr(j+1))
				}
			}
		}))
	}
	r.advance(100 * time.Millisecond)
	for _, n := range nodes {
		if n.c.InStartup() {
			t.Errorf("%#x still starting after every peer refused to be its mentor (%d table requests sent)",
				n.c.ServerID(), len(sentOf[*tlv.HandleTableRequest](n)))
		}
		if got := len(sentOf[*tlv.HandleTableRequest](n)); got > 2*len(ids) {
			t.Errorf("%#x sent %d table requests, want at most one per peer and dial", n.c.ServerID(), got)
		}
	}
	r.mustRegister(nodes[0], "EchoPool", 1)
	for _, n := range nodes[1:] {
		if _, _, ok := n.c.Lookup(tlv.PoolHandle("EchoPool"), 1); !ok {
			t.Errorf("%#x lacks the PE registered at A after start-up", n.c.ServerID())
		}
	}
}

// RFC 5353 §3.5-3.6 under the default MaxENRPRate: a burst of handle
// updates (1,000 registrations at one instant) and a 5,000-PE table
// transfer reach the peer whole, although both exceed the rate's burst
// many times over (the router's clock stands still, so no token comes
// back). Before, B held 16 of the 1,000 PEs and the sync stalled.
func TestENRPRateSparesUpdatesAndSync(t *testing.T) {
	r, a, b := peered(t, nil)
	for i := range uint32(1000) {
		r.mustRegister(a, fmt.Sprintf("pool-%d", i%5), 0x1000+i)
	}
	if got := b.c.store.Owned(a.c.ServerID()); got != 1000 {
		t.Fatalf("B holds %d of A's 1,000 PEs after the burst of updates", got)
	}
	for i := range uint32(4000) {
		r.mustRegister(a, fmt.Sprintf("pool-%d", i%5), 0x10000+i)
	}
	c := r.add(0xc0c0c0c0, func(cfg *Config) { cfg.Peers.Static = []transport.Addr{a.addr} })
	r.pump()
	if c.c.InStartup() {
		t.Fatal("C still in start-up")
	}
	if got := c.c.store.Owned(a.c.ServerID()); got != 5000 {
		t.Fatalf("C holds %d of A's 5,000 PEs after the sync", got)
	}
	if d := c.c.ENRPStats().Dropped + a.c.ENRPStats().Dropped; d != 0 {
		t.Fatalf("%d ENRP messages dropped", d)
	}
}

// RSPLIB 3.4.4 answers a message it rejects with an ENRP_ERROR that keeps
// the offending message's header as it was: Sender's ID is ours and
// Receiver's ID its own (or 0). Seen on the wire from rspregistrar, in
// answer to a Presence whose Server Information it found unusable (cause
// 0x11, RSPLIB's own code). On the association of a known peer it is that
// peer's error report (RFC 5353 §2.11), not one of our own messages
// looping back: it is counted, never answered, and the store is untouched.
func TestENRPErrorFromRSPLIBWithOurSenderID(t *testing.T) {
	r, a, b := peered(t, nil)
	r.mustRegister(a, "EchoPool", 0x22222222)
	var aid AssocID
	for k, v := range r.links {
		if k.n == a && v.n == b {
			aid = k.id
		}
	}
	pes := a.c.store.PEs()
	for i, rid := range []uint32{b.c.ServerID(), 0} {
		// Bytes as rspregistrar sent them, with the IDs of this test.
		golden := []byte{
			0x0a, 0x00, 0x00, 0x14, // ENRP_ERROR, flags 0, length 20
			0, 0, 0, 0, // Sender's ID: ours (below)
			0, 0, 0, 0, // Receiver's ID: the peer's, or 0
			0x00, 0x0c, 0x00, 0x08, // Operation Error
			0x00, 0x11, 0x00, 0x04, // cause 0x11, no information
		}
		binary.BigEndian.PutUint32(golden[4:], a.c.ServerID())
		binary.BigEndian.PutUint32(golden[8:], rid)
		a.sent = a.sent[:0]
		a.c.HandleENRP(r.now, aid, golden)
		r.collect(a)
		r.q = r.q[:0]
		if len(a.sent) != 0 {
			t.Fatalf("receiver %08x: answered: %+v", rid, a.sent)
		}
		if got := a.c.ENRPStats().ErrorsReceived; got != uint64(i+1) {
			t.Fatalf("receiver %08x: ErrorsReceived = %d, want %d", rid, got, i+1)
		}
	}
	if a.c.store.PEs() != pes || !hasPeer(a, b.c.ServerID()) {
		t.Fatal("store or peer table changed")
	}
}
