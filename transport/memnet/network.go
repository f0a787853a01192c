package memnet

import (
	"container/heap"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"sync"
	"time"

	"github.com/go-rserpool/rserpool/transport"
)

// Errors a Dial or Listen on a memnet node may return besides the
// transport sentinels.
var (
	// ErrUnreachable: no node has the address, or a partition separates
	// the nodes and no answer came in time.
	ErrUnreachable = errors.New("memnet: address unreachable")
	// ErrRefused: the node exists but nothing listens on the port (the
	// peer answered the INIT with an ABORT).
	ErrRefused = errors.New("memnet: association refused")
	// ErrAddrInUse: a listener already holds the port.
	ErrAddrInUse = errors.New("memnet: address in use")
)

// Defaults for the network's options.
const (
	// DefaultRTO is the retransmission delay a lost message adds, doubled
	// for each further loss: RTO.Initial of RFC 9260 §16.
	DefaultRTO = time.Second
	// DefaultAssociationTimeout is how long an association survives a
	// partition, or a run of lost retransmissions, before both ends get
	// ErrAssociationLost. Real SCTP takes minutes with the RFC 9260
	// defaults (Association.Max.Retrans 10, RTO.Max 60 s); tests want less.
	DefaultAssociationTimeout = 10 * time.Second
	// announceQueue is how many datagrams an Announcer holds before it
	// drops new ones, like a full socket buffer.
	announceQueue = 1024
)

// stepEpoch is where virtual time starts in step mode.
var stepEpoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// Link describes one direction between two nodes.
type Link struct {
	// Loss is the probability, 0 to 1, that a packet is lost. A lost
	// announce datagram is gone. A lost association message is
	// retransmitted, as SCTP does: each loss adds the RTO (doubling) to its
	// delay, and when that passes the association timeout the association
	// fails with ErrAssociationLost.
	Loss float64
	// Delay is the one-way delay.
	Delay time.Duration
	// Jitter adds a random delay in [0, Jitter) to each message, so
	// messages on different streams and announce datagrams get reordered.
	// Order within a stream is always kept.
	Jitter time.Duration
}

type config struct {
	step         bool
	trace        func(TraceEvent)
	link         Link
	rto          time.Duration
	assocTimeout time.Duration
	maxMsg       int
}

// Option configures a Network.
type Option func(*config)

// StepMode makes the network deliver nothing until the test calls Step,
// StepAll or Advance. Time is virtual: it starts at a fixed instant and
// moves only to the time of the event being delivered. With the same seed
// and the same calls in the same order, the delivery trace is the same.
func StepMode() Option { return func(c *config) { c.step = true } }

// WithTrace calls fn for every delivery, drop, hold and association event,
// with the network's lock held: fn must not call into the network, nor
// wait for a driver loop (a loop's own sends run fn on its goroutine).
func WithTrace(fn func(TraceEvent)) Option { return func(c *config) { c.trace = fn } }

// WithLink sets the link used between nodes that SetLink has not
// configured. The default is a perfect link: no loss, no delay.
func WithLink(l Link) Option { return func(c *config) { c.link = l } }

// WithRTO sets the retransmission delay a lost message adds (default
// DefaultRTO); it is also the extra delay of messages held by a partition
// after Heal.
func WithRTO(d time.Duration) Option { return func(c *config) { c.rto = d } }

// WithAssociationTimeout sets how long an association survives a partition
// (default DefaultAssociationTimeout).
func WithAssociationTimeout(d time.Duration) Option {
	return func(c *config) { c.assocTimeout = d }
}

// WithMaxMessageSize lowers the largest message Send accepts (default and
// upper bound transport.MaxMessageSize).
func WithMaxMessageSize(n int) Option { return func(c *config) { c.maxMsg = n } }

// TraceKind says what happened to a packet.
type TraceKind uint8

const (
	TraceDeliver  TraceKind = iota // a message or datagram reached its receiver
	TraceDrop                      // lost, partitioned announce, or receiver gone
	TraceHold                      // an association message waits for a partition to heal
	TraceShutdown                  // the peer's graceful close reached the receiver
	TraceLost                      // the association failed
)

func (k TraceKind) String() string {
	switch k {
	case TraceDeliver:
		return "deliver"
	case TraceDrop:
		return "drop"
	case TraceHold:
		return "hold"
	case TraceShutdown:
		return "shutdown"
	case TraceLost:
		return "lost"
	}
	return fmt.Sprintf("trace(%d)", uint8(k))
}

