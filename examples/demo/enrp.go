package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-rserpool/rserpool/asap"
	"github.com/go-rserpool/rserpool/enrp"
	"github.com/go-rserpool/rserpool/internal/echo"
	"github.com/go-rserpool/rserpool/tlv"
	"github.com/go-rserpool/rserpool/transport"
)

// The ENRP scene (RFC 5353): three registrars that peer, the third
// joining later through a mentor; PEs and a pool user spread over them;
// the home registrar of two PEs goes down silently, as a host that loses
// power: a survivor takes its PEs over (RFC 5353 §3.9), the other
// acknowledging, the PEs adopt the new home and the pool user carries on.

const enrpPool = "echo-enrp"

// lanPeers are ENRP timers tuned for loopback (RFC 5353 §7 names), so
// that a dead peer is noticed within about a second.
func lanPeers(static ...transport.Addr) enrp.PeersConfig {
	return enrp.PeersConfig{
		Static:            static,
		HeartbeatCycle:    200 * time.Millisecond,
		MaxTimeLastHeard:  600 * time.Millisecond,
		MaxTimeNoResponse: 300 * time.Millisecond,
		TakeoverExpiry:    500 * time.Millisecond,
		MentorTimeout:     300 * time.Millisecond,
	}
}

// peerReg is one registrar of the ENRP scene; its peer events (from
// enrp.Config.Events) go to the trace under its name.
type peerReg struct {
	*enrp.Registrar
	name   string
	events chan enrp.Event
	down   chan uint32     // the server IDs of the peers it saw go down
	took   chan enrp.Event // its takeovers done
	mute   atomic.Bool     // its host is down: its own view is not traced
	host   *hostTransport  // its transport, if it can go down
	cancel context.CancelFunc
	ran    chan error
	done   chan struct{}
	once   sync.Once
}

// peerNames maps server IDs to the demo's registrar names.
type peerNames struct {
	mu    sync.Mutex
	names map[uint32]string
}

func (n *peerNames) of(id uint32) string {
	n.mu.Lock()
	defer n.mu.Unlock()
	if s := n.names[id]; s != "" {
		return s
	}
	return tlv.ServerID(id).String()
}

func startPeerReg(tr *tracer, names *peerNames, tp transport.Transport, name string, peers enrp.PeersConfig) (*peerReg, error) {
	r := &peerReg{name: name, events: make(chan enrp.Event, 64), down: make(chan uint32, 8), took: make(chan enrp.Event, 8), ran: make(chan error, 1), done: make(chan struct{})}
	reg, err := enrp.New(enrp.Config{
		Transport: tp, ListenAddr: loopbackAny, Peers: peers, Events: r.events,
		ASAP: enrp.ASAPConfig{KeepAliveInterval: keepAliveInterval, KeepAliveTimeout: keepAliveTimeout},
	})
	if err != nil {
		return nil, err
	}
	r.Registrar = reg
	names.mu.Lock()
	names.names[reg.ServerID()] = name
	names.mu.Unlock()
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go func() {
		defer close(r.done)
		for ev := range r.events {
			if !ev.Kind.IsPeer() || r.mute.Load() {
				continue
			}
			peer := names.of(ev.ServerID)
			switch ev.Kind {
			case enrp.EventPeerUp:
				tr.printf("  %s: peer %s up", name, peer)
			case enrp.EventPeerDown:
				tr.printf("  %s: peer %s DOWN (home of %d PE(s) here)", name, peer, ev.PEs)
				select {
				case r.down <- ev.ServerID:
				default:
				}
			case enrp.EventTakeoverStarted:
				tr.printf("  %s: takeover of %s started (INIT_TAKEOVER to every peer)", name, peer)
			case enrp.EventTakeoverDone:
				tr.printf("  %s: takeover of %s done: home of its %d PE(s) now (ENRP_TAKEOVER_SERVER)", name, peer, ev.PEs)
				select {
				case r.took <- ev:
				default:
				}
			case enrp.EventTakenOver:
				tr.printf("  %s: taken over by %s: %d PE(s)", name, peer, ev.PEs)
			}
		}
	}()
	go func() { r.ran <- reg.Run(ctx) }()
	return r, nil
}

// kill stops the registrar and closes its associations (idempotent).
func (r *peerReg) kill() {
	r.once.Do(func() {
		r.cancel()
		if r.host != nil {
			r.host.close()
		}
		r.Registrar.Close()
		<-r.ran
		close(r.events) // Run has returned: nothing sends on it any more
		<-r.done
	})
}

