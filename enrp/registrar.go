package enrp

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-rserpool/rserpool/internal/loop"
	"github.com/go-rserpool/rserpool/tlv"
	"github.com/go-rserpool/rserpool/transport"
)

// Registrar is an embeddable RSerPool registrar (an ENRP server, RFC 5353,
// serving ASAP, RFC 5352): it owns a handlespace, accepts registrations
// from pool elements and handle resolutions from pool users on an ASAP
// listener, supervises the PEs it owns, and announces itself by multicast.
// With Config.Peers it peers with other registrars by ENRP (RFC 5353):
// it accepts peers on the ASAP listener (ENRP told apart by its PPID, 12)
// or on a separate ENRP listener, dials the peers its core asks for, and
// sends and receives ENRP Presence on the ENRP multicast group.
//
// Create it with New, serve with Run (one call; it returns when its
// context ends or Close is called), and read its state with Stats, Pools
// and PoolElements from any goroutine. Config.Events tells the host of
// every change to the PEs it owns as it happens.
type Registrar struct {
	cfg  Config
	log  *slog.Logger
	id   uint32
	l    transport.Listener
	ownL bool
	core *Core

	mu      sync.Mutex
	state   int        // 0 new, 1 running, 2 done
	loop    *loop.Loop // set by Run; it owns core
	cancel  context.CancelFunc
	done    chan struct{}
	closeMu sync.Once

	// seen, set by tests before Run, sees every ENRP input the driver
	// gives the core, on the loop.
	seen func(driverInput)

	statsMu sync.Mutex
	stats   Stats
	dropped atomic.Uint64 // events Config.Events had no room for
}

// Stats is a snapshot of a Registrar's counts.
type Stats struct {
	Pools        int // pools in the handlespace
	PEs          int // PEs in the handlespace
	Owned        int // PEs this registrar is home of and supervises
	Associations int // open associations: of PEs and PUs (ASAP), and of peer registrars (ENRP)
	// ASAP counts the ASAP procedures run (registrations, resolutions,
	// keep-alives, removals, errors, drops).
	ASAP ASAPStats
	// ENRP counts the ENRP procedures run (RFC 5353: presences, peers,
	// handle updates, table sync, audits, errors, drops).
	ENRP ENRPStats
	// EventsDropped counts the events not sent on Config.Events because
	// it was full. Unlike the other counts it is read when Stats is
	// called.
	EventsDropped uint64
}

// New validates cfg, opens the ASAP listener if cfg.Listener is nil, and
// returns a Registrar ready to Run.
func New(cfg Config) (*Registrar, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	r := &Registrar{
		cfg: cfg, log: logger(cfg.Logger), l: cfg.Listener,
		done: make(chan struct{}),
	}
	if r.l == nil {
		var err error
		if r.l, err = cfg.Transport.Listen(cfg.ListenAddr); err != nil {
			return nil, fmt.Errorf("enrp: listen at %v: %w", cfg.ListenAddr, err)
		}
		r.ownL = true
	}
	if cfg.ASAP.AnnounceAddrs == nil {
		if a := r.l.Addr(); a.IsValid() && !a.AddrPort.Addr().IsUnspecified() {
			cfg.ASAP.AnnounceAddrs = []transport.Addr{a}
		}
	}
	if len(cfg.Peers.ENRPAddrs) == 0 {
		// RFC 5353 §2.2.1: the Server Information names where peers
		// reach us, the ENRP listener.
		el := r.l
		if cfg.Peers.Listener != nil {
			el = cfg.Peers.Listener
		}
		if a := el.Addr(); a.IsValid() && !a.AddrPort.Addr().IsUnspecified() {
			cfg.Peers.ENRPAddrs = []transport.Addr{a}
		}
	}
	r.cfg = cfg
	core, err := NewCore(cfg)
	if err != nil {
		r.closeListener()
		return nil, err
	}
	r.core, r.id = core, core.ServerID()
	return r, nil
}

// ServerID returns the registrar's ENRP server identifier.
func (r *Registrar) ServerID() uint32 { return r.id }

// Addr returns the address of the ASAP listener.
func (r *Registrar) Addr() transport.Addr { return r.l.Addr() }

// ENRPAddr returns the address where peer registrars reach this one: the
// separate ENRP listener's (Config.Peers.Listener), else the ASAP
// listener's.
func (r *Registrar) ENRPAddr() transport.Addr {
	if r.cfg.Peers.Listener != nil {
		return r.cfg.Peers.Listener.Addr()
	}
	return r.l.Addr()
}

