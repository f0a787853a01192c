package memnet

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/go-rserpool/rserpool/internal/direct"
	"github.com/go-rserpool/rserpool/transport"
)

const ephemeralFirst = 49152

// Node is one host of the network. It implements transport.Transport:
// Listen binds a port of the node, Dial opens an association from an
// ephemeral port of the node. Addresses have Kind transport.KindMem. It
// implements transport.EndpointTransport too: its listeners dial from
// their own port (DialFrom).
type Node struct {
	n         *Network
	ip        netip.Addr
	id        int
	listeners map[uint16]*listener // guarded by n.mu
	nextPort  uint16               // guarded by n.mu
	ident     transport.Identity   // guarded by n.mu; see SetIdentity
}

var _ transport.Transport = (*Node)(nil)

var _ transport.KindReporter = (*Node)(nil)

// Kind returns transport.KindMem, the Kind of every memnet address.
func (nd *Node) Kind() transport.Kind { return transport.KindMem }

// IP returns the node's IP address.
func (nd *Node) IP() netip.Addr { return nd.ip }

// Addr returns the node's address with the given port.
func (nd *Node) Addr(port uint16) transport.Addr {
	return transport.Addr{Kind: transport.KindMem, AddrPort: netip.AddrPortFrom(nd.ip, port)}
}

func (nd *Node) String() string { return "memnet node " + nd.ip.String() }

// SetIdentity attaches a test identity to the node, as if it held a
// certificate a secured transport had verified (RFC 5355 §4): every
// association the node opens or accepts from now on presents id to its
// peer, whose Conn reports it through transport.PeerIdentifier (and so
// transport.PeerIdentityOf). Associations already open keep the identity
// they were opened with. The zero Identity (the default) removes it: the
// peer's PeerIdentity then returns false, as over plain SCTP. id's
// Certificates slice is copied, the certificates are not.
func (nd *Node) SetIdentity(id transport.Identity) {
	id.Certificates = slices.Clone(id.Certificates)
	nd.n.mu.Lock()
	defer nd.n.mu.Unlock()
	nd.ident = id
}

// Identity returns the identity SetIdentity attached, or the zero
// Identity.
func (nd *Node) Identity() transport.Identity {
	nd.n.mu.Lock()
	defer nd.n.mu.Unlock()
	return nd.ident
}

// ephemeralLocked picks a port no listener of the node uses.
func (nd *Node) ephemeralLocked() uint16 {
	for {
		p := nd.nextPort
		nd.nextPort++
		if nd.nextPort == 0 {
			nd.nextPort = ephemeralFirst
		}
		if _, used := nd.listeners[p]; !used {
			return p
		}
	}
}

// Listen binds a listener. at must have Kind KindMem; its IP must be the
// node's, unspecified, or absent (the zero Addr); port 0 picks a free port.
func (nd *Node) Listen(at transport.Addr) (transport.Listener, error) {
	if at.Kind != transport.KindMem {
		return nil, fmt.Errorf("memnet: listen on %v: not a memnet address", at)
	}
	if ip := at.AddrPort.Addr(); ip.IsValid() && !ip.IsUnspecified() && ip.Unmap() != nd.ip {
		return nil, fmt.Errorf("memnet: listen on %v: not the address of %v", at, nd)
	}
	n := nd.n
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return nil, fmt.Errorf("memnet: listen: %w", transport.ErrClosed)
	}
	port := at.AddrPort.Port()
	if port == 0 {
		port = nd.ephemeralLocked()
	} else if _, used := nd.listeners[port]; used {
		return nil, fmt.Errorf("memnet: listen on %v: %w", nd.Addr(port), ErrAddrInUse)
	}
	l := &listener{nd: nd, addr: nd.Addr(port), notify: make(chan struct{}, 1), done: make(chan struct{})}
	nd.listeners[port] = l
	return l, nil
}

// Dial opens an association to the listener at to. The handshake takes no
// network time: when to's node is reachable, Dial returns at once, with a
// connection or with ErrRefused if nothing listens there. An address no node
// has fails with ErrUnreachable. Across a partition, Dial waits until Heal,
// the association timeout (then ErrUnreachable) or the end of ctx; in step
// mode, where time moves only when the test steps, it fails at once with
// ErrUnreachable.
func (nd *Node) Dial(ctx context.Context, to transport.Addr) (transport.Conn, error) {
	return nd.dial(ctx, to, nil)
}