// hostTransport is the transport of a registrar whose host can go down
// as a host that loses power does: from then on nothing it sends leaves
// and nothing sent to it arrives, and no association is closed (no
// SHUTDOWN or ABORT reaches its PEs or peers). Only its SCTP stack still
// acknowledges, so its PEs' and peers' associations stay up: they learn
// of its death from ENRP alone (RFC 5353 §3.3), as they would from a host
// whose SCTP stack died with it before their transport's supervision
// noticed. close ends it all at the end of the scene.
type hostTransport struct {
	transport.Transport
	mu    sync.Mutex
	conns []*hostConn
	down  bool
	off   bool // closed: associations made after are closed at once
}

func (t *hostTransport) track(c transport.Conn) transport.Conn {
	hc := &hostConn{Conn: c, host: t}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.off {
		c.Close()
		return hc
	}
	hc.silent.Store(t.down)
	t.conns = append(t.conns, hc)
	return hc
}

func (t *hostTransport) Dial(ctx context.Context, to transport.Addr) (transport.Conn, error) {
	c, err := t.Transport.Dial(ctx, to)
	if err != nil {
		return nil, err
	}
	return t.track(c), nil
}

func (t *hostTransport) Listen(at transport.Addr) (transport.Listener, error) {
	l, err := t.Transport.Listen(at)
	if err != nil {
		return nil, err
	}
	return &hostListener{Listener: l, host: t}, nil
}

// goDown silences every association of the host, and those it makes
// after.
func (t *hostTransport) goDown() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.down = true
	for _, c := range t.conns {
		c.silent.Store(true)
	}
}

// close closes every association the host kept open while down.
func (t *hostTransport) close() {
	t.mu.Lock()
	conns := t.conns
	t.conns, t.off = nil, true
	t.mu.Unlock()
	for _, c := range conns {
		c.Conn.Close()
	}
}

type hostListener struct {
	transport.Listener
	host *hostTransport
}

func (l *hostListener) Accept(ctx context.Context) (transport.Conn, error) {
	c, err := l.Listener.Accept(ctx)
	if err != nil {
		return nil, err
	}
	return l.host.track(c), nil
}

// hostConn is an association of a hostTransport: once its host is down
// it drops every message both ways, and its Close waits for the host's
// close (a dead host closes nothing).
type hostConn struct {
	transport.Conn
	host   *hostTransport
	silent atomic.Bool
}

func (c *hostConn) Send(ctx context.Context, m transport.Message) error {
	if c.silent.Load() {
		return nil
	}
	return c.Conn.Send(ctx, m)
}

func (c *hostConn) Recv(ctx context.Context) (transport.Message, error) {
	for {
		m, err := c.Conn.Recv(ctx)
		if err != nil || !c.silent.Load() {
			return m, err
		}
	}
}

func (c *hostConn) Close() error {
	c.host.mu.Lock()
	off := c.host.off
	c.host.mu.Unlock()
	if c.silent.Load() && !off {
		return nil // closed by hostTransport.close
	}
	return c.Conn.Close()
}

// homes reports the PEs of the scene's pool at r and their homes.
func (r *peerReg) homes(ctx context.Context) (map[uint32]uint32, error) {
	pes, err := r.PoolElements(ctx, []byte(enrpPool))
	if errors.Is(err, enrp.ErrNotRunning) {
		return nil, nil // its Run is just starting
	}
	if err != nil {
		return nil, err
	}
	m := map[uint32]uint32{}
	for _, p := range pes {
		m[p.PE.ID] = p.PE.HomeServerID
	}
	return m, nil
}

// until polls cond every 20 ms until it holds or ctx ends.
func until(ctx context.Context, what string, cond func() (bool, error)) error {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		ok, err := cond()
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w", what, ctx.Err())
		case <-t.C:
		}
	}
}