// Stats returns a snapshot of the registrar's counts, as of the end of the
// last batch of work its loop did.
func (r *Registrar) Stats() Stats {
	r.statsMu.Lock()
	s := r.stats
	r.statsMu.Unlock()
	s.EventsDropped = r.dropped.Load()
	return s
}

// Run serves ASAP (and ENRP) until ctx ends or Close is called, and
// returns nil then. It returns an error when a listener fails. Run may be
// called once.
//
// Inside, one goroutine (the caller's) owns the handlespace and the
// protocol core; one goroutine accepts associations (and one the ENRP
// listener's, when there is one); one receives ENRP multicast (with
// Config.Peers.Announcer); one dials each peer being connected to; each
// association has a reader and a writer goroutine. All of them end
// before Run returns. Run returns an error when a listener fails.
//
// The loop never waits for a peer. An association whose send queue
// overflows (Config.SendQueue) is aborted (RFC 9260 §9.1), and one that
// failed is released, by its writer goroutine. When Run stops, every
// association is shut down gracefully (RFC 9260 §9.2) by its own
// goroutine, all at once, and associations accepted but not yet served
// are aborted: with peers that hang, Run (and so Close) returns after
// one shutdown bound of the transport (sctp.Config.ShutdownTimeout, 3 s
// by default), not one per peer.
func (r *Registrar) Run(ctx context.Context) error {
	r.mu.Lock()
	if r.state != 0 {
		r.mu.Unlock()
		if r.state == 2 {
			return ErrClosed
		}
		return ErrRunning
	}
	r.state = 1
	ctx, cancel := context.WithCancel(ctx)
	l := loop.New(ctx, loop.Real)
	r.cancel, r.loop = cancel, l
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		r.state = 2
		r.mu.Unlock()
		close(r.done)
	}()
	defer cancel()

	d := &driver{r: r, ctx: ctx, cancel: cancel, l: l, links: make(map[AssocID]*loop.Link), dials: make(map[AssocID]func())}
	// The first timeout starts the clocks (the first Server Announce).
	l.Post(r.core.HandleTimeout)
	l.Accept(r.l, func(now time.Time, c transport.Conn) { d.accepted(now, c, true) }, func(_ time.Time, err error) {
		d.fail(fmt.Errorf("enrp: accept: %w", err))
	})
	if pl := r.cfg.Peers.Listener; pl != nil {
		l.Accept(pl, func(now time.Time, c transport.Conn) { d.accepted(now, c, false) }, func(_ time.Time, err error) {
			d.fail(fmt.Errorf("enrp: accept ENRP: %w", err))
		})
	}
	if a := r.cfg.Peers.Announcer; a != nil {
		l.Go(func(ctx context.Context) { d.receiveMulticast(ctx, a) })
	}
	l.Run(r.core, d.after)

	// Every goroutine of the loop has ended: the core is this one's.
	now := time.Now()
	for id, k := range d.links {
		k.Close()
		r.core.HandleLost(now, id)
	}
	// Only PE and peer events are left: the associations are closed.
	r.snapshot(0)
	r.emit(now, r.core.Outbox())
	return d.err
}

// driver connects the core to the associations, on the loop goroutine.
type driver struct {
	r      *Registrar
	ctx    context.Context
	cancel context.CancelFunc // stops Run
	l      *loop.Loop
	links  map[AssocID]*loop.Link // accepted ones and peers the core asked for
	dials  map[AssocID]func()     // ConnectPeer dials in progress: their cancel
	next   AssocID
	lost   []AssocID     // aborted during a flush, for the core to hear
	noDial []dialFailure // ConnectPeers that could not start, for the core to hear
	err    error         // why Run stops, if not its context
	// scratch is where send encodes; a Link copies it only when the
	// message has to wait in its queue (loop.Link.SendCopy).
	scratch []byte
}

// driverInput is one ENRP input the driver gives the core, for tests.
type driverInput struct {
	kind string // "enrp", "connected", "failed", "multicast"
	id   AssocID
	info AssocInfo
	from transport.Addr
	b    []byte
	err  error
}

func (d *driver) saw(in driverInput) {
	if d.r.seen != nil {
		d.r.seen(in)
	}
}

type dialFailure struct {
	id  AssocID
	err error
}

// errNoPeerTransport: a ConnectPeer without Peers.Transport or Transport.
var errNoPeerTransport = errors.New("enrp: no transport to dial peers (Config.Peers.Transport or Config.Transport)")

// fail stops Run with err (the first one counts).
func (d *driver) fail(err error) {
	if d.err == nil {
		d.err = err
	}
	d.cancel()
}