// TraceEvent records one thing the network did.
type TraceEvent struct {
	At       time.Time
	Kind     TraceKind
	From, To transport.Addr
	Announce bool // a multicast datagram, not an association message
	PPID     uint32
	Stream   uint16
	Len      int
}

func (e TraceEvent) String() string {
	what := "assoc"
	if e.Announce {
		what = "announce"
	}
	return fmt.Sprintf("%s %s %s %v->%v ppid=%d stream=%d len=%d",
		e.At.Format("15:04:05.000000"), e.Kind, what, e.From, e.To, e.PPID, e.Stream, e.Len)
}

// Network is an in-memory network of nodes. All its methods are safe for
// concurrent use.
type Network struct {
	mu     sync.Mutex
	cfg    config
	rng    *rand.Rand
	closed bool

	nodes  map[netip.Addr]*Node
	order  []*Node // in creation order
	nextIP netip.Addr
	links  map[[2]*Node]Link
	cuts   map[[2]*Node]bool // unordered pairs, lower id first
	healed chan struct{}     // closed and replaced by Heal

	assocs map[*assoc]struct{}
	groups map[netip.AddrPort][]*announcer

	events   eventHeap
	seq      uint64
	vnow     time.Time // step mode
	timer    *time.Timer
	timerAt  time.Time
	timerGen uint64
}

// New returns an empty network whose random choices (loss, jitter) come
// from a source seeded with seed.
func New(seed int64, opts ...Option) *Network {
	cfg := config{rto: DefaultRTO, assocTimeout: DefaultAssociationTimeout, maxMsg: transport.MaxMessageSize}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.maxMsg <= 0 || cfg.maxMsg > transport.MaxMessageSize {
		cfg.maxMsg = transport.MaxMessageSize
	}
	if cfg.rto <= 0 {
		cfg.rto = DefaultRTO
	}
	if cfg.assocTimeout <= 0 {
		cfg.assocTimeout = DefaultAssociationTimeout
	}
	return &Network{
		cfg:    cfg,
		rng:    rand.New(rand.NewPCG(uint64(seed), 0x9e3779b97f4a7c15)),
		nodes:  make(map[netip.Addr]*Node),
		nextIP: netip.AddrFrom4([4]byte{10, 0, 0, 0}),
		links:  make(map[[2]*Node]Link),
		cuts:   make(map[[2]*Node]bool),
		healed: make(chan struct{}),
		assocs: make(map[*assoc]struct{}),
		groups: make(map[netip.AddrPort][]*announcer),
		vnow:   stepEpoch,
	}
}

// NewNode adds a node with the next free address of 10.0.0.0/8.
func (n *Network) NewNode() *Node {
	n.mu.Lock()
	defer n.mu.Unlock()
	for {
		n.nextIP = n.nextIP.Next()
		if _, taken := n.nodes[n.nextIP]; !taken {
			return n.addNodeLocked(n.nextIP)
		}
	}
}

// NewNodeAt adds a node with the given IPv4 or IPv6 address.
func (n *Network) NewNodeAt(ip netip.Addr) (*Node, error) {
	if !ip.IsValid() || ip.IsUnspecified() {
		return nil, fmt.Errorf("memnet: invalid node address %v", ip)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	ip = ip.Unmap()
	if _, taken := n.nodes[ip]; taken {
		return nil, fmt.Errorf("memnet: node %v: %w", ip, ErrAddrInUse)
	}
	return n.addNodeLocked(ip), nil
}

func (n *Network) addNodeLocked(ip netip.Addr) *Node {
	nd := &Node{n: n, ip: ip, id: len(n.order), listeners: make(map[uint16]*listener), nextPort: ephemeralFirst}
	n.nodes[ip] = nd
	n.order = append(n.order, nd)
	return nd
}

// SetLink sets the link from one node to another (one direction).
func (n *Network) SetLink(from, to *Node, l Link) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.links[[2]*Node{from, to}] = l
}

func (n *Network) linkLocked(from, to *Node) Link {
	if len(n.links) == 0 {
		return n.cfg.link
	}
	if l, ok := n.links[[2]*Node{from, to}]; ok {
		return l
	}
	return n.cfg.link
}

func pairKey(a, b *Node) [2]*Node {
	if a.id > b.id {
		a, b = b, a
	}
	return [2]*Node{a, b}
}