// enrpScene runs the ENRP scene on its own registrars, PEs and pool user.
func enrpScene(ctx context.Context, tr *tracer, tp transport.Transport) error {
	ctx, cancel := context.WithTimeout(ctx, 8*time.Second)
	defer cancel()
	names := &peerNames{names: map[uint32]string{}}
	tr.printf("ENRP: registrars that peer (RFC 5353), pool %q", enrpPool)
	host := &hostTransport{Transport: tp}
	r1, err := startPeerReg(tr, names, host, "r1", lanPeers())
	if err != nil {
		return err
	}
	r1.host = host
	defer r1.kill()
	r2, err := startPeerReg(tr, names, tp, "r2", lanPeers(r1.Addr()))
	if err != nil {
		return err
	}
	defer r2.kill()
	tr.printf("r1 %08x at %v; r2 %08x at %v, peering with r1", r1.ServerID(), r1.Addr(), r2.ServerID(), r2.Addr())

	// Three PEs, pe-a and pe-c at r1, pe-b at r2; each knows its home
	// alone: a starting registrar refuses registrations until it has its
	// mentor's table or its mentor timeout passed (RFC 5353 §3.4), and a
	// PE that knew both would hunt on to the other. So when r1 goes
	// down, its PEs find their new home by the survivors' takeover alone.
	type elem struct {
		name   string
		pe     *asap.PoolElement
		ln     transport.Listener
		srv    *echo.Server
		ran    chan error
		events chan asap.PEEvent
	}
	var elems []*elem
	defer func() {
		for _, e := range elems {
			e.pe.Close()
			e.ln.Close()
			<-e.ran
		}
	}()
	homes := []*peerReg{r1, r2, r1}
	for i, home := range homes {
		regs := []transport.Addr{home.Addr()}
		ln, err := tp.Listen(loopbackAny)
		if err != nil {
			return err
		}
		user, err := asap.TransportParam(ln.Addr(), tlv.TransportUseDataOnly)
		if err != nil {
			ln.Close()
			return err
		}
		e := &elem{name: fmt.Sprintf("pe-%c", 'a'+i), ln: ln, ran: make(chan error, 1), events: make(chan asap.PEEvent, 64)}
		e.srv = &echo.Server{Name: e.name}
		e.pe, err = asap.NewPoolElement(asap.PEConfig{PoolHandle: []byte(enrpPool), UserTransport: user, Registrars: regs, Events: e.events}, tp)
		if err != nil {
			ln.Close()
			return err
		}
		go func() { e.ran <- e.srv.Serve(context.Background(), ln) }()
		elems = append(elems, e)
		if err := until(ctx, e.name+"'s registration", func() (bool, error) {
			err := e.pe.Register(ctx)
			return err == nil, nil // refused while its registrar starts (RFC 5353 §3.4): try again
		}); err != nil {
			return err
		}
		if err := until(ctx, e.name+" at "+home.name, func() (bool, error) {
			h, err := home.homes(ctx)
			return h[e.pe.ID()] == home.ServerID(), err
		}); err != nil {
			return err
		}
		tr.printf("%s registered at %s as PE %08x", e.name, home.name, e.pe.ID())
	}
	// RFC 5353 §3.6: each PE reaches the other registrar by handle update.
	for _, r := range []*peerReg{r1, r2} {
		if err := until(ctx, r.name+" holding every PE", func() (bool, error) {
			h, err := r.homes(ctx)
			return len(h) == len(elems), err
		}); err != nil {
			return err
		}
	}
	tr.printf("r1 and r2 each hold all %d PEs (ENRP_HANDLE_UPDATE)", len(elems))

	// r3 joins later, with r1 as its mentor (RFC 5353 §3.4).
	r3, err := startPeerReg(tr, names, tp, "r3", lanPeers(r1.Addr()))
	if err != nil {
		return err
	}
	defer r3.kill()
	if err := until(ctx, "r3's table from its mentor", func() (bool, error) {
		h, err := r3.homes(ctx)
		return len(h) == len(elems), err
	}); err != nil {
		return err
	}
	tr.printf("r3 %08x joined through mentor r1: its handle table (ENRP_HANDLE_TABLE_RESPONSE) holds all %d PEs", r3.ServerID(), len(elems))

	// The pool user asks r3.
	pu, err := asap.NewPoolUser(asap.PUConfig{Registrars: []transport.Addr{r3.Addr()}, DialTimeout: reqTimeout}, tp)
	if err != nil {
		return err
	}
	defer pu.Close()
	call := func(label string, n int) ([]string, error) {
		var who []string
		for i := 1; i <= n; i++ {
			msg := fmt.Sprintf("request %s%d", label, i)
			a, err := echo.Call(ctx, pu, []byte(enrpPool), msg, reqTimeout)
			if err != nil {
				return who, fmt.Errorf("%s: %w", msg, err)
			}
			tr.printf("%s (pool user of r3) answered by %s", msg, a.From)
			if !slices.Contains(who, a.From) {
				who = append(who, a.From)
			}
		}
		return who, nil
	}
	if who, err := call("E", 2*len(elems)); err != nil {
		return err
	} else if len(who) != len(elems) {
		return fmt.Errorf("the pool user of r3 reached %v, want all %d PEs", who, len(elems))
	}

	// r1's host goes down: no SHUTDOWN, no ABORT, only silence.
	r1Homed := []*elem{elems[0], elems[2]}
	tr.printf("r1 (home of %s and %s) goes DOWN silently, as a host losing power: no ABORT reaches its PEs or peers", r1Homed[0].name, r1Homed[1].name)
	r1.mute.Store(true)
	start := time.Now()
	host.goDown()
	// One survivor takes r1's PEs over (RFC 5353 §3.9).
	var winner, other *peerReg
	var done enrp.Event
	select {
	case done = <-r2.took:
		winner, other = r2, r3
	case done = <-r3.took:
		winner, other = r3, r2
	case <-ctx.Done():
		return fmt.Errorf("no survivor took r1's PEs over: %w", ctx.Err())
	}
	if done.ServerID != r1.ServerID() || done.PEs != len(r1Homed) {
		return fmt.Errorf("%s took over %d PE(s) of %s, want %d of r1", winner.name, done.PEs, names.of(done.ServerID), len(r1Homed))
	}
	tr.printf("%s took over r1's %d PEs %v after r1 went down", winner.name, done.PEs, time.Since(start).Round(time.Millisecond))
	// The winner saw r1 go down by its silence (RFC 5353 §3.3). On a
	// loaded machine the demo's tight LAN timers may also have let a
	// live peer lapse for a moment (it comes back with its next
	// Presence); only r1 must be among those seen.
	sawR1 := false
	for !sawR1 {
		select {
		case id := <-winner.down:
			sawR1 = id == r1.ServerID()
		default:
			return fmt.Errorf("%s took r1 over without seeing it go down", winner.name)
		}
	}
	// The other survivor acknowledged the winner's ENRP_INIT_TAKEOVER
	// (or lost the tie-break, RFC 5353 §3.9) and, told by
	// ENRP_TAKEOVER_SERVER, dropped r1 from its peer list and sees the
	// winner as the home of r1's PEs.
	if err := until(ctx, other.name+"'s view of the takeover", func() (bool, error) {
		peers, err := other.Peers(ctx)
		if err != nil {
			return false, err
		}
		for _, p := range peers {
			if p.ServerID == r1.ServerID() {
				return false, nil
			}
		}
		h, err := other.homes(ctx)
		for _, e := range r1Homed {
			if h[e.pe.ID()] != winner.ServerID() {
				return false, err
			}
		}
		return true, err
	}); err != nil {
		return err
	}
	tr.printf("  %s: r1 DOWN here too, out of its peer list: it acknowledged %s's takeover (ENRP_INIT_TAKEOVER_ACK); its handle table has %s and %s at home %s now",
		other.name, winner.name, r1Homed[0].name, r1Homed[1].name, winner.name)
	select {
	case <-other.took:
		return fmt.Errorf("%s took r1's PEs over too", other.name)
	default:
	}
	// Each PE answers the new home's Endpoint Keep Alive with H=1 and
	// adopts it (RFC 5352 §3.7).
	for _, e := range r1Homed {
		if err := func() error {
			for {
				select {
				case ev := <-e.events:
					if ev.Kind == asap.PEEventHomeChanged && ev.ServerID == winner.ServerID() {
						tr.printf("  %s: home changed to %s (its Endpoint Keep Alive with H=1), %v after r1 went down", e.name, winner.name, time.Since(start).Round(time.Millisecond))
						return nil
					}
				case <-ctx.Done():
					return fmt.Errorf("%s did not adopt %s as its home: %w", e.name, winner.name, ctx.Err())
				}
			}
		}(); err != nil {
			return err
		}
	}
	if who, err := call("F", 2*len(elems)); err != nil {
		return err
	} else if len(who) != len(elems) {
		return fmt.Errorf("after r1 went down the pool user of r3 reached %v, want all %d PEs", who, len(elems))
	}
	tr.printf("the pool user carries on: all %d PEs still served through r3", len(elems))
	return nil
}