// accepted drives a new association of a listener under the next id: one
// of the ASAP listener, where ASAP and ENRP are told apart by PPID, or
// of the ENRP listener (asap false), which carries ENRP only.
func (d *driver) accepted(now time.Time, c transport.Conn, asap bool) {
	d.next++
	id := d.next
	d.attach(id, c, asap)
	d.r.core.HandleAccepted(now, id, assocInfo(c))
}

// attach drives association c under id. Messages go to the core by their
// PPID: ASAP (RFC 5352 §4, PPID 11; only when asap is set) and ENRP (RFC
// 5353 §2, PPID 12); other PPIDs are dropped.
func (d *driver) attach(id AssocID, c transport.Conn, asap bool) {
	d.links[id] = d.l.AttachQueue(c, d.r.cfg.SendQueue, func(now time.Time, m transport.Message) {
		switch {
		case m.PPID == transport.PPIDASAP && asap:
			d.r.core.HandleASAP(now, id, m.Data)
		case m.PPID == transport.PPIDENRP:
			d.saw(driverInput{kind: "enrp", id: id, b: m.Data})
			d.r.core.HandleENRP(now, id, m.Data)
		default:
			if d.r.log.Enabled(d.ctx, slog.LevelDebug) {
				d.r.log.Debug("enrp: message with unexpected PPID dropped", "assoc", id, "ppid", m.PPID)
			}
		}
	}, func(now time.Time, err error) {
		if d.links[id] == nil {
			return
		}
		d.r.log.Debug("enrp: association ended", "assoc", id, "err", err)
		delete(d.links, id)
		d.r.core.HandleLost(now, id)
	})
}

// multicastRetry is how long the ENRP multicast receiver waits after a
// receive error other than the end of the Announcer or of the loop, so
// that a failing socket does not spin.
const multicastRetry = 100 * time.Millisecond

// receiveMulticast feeds the core the datagrams of the ENRP multicast
// group (RFC 5353 §3.2: ENRP_PRESENCE), on a goroutine owned by the loop.
// It waits for room in the loop's queue (loop.Queue pieces of work), so
// that what waits is bounded and the socket's own buffer drops the
// excess; the loop itself never waits for it.
func (d *driver) receiveMulticast(ctx context.Context, a transport.Announcer) {
	for {
		b, from, err := a.Recv(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			if errors.Is(err, transport.ErrClosed) {
				d.r.log.Warn("enrp: ENRP multicast group closed; no more presence from it", "err", err)
				return
			}
			d.r.log.Warn("enrp: ENRP multicast receive failed", "err", err)
			t := time.NewTimer(multicastRetry)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			continue
		}
		if !d.l.Post(func(now time.Time) {
			d.saw(driverInput{kind: "multicast", from: from, b: b})
			d.r.core.HandleENRPMulticast(now, from, b)
		}) {
			return
		}
	}
}

// after runs on the loop after each piece of work: it publishes the
// counts and carries out the core's outputs.
func (d *driver) after(now time.Time) {
	// Publish the counts before the answers leave, so that a peer that
	// got an answer sees the Stats that go with it.
	d.r.snapshot(len(d.links))
	for {
		d.flush(now)
		if len(d.lost) == 0 && len(d.noDial) == 0 {
			return
		}
		// Only now: the outputs just handled alias the core's outbox,
		// which HandleLost and HandleConnectFailed append to.
		for _, id := range d.lost {
			d.r.core.HandleLost(now, id)
		}
		d.lost = d.lost[:0]
		for _, f := range d.noDial {
			d.saw(driverInput{kind: "failed", id: f.id, err: f.err})
			d.r.core.HandleConnectFailed(now, f.id, f.err)
		}
		clear(d.noDial)
		d.noDial = d.noDial[:0]
		d.r.snapshot(len(d.links))
	}
}

// flush carries out the outputs queued in the core and tells the host
// about the PE and peer changes among them.
func (d *driver) flush(now time.Time) {
	outs := d.r.core.Outbox()
	d.r.emit(now, outs)
	for _, o := range outs {
		switch o := o.(type) {
		case SendASAP:
			d.send(o.Assoc, transport.PPIDASAP, o.Msg)
		case SendENRP:
			d.send(o.Assoc, transport.PPIDENRP, o.Msg)
		case ConnectPeer:
			d.connect(o)
		case CloseAssoc:
			if cancel := d.dials[o.Assoc]; cancel != nil {
				// A peer given up on before its association came up.
				cancel()
				delete(d.dials, o.Assoc)
				continue
			}
			// An idle association, or one whose last PE failed its
			// keep-alive: end it without waiting for the peer.
			k := d.links[o.Assoc]
			if k == nil {
				continue
			}
			d.r.log.Debug("enrp: closing association", "assoc", o.Assoc, "peer", k.Conn().RemoteAddr(), "abort", o.Abort, "reason", o.Reason.String())
			if o.Abort {
				k.Abort() // on the link's own goroutine, never on the loop
			} else {
				k.Close()
			}
			delete(d.links, o.Assoc)
			d.lost = append(d.lost, o.Assoc)
		case Multicast:
			d.multicast(o.Msg)
		}
	}
}