func (n *Network) cutLocked(a, b *Node) bool {
	return len(n.cuts) > 0 && n.cuts[pairKey(a, b)]
}

// Partition cuts every link between a node of a and a node of b, in both
// directions, until Heal. Announces across the cut are dropped.
// Association messages across it are held: delivered (late by the RTO)
// if Heal comes within the association timeout, otherwise both ends get
// ErrAssociationLost. Partitions add up.
func (n *Network) Partition(a, b []*Node) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, x := range a {
		for _, y := range b {
			if x != y {
				n.cuts[pairKey(x, y)] = true
			}
		}
	}
	now := n.nowLocked()
	for _, as := range n.sortedAssocsLocked() {
		if as.lost || as.timerArmed || !n.cutLocked(as.ends[0].node, as.ends[1].node) {
			continue
		}
		as.timerArmed = true
		n.pushLocked(&event{at: now.Add(n.cfg.assocTimeout), kind: evAssocLost, a: as, gen: as.gen})
	}
}

// Isolate partitions nd from every other node.
func (n *Network) Isolate(nd *Node) {
	n.mu.Lock()
	others := make([]*Node, 0, len(n.order))
	for _, o := range n.order {
		if o != nd {
			others = append(others, o)
		}
	}
	n.mu.Unlock()
	n.Partition([]*Node{nd}, others)
}

// Heal removes every partition. Held association messages are delivered
// one RTO (plus the link delay) from now, in order.
func (n *Network) Heal() {
	n.mu.Lock()
	defer n.mu.Unlock()
	clear(n.cuts)
	close(n.healed)
	n.healed = make(chan struct{})
	// Messages of an association with held messages that are still
	// queued go behind the held ones, to keep order per stream.
	held := make(map[*assoc]bool)
	for as := range n.assocs {
		as.gen++ // cancels pending partition timeouts
		as.timerArmed = false
		if len(as.held) > 0 {
			held[as] = true
		}
	}
	if len(held) == 0 {
		return
	}
	var keep, later eventHeap
	for _, ev := range n.events {
		if ev.a != nil && held[ev.a] && (ev.kind == evData || ev.kind == evShutdown) {
			later = append(later, ev)
		} else {
			keep = append(keep, ev)
		}
	}
	n.events = keep
	heap.Init(&n.events)
	heap.Init(&later)
	for later.Len() > 0 {
		ev := heap.Pop(&later).(*event)
		ev.a.held = append(ev.a.held, ev)
	}
	now := n.nowLocked()
	for _, as := range n.sortedAssocsLocked() {
		if !held[as] {
			continue
		}
		evs := as.held
		as.held = nil
		for _, ev := range evs {
			at := now.Add(n.cfg.rto + n.linkLocked(ev.from.node, ev.to.node).Delay)
			if ev.kind == evData {
				if last := ev.from.lastAt[ev.msg.Stream]; at.Before(last) {
					at = last
				}
				ev.from.lastAt[ev.msg.Stream] = at
			}
			if at.Before(ev.from.maxAt) && ev.kind == evShutdown {
				at = ev.from.maxAt
			}
			if at.After(ev.from.maxAt) {
				ev.from.maxAt = at
			}
			ev.at = at
			n.pushLocked(ev)
		}
	}
}

// sortedAssocsLocked lists the live associations in creation order, so
// that the events they cause are deterministic.
func (n *Network) sortedAssocsLocked() []*assoc {
	out := make([]*assoc, 0, len(n.assocs))
	for as := range n.assocs {
		out = append(out, as)
	}
	for i := 1; i < len(out); i++ { // insertion sort by id; few associations
		for j := i; j > 0 && out[j].id < out[j-1].id; j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}

// Now returns the network's time: virtual in step mode, time.Now
// otherwise.
func (n *Network) Now() time.Time {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.nowLocked()
}

func (n *Network) nowLocked() time.Time {
	if n.cfg.step {
		return n.vnow
	}
	return time.Now()
}

// Pending returns how many deliveries and timeouts are queued.
func (n *Network) Pending() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.events.Len()
}

// Step delivers the earliest queued event, moving virtual time to it, and
// reports whether there was one. Only meaningful in step mode.
func (n *Network) Step() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.events.Len() == 0 {
		return false
	}
	ev := heap.Pop(&n.events).(*event)
	if ev.at.After(n.vnow) {
		n.vnow = ev.at
	}
	n.dispatchLocked(ev)
	return true
}