// ListenEndpoint is Listen, typed as a transport.Endpoint: the listener
// also dials from its own address (DialFrom).
func (nd *Node) ListenEndpoint(at transport.Addr) (transport.Endpoint, error) {
	l, err := nd.Listen(at)
	if err != nil {
		return nil, err
	}
	return l.(*listener), nil
}

var (
	_ transport.EndpointTransport = (*Node)(nil)
	_ transport.Endpoint          = (*listener)(nil)
)

// DialFrom is Dial from the listener's address instead of an ephemeral
// port: the peer's RemoteAddr is the listener's Addr, so the peer can dial
// back there (transport.Endpoint). It fails with ErrClosed once the
// listener is closed; associations it opened stay open.
func (l *listener) DialFrom(ctx context.Context, to transport.Addr) (transport.Conn, error) {
	return l.nd.dial(ctx, to, l)
}

// dial opens an association to to from an ephemeral port of nd, or from
// the listener from when it is not nil.
func (nd *Node) dial(ctx context.Context, to transport.Addr, from *listener) (transport.Conn, error) {
	if to.Kind != transport.KindMem {
		return nil, fmt.Errorf("memnet: dial %v: not a memnet address", to)
	}
	n := nd.n
	var expired chan struct{}
	for {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("memnet: dial %v: %w", to, err)
		}
		n.mu.Lock()
		if n.closed {
			n.mu.Unlock()
			return nil, fmt.Errorf("memnet: dial %v: %w", to, transport.ErrClosed)
		}
		if from != nil && from.closed {
			n.mu.Unlock()
			return nil, fmt.Errorf("memnet: dial %v from %v: %w", to, from.addr, transport.ErrClosed)
		}
		peer := n.nodes[to.AddrPort.Addr().Unmap()]
		if peer == nil {
			n.mu.Unlock()
			return nil, fmt.Errorf("memnet: dial %v: %w", to, ErrUnreachable)
		}
		if !n.cutLocked(nd, peer) {
			local := transport.Addr{}
			if from != nil {
				local = from.addr
			}
			c, err := n.connectLocked(nd, peer, to, local)
			n.mu.Unlock()
			return c, err
		}
		if n.cfg.step {
			n.mu.Unlock()
			return nil, fmt.Errorf("memnet: dial %v across a partition: %w", to, ErrUnreachable)
		}
		healed := n.healed
		if expired == nil {
			expired = make(chan struct{})
			t := time.AfterFunc(n.cfg.assocTimeout, func() { close(expired) })
			defer t.Stop()
		}
		n.mu.Unlock()
		select {
		case <-healed:
		case <-expired:
			return nil, fmt.Errorf("memnet: dial %v: no answer across a partition: %w", to, ErrUnreachable)
		case <-ctx.Done():
			return nil, fmt.Errorf("memnet: dial %v: %w", to, ctx.Err())
		}
	}
}

// connectLocked opens an association from nd to the listener at to, from
// local (an ephemeral port of nd when local is the zero Addr).
func (n *Network) connectLocked(nd, peer *Node, to transport.Addr, local transport.Addr) (transport.Conn, error) {
	l := peer.listeners[to.AddrPort.Port()]
	if l == nil || l.closed {
		return nil, fmt.Errorf("memnet: dial %v: %w", to, ErrRefused)
	}
	if !local.IsValid() {
		local = nd.Addr(nd.ephemeralLocked())
	}
	as := &assoc{id: n.seq}
	n.seq++
	c := newConn(n, nd, as, local, l.addr)
	s := newConn(n, peer, as, l.addr, local)
	c.peer, s.peer = s, c
	c.peerID, s.peerID = peer.ident, nd.ident // what each end's peer presents
	as.ends = [2]*conn{c, s}
	n.assocs[as] = struct{}{}
	l.backlog = append(l.backlog, s)
	signal(l.notify)
	return c, nil
}