// send encodes m and queues it on association id with the PPID of its
// protocol. An association that cannot take it is aborted and reported
// lost.
func (d *driver) send(id AssocID, ppid uint32, m tlv.Message) {
	k := d.links[id]
	if k == nil {
		return
	}
	b, err := tlv.Append(d.scratch[:0], m)
	if err != nil {
		d.r.log.Warn("enrp: cannot encode message", "type", msgType(m), "err", err)
		return
	}
	if cap(b) <= maxScratch {
		d.scratch = b
	}
	if !k.SendCopy(transport.Message{PPID: ppid, Data: b}) {
		if err := k.Err(); err != nil {
			// Already failed: the Link ends the association as the
			// failure calls for (gracefully after a message too large).
			d.r.log.Debug("enrp: association ended", "assoc", id, "err", err)
		} else {
			d.r.log.Warn("enrp: association too slow, aborting it", "assoc", id, "peer", k.Conn().RemoteAddr())
			// RFC 9260 §9.1: an ABORT, sent by the link's own goroutine;
			// the loop does not wait for the peer.
			k.Abort()
		}
		delete(d.links, id)
		d.lost = append(d.lost, id)
	}
}

// maxScratch bounds the encoding buffer the driver keeps between sends,
// so that one large message (a handle table of many PEs) is not held on to.
const maxScratch = 64 << 10

func msgType(m tlv.Message) any {
	switch m := m.(type) {
	case tlv.ASAPMessage:
		return m.ASAPType()
	case tlv.ENRPMessage:
		return m.ENRPType()
	}
	return fmt.Sprintf("%T", m)
}

// connect opens the association to a peer the core asked for, on a
// goroutine of the loop, within Peers.MaxTimeNoResponse; the core hears the
// outcome (HandleConnected or HandleConnectFailed) on the loop. The
// association is then driven like one of the ASAP listener, under the
// core's id, ASAP and ENRP told apart by PPID: the core also connects to
// the PEs it took over from a dead peer (RFC 5353 §3.9), whose
// ASAP_ENDPOINT_KEEP_ALIVE_ACKs come back on it.
func (d *driver) connect(o ConnectPeer) {
	id := o.Assoc
	if id == 0 || d.links[id] != nil || d.dials[id] != nil {
		return // the core's ids are unique; a repeat is ignored
	}
	tr := d.r.cfg.Peers.Transport
	if tr == nil {
		tr = d.r.cfg.Transport
	}
	if tr == nil {
		d.noDial = append(d.noDial, dialFailure{id, errNoPeerTransport})
		return
	}
	d.r.log.Debug("enrp: connecting to peer", "assoc", id, "addr", o.Addr)
	// RFC 5353 §3.2: MAX-TIME-NO-RESPONSE is how long a peer has to
	// answer; the core dials again on its own schedule.
	timeout := d.r.cfg.Peers.MaxTimeNoResponse
	if timeout <= 0 {
		timeout = DefaultMaxTimeNoResponse
	}
	dial := tr.Dial
	if !o.PE && d.r.cfg.Peers.Transport == nil {
		dial = d.peerDial(tr, o.Addr)
	}
	d.dials[id] = d.l.DialWith(dial, o.Addr, timeout, func(now time.Time, c transport.Conn, err error) {
		delete(d.dials, id)
		if err != nil {
			d.r.log.Debug("enrp: cannot connect to peer", "assoc", id, "addr", o.Addr, "err", err)
			d.saw(driverInput{kind: "failed", id: id, err: err})
			d.r.core.HandleConnectFailed(now, id, err)
			return
		}
		d.attach(id, c, true)
		info := assocInfo(c)
		d.saw(driverInput{kind: "connected", id: id, info: info})
		d.r.core.HandleConnected(now, id, info)
	})
}

// fixedPortDialer is an Endpoint that can dial from a chosen SCTP source
// port (transport/sctp's Listener.DialFromPort).
type fixedPortDialer interface {
	DialFromPort(ctx context.Context, to transport.Addr, localPort uint16) (transport.Conn, error)
}