// StepAll steps until nothing is queued (including what the steps queue)
// and returns how many events it delivered.
func (n *Network) StepAll() int {
	k := 0
	for n.Step() {
		k++
	}
	return k
}

// Advance delivers, in step mode, every event due within d from now, then
// moves virtual time forward by d. It returns how many events it delivered.
func (n *Network) Advance(d time.Duration) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	until := n.vnow.Add(d)
	k := 0
	for n.events.Len() > 0 && !n.events[0].at.After(until) {
		ev := heap.Pop(&n.events).(*event)
		if ev.at.After(n.vnow) {
			n.vnow = ev.at
		}
		n.dispatchLocked(ev)
		k++
	}
	n.vnow = until
	return k
}

// Close closes every listener, association and announcer of the network:
// their blocked calls return ErrClosed. Queued deliveries are discarded.
func (n *Network) Close() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return nil
	}
	n.closed = true
	if n.timer != nil {
		n.timer.Stop()
		n.timer = nil
	}
	n.events = nil
	for as := range n.assocs {
		for _, c := range as.ends {
			c.closeLocked()
		}
	}
	clear(n.assocs)
	for _, nd := range n.order {
		for _, l := range nd.listeners {
			l.closeLocked()
		}
	}
	for _, members := range n.groups {
		for _, a := range members {
			a.closeLocked()
		}
	}
	clear(n.groups)
	return nil
}

// traceLocked reports an event to the trace function, if any.
func (n *Network) traceLocked(e TraceEvent) {
	if n.cfg.trace != nil {
		e.At = n.nowLocked()
		n.cfg.trace(e)
	}
}

// jitterLocked draws the random extra delay of one packet.
func (n *Network) jitterLocked(l Link) time.Duration {
	if l.Jitter <= 0 {
		return 0
	}
	return time.Duration(n.rng.Int64N(int64(l.Jitter)))
}

// Scheduler.

type evKind uint8

const (
	evData evKind = iota
	evShutdown
	evAssocLost
	evDatagram
)

type event struct {
	at   time.Time
	seq  uint64
	kind evKind
	// association events
	a        *assoc
	from, to *conn
	gen      uint64
	force    bool // evAssocLost regardless of Heal
	msg      transport.Message
	// announce events
	dst     *announcer
	src     transport.Addr
	srcNode *Node
	data    []byte
}

type eventHeap []*event

func (h eventHeap) Len() int { return len(h) }
func (h eventHeap) Less(i, j int) bool {
	if !h[i].at.Equal(h[j].at) {
		return h[i].at.Before(h[j].at)
	}
	return h[i].seq < h[j].seq
}
func (h eventHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *eventHeap) Push(x any)   { *h = append(*h, x.(*event)) }
func (h *eventHeap) Pop() any {
	old := *h
	ev := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return ev
}

// pushLocked queues ev and, outside step mode, arms the timer.
func (n *Network) pushLocked(ev *event) {
	n.seq++
	ev.seq = n.seq
	if ev.from != nil && (ev.kind == evData || ev.kind == evShutdown) {
		ev.from.inflight++
	}
	heap.Push(&n.events, ev)
	if !n.cfg.step {
		n.armLocked()
	}
}

func (n *Network) armLocked() {
	if n.closed || n.events.Len() == 0 {
		return
	}
	at := n.events[0].at
	if n.timer != nil && !at.Before(n.timerAt) {
		return
	}
	if n.timer != nil {
		n.timer.Stop()
	}
	n.timerGen++
	gen := n.timerGen
	n.timerAt = at
	n.timer = time.AfterFunc(time.Until(at), func() { n.fire(gen) })
}

// fire delivers every event that is due and re-arms the timer.
func (n *Network) fire(gen uint64) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if gen != n.timerGen || n.closed {
		return
	}
	n.timer = nil
	now := time.Now()
	for n.events.Len() > 0 && !n.events[0].at.After(now) {
		n.dispatchLocked(heap.Pop(&n.events).(*event))
	}
	n.armLocked()
}

func (n *Network) dispatchLocked(ev *event) {
	switch ev.kind {
	case evData, evShutdown:
		ev.from.inflight--
		n.deliverAssocLocked(ev)
	case evAssocLost:
		if ev.a.lost || (!ev.force && ev.gen != ev.a.gen) {
			return
		}
		n.loseLocked(ev.a)
	case evDatagram:
		n.deliverDatagramLocked(ev)
	}
}