// signal wakes one waiter of a notify channel without blocking.
func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

type listener struct {
	nd      *Node
	addr    transport.Addr
	notify  chan struct{}
	done    chan struct{}
	closed  bool    // guarded by n.mu
	backlog []*conn // guarded by n.mu
}

func (l *listener) Addr() transport.Addr { return l.addr }

func (l *listener) Accept(ctx context.Context) (transport.Conn, error) {
	n := l.nd.n
	for {
		n.mu.Lock()
		if l.closed {
			n.mu.Unlock()
			return nil, fmt.Errorf("memnet: accept on %v: %w", l.addr, transport.ErrClosed)
		}
		if len(l.backlog) > 0 {
			c := l.backlog[0]
			l.backlog[0] = nil
			l.backlog = l.backlog[1:]
			if len(l.backlog) > 0 {
				signal(l.notify)
			}
			n.mu.Unlock()
			return c, nil
		}
		n.mu.Unlock()
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		select {
		case <-l.notify:
		case <-l.done:
		case <-ctx.Done():
		}
	}
}

// Close stops accepting. Associations not yet accepted are aborted: their
// dialing side gets ErrAssociationLost.
func (l *listener) Close() error {
	n := l.nd.n
	n.mu.Lock()
	defer n.mu.Unlock()
	l.closeLocked()
	return nil
}

func (l *listener) closeLocked() {
	if l.closed {
		return
	}
	l.closed = true
	close(l.done)
	if l.nd.listeners[l.addr.AddrPort.Port()] == l {
		delete(l.nd.listeners, l.addr.AddrPort.Port())
	}
	n := l.nd.n
	for _, s := range l.backlog {
		s.closeLocked()
		n.loseLocked(s.a)
	}
	l.backlog = nil
}

// assoc is one association: two conns.
type assoc struct {
	id         uint64
	ends       [2]*conn
	lost       bool
	gen        uint64   // bumped by Heal; cancels partition timeouts
	timerArmed bool     // a partition timeout is queued for gen
	held       []*event // messages waiting for a partition to heal
}

// conn is one end of an association. Fields after the first block are
// guarded by n.mu.
type conn struct {
	n     *Network
	node  *Node
	a     *assoc
	peer  *conn
	local transport.Addr
	rem   transport.Addr
	// peerID is the identity the peer's node had when the association
	// was opened (Node.SetIdentity); zero: none. Never changes.
	peerID transport.Identity

	notify chan struct{} // a message or the end arrived, or Close was called

	inbox    []transport.Message
	closed   bool
	term     error // ErrPeerClosed or ErrAssociationLost once known
	lastAt   map[uint16]time.Time
	maxAt    time.Time
	inflight int // queued events from this end to its peer
	// push is offered each message delivered while waiting is 0
	// (direct.Pusher); waiting counts the messages that went to the inbox
	// and have not been handed on by Recv's caller (Resume) yet.
	push    func(transport.Message) bool
	waiting int
}

var (
	_ transport.Conn           = (*conn)(nil)
	_ transport.PeerIdentifier = (*conn)(nil)
	_ direct.Cheap             = (*conn)(nil)
	_ direct.Pusher            = (*conn)(nil)
)

func newConn(n *Network, nd *Node, as *assoc, local, remote transport.Addr) *conn {
	return &conn{n: n, node: nd, a: as, local: local, rem: remote,
		notify: make(chan struct{}, 1), lastAt: make(map[uint16]time.Time)}
}

func (c *conn) LocalAddr() transport.Addr  { return c.local }
func (c *conn) RemoteAddr() transport.Addr { return c.rem }

// PeerIdentity returns the identity the peer's node presented when the
// association was opened (Node.SetIdentity), and false when it had none.
func (c *conn) PeerIdentity() (transport.Identity, bool) {
	if c.peerID.IsZero() {
		return transport.Identity{}, false
	}
	id := c.peerID
	id.Certificates = slices.Clone(id.Certificates)
	return id, true
}

// TrySend is Send without a context: a memnet send never waits.
func (c *conn) TrySend(m transport.Message) (bool, error) {
	return true, c.Send(context.Background(), m)
}