// peerDial returns how to dial the peer registrar at to: from the ENRP
// endpoint (Peers.Listener, else the ASAP listener, when it implements
// transport.Endpoint and can reach to), so that the association comes
// from the address and port our Server Information names (RFC 5353
// §2.2.1). A kernel SCTP peer (transport.KindSCTP) is dialled from the
// endpoint's own port as SCTP source port: RSPLIB 3.4.4's rspregistrar
// drops every Presence whose Server Information port differs from the
// association's, and dials from its ENRP port itself. Otherwise tr dials.
// A host that gives Peers.Transport has chosen how to dial: connect does
// not call this then.
func (d *driver) peerDial(tr transport.Transport, to transport.Addr) func(context.Context, transport.Addr) (transport.Conn, error) {
	el := d.r.l
	if d.r.cfg.Peers.Listener != nil {
		el = d.r.cfg.Peers.Listener
	}
	ep, ok := el.(transport.Endpoint)
	if !ok {
		return tr.Dial
	}
	at := ep.Addr()
	reach := at.Kind == to.Kind || (at.Kind == transport.KindSCTPUDP && to.Kind == transport.KindSCTP)
	if !reach || !at.AddrPort.IsValid() || at.AddrPort.Addr().Unmap().Is4() != to.AddrPort.Addr().Unmap().Is4() {
		return tr.Dial
	}
	if fp, ok := ep.(fixedPortDialer); ok && to.Kind == transport.KindSCTP && at.AddrPort.Port() != 0 {
		port := at.AddrPort.Port()
		return func(ctx context.Context, to transport.Addr) (transport.Conn, error) {
			return fp.DialFromPort(ctx, to, port)
		}
	}
	return ep.DialFrom
}

// multicast sends m on its protocol's group: ASAP (the Server Announce,
// RFC 5352 §3.6) on Config.Announcer, ENRP (Presence, RFC 5353 §3.2) on
// Config.Peers.Announcer. Without the group it is dropped.
func (d *driver) multicast(m tlv.Message) {
	var a transport.Announcer
	what := "server announce"
	switch m.(type) {
	case tlv.ASAPMessage:
		a = d.r.cfg.Announcer
	case tlv.ENRPMessage:
		a, what = d.r.cfg.Peers.Announcer, "ENRP multicast"
	}
	if a == nil {
		return
	}
	b, err := tlv.Marshal(m)
	if err == nil {
		err = a.Send(d.ctx, b)
	}
	if err != nil && d.ctx.Err() == nil {
		d.r.log.Warn("enrp: "+what+" failed", "err", err)
	}
}

func (r *Registrar) snapshot(assocs int) {
	s := Stats{
		Pools:        r.core.store.Pools(),
		PEs:          r.core.store.PEs(),
		Owned:        r.core.Owned(),
		Associations: assocs,
		ASAP:         r.core.Stats(),
		ENRP:         r.core.ENRPStats(),
	}
	r.statsMu.Lock()
	r.stats = s
	r.statsMu.Unlock()
}

// Peers returns the registrar's peer table (RFC 5353 §3.1), by server
// ID. It runs on the registrar's loop and fails with ErrNotRunning or
// ErrClosed when there is none, or with ctx's error.
func (r *Registrar) Peers(ctx context.Context) ([]PeerInfo, error) {
	var out []PeerInfo
	err := r.do(ctx, func() { out = r.core.Peers() })
	slices.SortFunc(out, func(a, b PeerInfo) int { return cmp.Compare(a.ServerID, b.ServerID) })
	return out, err
}

// Close stops Run (if it runs), waits for it, and closes the listener if
// the Registrar opened it. It is safe to call more than once. It returns
// within one shutdown bound of the transport however many peers hang
// (see Run).
func (r *Registrar) Close() error {
	r.mu.Lock()
	cancel := r.cancel
	running := r.state == 1
	if r.state == 0 {
		r.state = 2
		close(r.done)
	}
	r.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	if running {
		<-r.done
	}
	var err error
	r.closeMu.Do(func() { err = r.closeListener() })
	return err
}

func (r *Registrar) closeListener() error {
	if r.ownL {
		return r.l.Close()
	}
	return nil
}

// do runs f on the loop goroutine.
func (r *Registrar) do(ctx context.Context, f func()) error {
	r.mu.Lock()
	state, l := r.state, r.loop
	r.mu.Unlock()
	switch state {
	case 0:
		return ErrNotRunning
	case 2:
		return ErrClosed
	}
	err := l.Call(ctx, func(time.Time) { f() })
	if errors.Is(err, loop.ErrStopped) {
		return ErrClosed
	}
	return err
}