// CheapSend marks TrySend as costing no more than a hand-over to another
// goroutine (direct.Cheap).
func (c *conn) CheapSend() {}

// SetPush offers f the messages delivered to c from now on (direct.Pusher).
func (c *conn) SetPush(f func(transport.Message) bool) {
	c.n.mu.Lock()
	c.push = f
	c.n.mu.Unlock()
}

// Resume counts one message from the inbox as handed on (direct.Pusher).
func (c *conn) Resume() {
	c.n.mu.Lock()
	if c.waiting > 0 {
		c.waiting--
	}
	c.n.mu.Unlock()
}

func (c *conn) Send(ctx context.Context, m transport.Message) error {
	n := c.n
	if len(m.Data) == 0 {
		return fmt.Errorf("memnet: send to %v: %w", c.rem, transport.ErrEmptyMessage)
	}
	if len(m.Data) > n.cfg.maxMsg {
		return fmt.Errorf("memnet: send %d bytes to %v (max %d): %w", len(m.Data), c.rem, n.cfg.maxMsg, transport.ErrMessageTooLarge)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	m.Data = append([]byte(nil), m.Data...)
	n.mu.Lock()
	defer n.mu.Unlock()
	switch {
	case c.closed:
		return fmt.Errorf("memnet: send to %v: %w", c.rem, transport.ErrClosed)
	case c.term != nil:
		return fmt.Errorf("memnet: send to %v: %w", c.rem, c.term)
	}
	n.sendLocked(c, evData, m)
	return nil
}

// sendLocked schedules a message (or the shutdown) from c to its peer.
func (n *Network) sendLocked(c *conn, kind evKind, m transport.Message) {
	link := n.linkLocked(c.node, c.peer.node)
	if kind == evData && link == (Link{}) && !n.cfg.step && c.inflight == 0 && len(c.a.held) == 0 && !n.cutLocked(c.node, c.peer.node) {
		// A perfect link with nothing of c's queued: every message c sent
		// before has been delivered, so order holds without the times.
		n.deliverNowLocked(c, c.peer, m)
		return
	}
	now := n.nowLocked()
	d := link.Delay
	if kind == evData {
		d += n.jitterLocked(link)
		if link.Loss > 0 {
			// SCTP retransmits: a loss shows up as delay. Too many in a
			// row and the association fails.
			rto, extra := n.cfg.rto, time.Duration(0)
			for n.rng.Float64() < link.Loss {
				extra += rto
				rto *= 2
				if extra >= n.cfg.assocTimeout {
					n.traceLocked(TraceEvent{Kind: TraceDrop, From: c.local, To: c.rem, PPID: m.PPID, Stream: m.Stream, Len: len(m.Data)})
					n.pushLocked(&event{at: now.Add(n.cfg.assocTimeout), kind: evAssocLost, a: c.a, force: true})
					return
				}
			}
			d += extra
		}
	}
	at := now.Add(d)
	if kind == evData {
		if last := c.lastAt[m.Stream]; at.Before(last) {
			at = last
		}
		c.lastAt[m.Stream] = at
	} else if at.Before(c.maxAt) {
		at = c.maxAt // the shutdown follows every message
	}
	if at.After(c.maxAt) {
		c.maxAt = at
	}
	ev := &event{at: at, kind: kind, a: c.a, from: c, to: c.peer, msg: m}
	if !n.cfg.step && !at.After(now) && c.inflight == 0 && len(c.a.held) == 0 && !n.cutLocked(c.node, c.peer.node) {
		n.deliverAssocLocked(ev) // nothing queued ahead of it: deliver now
		return
	}
	n.pushLocked(ev)
}

// deliverNowLocked is deliverAssocLocked for a message that goes at once
// over a link that is not cut: it needs no event.
func (n *Network) deliverNowLocked(from, to *conn, m transport.Message) {
	if from.a.lost || to.closed {
		n.traceLocked(TraceEvent{Kind: TraceDrop, From: from.local, To: to.local, PPID: m.PPID, Stream: m.Stream, Len: len(m.Data)})
		return
	}
	to.deliverLocked(m)
	n.traceLocked(TraceEvent{Kind: TraceDeliver, From: from.local, To: to.local, PPID: m.PPID, Stream: m.Stream, Len: len(m.Data)})
}

// deliverLocked offers m to the push function, else queues it for Recv.
func (c *conn) deliverLocked(m transport.Message) {
	if c.push != nil && c.waiting == 0 && c.push(m) {
		return
	}
	c.waiting++
	c.inbox = append(c.inbox, m)
	signal(c.notify)
}

func (n *Network) deliverAssocLocked(ev *event) {
	to, as := ev.to, ev.a
	te := TraceEvent{From: ev.from.local, To: to.local, PPID: ev.msg.PPID, Stream: ev.msg.Stream, Len: len(ev.msg.Data)}
	switch {
	case as.lost || to.closed:
		te.Kind = TraceDrop
	case n.cutLocked(ev.from.node, to.node):
		te.Kind = TraceHold
		as.held = append(as.held, ev)
	case ev.kind == evShutdown:
		te.Kind = TraceShutdown
		if to.term == nil {
			to.term = transport.ErrPeerClosed
			signal(to.notify)
		}
		delete(n.assocs, as)
	default:
		te.Kind = TraceDeliver
		to.deliverLocked(ev.msg)
	}
	n.traceLocked(te)
}

// loseLocked fails the association: both ends get ErrAssociationLost.
func (n *Network) loseLocked(as *assoc) {
	if as.lost {
		return
	}
	as.lost = true
	as.held = nil
	delete(n.assocs, as)
	for _, c := range as.ends {
		if c.term == nil {
			c.term = transport.ErrAssociationLost
			signal(c.notify)
		}
	}
	n.traceLocked(TraceEvent{Kind: TraceLost, From: as.ends[0].local, To: as.ends[1].local})
}

func (c *conn) Recv(ctx context.Context) (transport.Message, error) {
	n := c.n
	for {
		n.mu.Lock()
		if c.closed {
			signal(c.notify) // wake another receiver
			n.mu.Unlock()
			return transport.Message{}, fmt.Errorf("memnet: recv from %v: %w", c.rem, transport.ErrClosed)
		}
		if len(c.inbox) > 0 {
			m := c.inbox[0]
			c.inbox[0] = transport.Message{}
			if len(c.inbox) == 1 {
				c.inbox = c.inbox[:0] // keep the array for the next one
			} else {
				c.inbox = c.inbox[1:]
				signal(c.notify) // wake another receiver
			}
			n.mu.Unlock()
			return m, nil
		}
		if c.term != nil {
			err := c.term
			signal(c.notify)
			n.mu.Unlock()
			return transport.Message{}, fmt.Errorf("memnet: recv from %v: %w", c.rem, err)
		}
		n.mu.Unlock()
		if err := ctx.Err(); err != nil {
			return transport.Message{}, err
		}
		// Close, the peer's end and every delivery signal notify, so it is
		// the one channel to wait on; a context that cannot end (a
		// receiver's usual one) makes that a plain receive, not a select.
		if done := ctx.Done(); done == nil {
			<-c.notify
		} else {
			select {
			case <-c.notify:
			case <-done:
			}
		}
	}
}

// Close shuts the association down gracefully: the peer receives every
// message sent before, then ErrPeerClosed.
func (c *conn) Close() error {
	n := c.n
	n.mu.Lock()
	defer n.mu.Unlock()
	if c.closed {
		return nil
	}
	c.closeLocked()
	if c.term == nil && !c.a.lost && !n.closed {
		n.sendLocked(c, evShutdown, transport.Message{})
	} else if c.peer.closed || c.a.lost {
		delete(n.assocs, c.a)
	}
	return nil
}

// Abort ends the association at once (RFC 9260 §9.1): messages still in
// flight are dropped and the peer's Recv fails with ErrAssociationLost.
func (c *conn) Abort() error {
	n := c.n
	n.mu.Lock()
	defer n.mu.Unlock()
	if c.closed {
		return nil
	}
	c.closeLocked()
	n.loseLocked(c.a)
	return nil
}

func (c *conn) closeLocked() {
	if c.closed {
		return
	}
	c.closed = true
	c.inbox = nil
	signal(c.notify) // a Recv waiting on c ends
}
