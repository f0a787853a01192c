// Command demo runs a whole RSerPool in one process, over user-space SCTP
// on loopback: a registrar, three echo pool elements and a pool user.
//
//	go run ./examples/demo
//
// It prints a short trace of:
//
//  1. the PEs registering (RFC 5352 §3.1) with a registrar they found by
//     its multicast ASAP_SERVER_ANNOUNCEs on lo (§3.6), or by its address
//     when multicast does not work on this host;
//  2. the pool user resolving the pool handle (§3.5) and sending requests
//     that PEs chosen by the pool's policy (round robin) answer;
//  3. pe-2 crashing: its associations are aborted, nothing is
//     deregistered. The pool user's next dial to it fails, it reports the
//     PE unreachable (§3.5) and fails over; the registrar removes the PE
//     when its association goes down (§3.7);
//  4. pe-3 hanging: its associations stay up but it answers nothing. The
//     pool user's request times out, it reports the PE and fails over; the
//     registrar removes the PE when a keep-alive goes unanswered (§3.7);
//  5. a new pool user seeing only pe-1, which deregisters (§3.3);
//  6. ENRP (RFC 5353), on three registrars of its own: r1 and r2 peer,
//     pe-a and pe-c register at r1 and pe-b at r2, and each reaches the
//     other registrar by handle update (§3.6); r3 joins later with r1 as
//     its mentor and takes the handle table from it (§3.4-3.5); a pool
//     user of r3 reaches all three PEs. r1's host goes down silently (no
//     ABORT reaches anyone, as when a host loses power): the survivors,
//     on LAN-tuned ENRP timers, find r1 dead by its silence (§3.3); one
//     takes r1's two PEs over, the other acknowledging (§3.9); pe-a and
//     pe-c adopt the new home when its Endpoint Keep Alive with H=1
//     reaches them (RFC 5352 §3.7); the pool user of r3 is served by all
//     three PEs on;
//  7. sessions (RFC 5352 §3.9-3.11), on SCTP with LAN-tuned path
//     supervision: three PEs serve a counter per session through
//     asap.SessionServer, keeping it in the session's cookie, sealed
//     with the key the pool's PEs share (asap/cookie); each gives the
//     session its business card. The session's PE crashes with a
//     request in flight: the session fails over to the card's first PE,
//     echoes the cookie, sends the request again, and the new PE restores
//     the counter from the cookie. A rogue pool user echoes the cookie
//     with the counter rewritten, and the PE refuses it.
//
// The registrars' lines come from their events (enrp.Config.Events), which
// say exactly why a PE was removed and when a peer came up, went down or
// was taken over.
//
// Timers are tuned (keep-alive after 1 s of silence, 1 s to answer; 1 s
// request timeout) so that it all takes a few seconds. The demo exits 0
// when everything happened as described, 1 otherwise.
package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/go-rserpool/rserpool/asap"
	"github.com/go-rserpool/rserpool/enrp"
	"github.com/go-rserpool/rserpool/internal/echo"
	"github.com/go-rserpool/rserpool/policy"
	"github.com/go-rserpool/rserpool/tlv"
	"github.com/go-rserpool/rserpool/transport"
	"github.com/go-rserpool/rserpool/transport/multicast"
	"github.com/go-rserpool/rserpool/transport/sctp"
)

// Demo settings.
const (
	pool        = "echo"
	numPEs      = 3
	reqTimeout  = time.Second // a PE that does not answer within this is reported
	maxDuration = 25 * time.Second

	keepAliveInterval = time.Second // registrar: a silent PE gets a keep-alive after this
	keepAliveTimeout  = time.Second // ... and is removed if it does not answer in time
	announceInterval  = 250 * time.Millisecond
)

// announceGroup is the demo's own ASAP announce group on lo: the ASAP
// port (so that capture tools decode the announces) but not the default
// group, so that the demo never mixes with a registrar running on the host.
var announceGroup = netip.AddrPortFrom(netip.AddrFrom4([4]byte{239, 0, 0, 150}), transport.PortASAP)

var loopbackAny = transport.Addr{Kind: transport.KindSCTPUDP, AddrPort: netip.MustParseAddrPort("127.0.0.1:0")}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, maxDuration)
	defer cancel()
	if err := run(ctx, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "demo FAILED:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, out io.Writer) error {
	tr := &tracer{w: out, start: time.Now()}
	tp := sctp.New(sctp.Config{ShutdownTimeout: time.Second})
	lo := loopback(ctx)

	// 1. The registrar and three PEs.
	reg, err := startRegistrar(ctx, tr, tp, lo)
	if err != nil {
		return fmt.Errorf("registrar: %w", err)
	}
	defer reg.Close()
	if lo != nil {
		tr.printf("registrar %08x at %v, announcing itself on %v (lo) every %v",
			reg.ServerID(), reg.Addr(), announceGroup, announceInterval)
	} else {
		tr.printf("registrar %08x at %v (no multicast on lo here: endpoints are given its address)",
			reg.ServerID(), reg.Addr())
	}
	find := finder{lo: lo, reg: reg.Addr()}

	var elems []*element
	defer func() {
		for _, e := range elems {
			e.stop()
		}
	}()
	names := map[netip.AddrPort]string{}
	for i := 1; i <= numPEs; i++ {
		e, err := startElement(ctx, fmt.Sprintf("pe-%d", i), tp, find)
		if err != nil {
			return err
		}
		elems = append(elems, e)
		names[e.ln.Addr().AddrPort] = e.name
		reg.name(e.pe.ID(), e.name)
	}
	for _, e := range elems {
		if err := e.pe.Register(ctx); err != nil {
			return fmt.Errorf("%s: register: %w", e.name, err)
		}
		tr.printf("%s registered in pool %q as PE %08x, serving at %v", e.name, pool, e.pe.ID(), e.ln.Addr())
	}

	// 2. The pool user. Its transport tells the trace about failed dials,
	// which PoolUser.Dial handles (report, fail over) on its own.
	putp := &tracingTransport{Transport: tp, tr: tr, names: names}
	puCfg, puOpts, err := find.puConfig(ctx)
	if err != nil {
		return err
	}
	puCfg.DialTimeout = reqTimeout
	pu, err := asap.NewPoolUser(puCfg, putp, puOpts...)
	if err != nil {
		return err
	}
	defer pu.Close()
	pes, err := pu.Resolve(ctx, []byte(pool))
	if err != nil {
		return fmt.Errorf("pool user: resolve: %w", err)
	}
	tr.printf("pool user resolved %q: %d PEs, policy %v", pool, len(pes), policy.Type(pes[0].Policy.Type))

	who, err := phase(ctx, tr, pu, "A", 6)
	if err != nil {
		return err
	}
	if len(who) != numPEs {
		return fmt.Errorf("round robin should have reached all %d PEs, reached %v", numPEs, who)
	}

	// 3. pe-2 crashes.
	crashed := elems[1]
	tr.printf("%s CRASHES: all its associations are aborted, it does not deregister", crashed.name)
	crashRemoved := reg.watchRemoval(crashed.pe.ID())
	crashed.crash()
	if who, err = phase(ctx, tr, pu, "B", 4); err != nil {
		return err
	}
	if slices.Contains(who, crashed.name) {
		return fmt.Errorf("%s answered after it crashed", crashed.name)
	}

	// 4. pe-3 hangs.
	hung := elems[2]
	tr.printf("%s HANGS: its associations stay up, but it answers nothing any more", hung.name)
	hangRemoved := reg.watchRemoval(hung.pe.ID())
	hung.hang()
	if who, err = phase(ctx, tr, pu, "C", 4); err != nil {
		return err
	}
	if slices.Contains(who, hung.name) || slices.Contains(who, crashed.name) {
		return fmt.Errorf("a dead PE answered: %v", who)
	}
	if _, err := reg.awaitRemoval(ctx, crashed.name, crashRemoved); err != nil {
		return err
	}
	if _, err := reg.awaitRemoval(ctx, hung.name, hangRemoved); err != nil {
		return err
	}

	// 5. A pool user that starts now only hears of pe-1.
	pu2Cfg, pu2Opts, err := find.puConfig(ctx)
	if err != nil {
		return err
	}
	pu2, err := asap.NewPoolUser(pu2Cfg, tp, pu2Opts...)
	if err != nil {
		return err
	}
	defer pu2.Close()
	if pes, err = pu2.Resolve(ctx, []byte(pool)); err != nil {
		return fmt.Errorf("new pool user: resolve: %w", err)
	}
	if len(pes) != 1 || pes[0].ID != elems[0].pe.ID() {
		return fmt.Errorf("a new resolution returns %d PEs, want only %s", len(pes), elems[0].name)
	}
	tr.printf("a new pool user resolves %q: 1 PE, %s", pool, elems[0].name)
	deregistered := reg.watchRemoval(elems[0].pe.ID())
	if err := elems[0].pe.Deregister(ctx); err != nil {
		return fmt.Errorf("%s: deregister: %w", elems[0].name, err)
	}
	if ev, err := reg.awaitRemoval(ctx, elems[0].name, deregistered); err != nil {
		return err
	} else if ev.Reason != enrp.RemovedDeregistered {
		return fmt.Errorf("%s removed for %v, want deregistered", elems[0].name, ev.Reason)
	}
	if n := reg.poolSize(); n != 0 {
		return fmt.Errorf("pool %q still holds %d PEs after deregistration", pool, n)
	}
	tr.printf("%s deregistered; pool %q is empty.", elems[0].name, pool)

	// 6. ENRP: registrars that peer and stand in for each other.
	if err := enrpScene(ctx, tr, tp); err != nil {
		return fmt.Errorf("ENRP: %w", err)
	}

	// 7. Sessions: state in cookies, carried over a PE's crash.
	if err := sessionScene(ctx, tr, reg); err != nil {
		return fmt.Errorf("sessions: %w", err)
	}
	tr.printf("Demo OK.")
	return nil
}

// phase sends n requests and prints who answered each; it returns the
// names of the PEs that answered.
func phase(ctx context.Context, tr *tracer, pu *asap.PoolUser, label string, n int) ([]string, error) {
	var who []string
	for i := 1; i <= n; i++ {
		msg := fmt.Sprintf("request %s%d", label, i)
		start := time.Now()
		a, err := echo.Call(ctx, pu, []byte(pool), msg, reqTimeout)
		for _, id := range a.Failed {
			tr.printf("  pool user: PE %08x did not answer %s within %v; reported it unreachable, failing over", id, msg, reqTimeout)
		}
		if err != nil {
			return who, fmt.Errorf("%s: %w", msg, err)
		}
		tr.printf("%s answered by %s (PE %08x) in %v", msg, a.From, a.PE, time.Since(start).Round(time.Millisecond))
		if !slices.Contains(who, a.From) {
			who = append(who, a.From)
		}
	}
	return who, nil
}

// tracer prints the demo's trace with the time since the start.
type tracer struct {
	mu    sync.Mutex
	w     io.Writer
	start time.Time
}

func (t *tracer) printf(format string, args ...any) {
	t.mu.Lock()
	defer t.mu.Unlock()
	fmt.Fprintf(t.w, "%6.2fs  %s\n", time.Since(t.start).Seconds(), fmt.Sprintf(format, args...))
}

// tracingTransport prints the dials to PEs that fail.
type tracingTransport struct {
	transport.Transport
	tr    *tracer
	names map[netip.AddrPort]string
}

func (t *tracingTransport) Dial(ctx context.Context, to transport.Addr) (transport.Conn, error) {
	c, err := t.Transport.Dial(ctx, to)
	if name, ok := t.names[to.AddrPort]; ok && err != nil {
		t.tr.printf("  pool user: cannot reach %s (%v); reported it unreachable, failing over", name, err)
	}
	return c, err
}

// finder says how endpoints find the registrar: by its announces on lo,
// or by its address.
type finder struct {
	lo  *net.Interface
	reg transport.Addr
}

func (f finder) listen(ctx context.Context) (transport.Announcer, error) {
	return multicast.Listen(ctx, multicast.Config{Group: announceGroup, Interface: f.lo, TTL: 1, Loopback: true})
}

func (f finder) peConfig(ctx context.Context, cfg *asap.PEConfig) ([]asap.Option, error) {
	if f.lo == nil {
		cfg.Registrars = []transport.Addr{f.reg}
		return nil, nil
	}
	a, err := f.listen(ctx)
	if err != nil {
		return nil, err
	}
	return []asap.Option{asap.WithAnnouncer(a)}, nil
}

func (f finder) puConfig(ctx context.Context) (asap.PUConfig, []asap.Option, error) {
	var cfg asap.PUConfig
	if f.lo == nil {
		cfg.Registrars = []transport.Addr{f.reg}
		return cfg, nil, nil
	}
	a, err := f.listen(ctx)
	if err != nil {
		return cfg, nil, err
	}
	return cfg, []asap.Option{asap.WithAnnouncer(a)}, nil
}

// loopback returns lo when this host delivers multicast on it (a probe
// sent to the demo's group comes back), nil otherwise. No other interface
// is ever used.
func loopback(ctx context.Context) *net.Interface {
	lo, err := multicast.LoopbackInterface()
	if err != nil {
		return nil
	}
	a, err := finder{lo: lo}.listen(ctx)
	if err != nil {
		return nil
	}
	defer a.Close()
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	// The probe is a well-formed ASAP_SERVER_ANNOUNCE with Server ID 0,
	// which endpoints ignore (0 is no server ID).
	probe, err := tlv.Append(nil, &tlv.ServerAnnounce{})
	if err != nil || a.Send(ctx, probe) != nil {
		return nil
	}
	for {
		b, _, err := a.Recv(ctx)
		if err != nil {
			return nil
		}
		if string(b) == string(probe) {
			return lo
		}
	}
}

// element is one echo PE: its listener for pool users, its echo server,
// and its ASAP pool element, whose transport can abort or silence the
// associations to registrars.
type element struct {
	name   string
	ln     transport.Listener
	srv    *echo.Server
	pe     *asap.PoolElement
	tp     *failingTransport
	served chan error
	once   sync.Once
}

func startElement(ctx context.Context, name string, tp transport.Transport, find finder) (*element, error) {
	ln, err := tp.Listen(loopbackAny)
	if err != nil {
		return nil, err
	}
	user, err := asap.TransportParam(ln.Addr(), tlv.TransportUseDataOnly)
	if err != nil {
		ln.Close()
		return nil, err
	}
	e := &element{name: name, ln: ln, srv: &echo.Server{Name: name}, tp: &failingTransport{Transport: tp}, served: make(chan error, 1)}
	cfg := asap.PEConfig{PoolHandle: []byte(pool), UserTransport: user}
	opts, err := find.peConfig(ctx, &cfg)
	if err == nil {
		e.pe, err = asap.NewPoolElement(cfg, e.tp, opts...)
	}
	if err != nil {
		ln.Close()
		return nil, err
	}
	go func() { e.served <- e.srv.Serve(context.Background(), ln) }()
	return e, nil
}

// crash makes the PE die as a crashed process does (the kernel aborts
// its associations): every association is aborted, nothing is
// deregistered, nothing listens any more.
func (e *element) crash() {
	e.srv.Kill()
	e.tp.abortAll()
	e.stop()
}

// hang makes the PE stuck: its associations stay up, but it answers
// neither pool users nor its registrar's keep-alives.
func (e *element) hang() {
	e.srv.Freeze()
	e.tp.silence()
}

// stop closes the PE without deregistering it (idempotent).
func (e *element) stop() {
	e.once.Do(func() {
		e.pe.Close()
		e.ln.Close()
		<-e.served
	})
}

// failingTransport keeps the associations it dials so that they can be
// aborted (crash) or silenced (hang) later.
type failingTransport struct {
	transport.Transport
	mu     sync.Mutex
	conns  []*silentConn
	silent bool // hung: new associations are silent too
}

func (t *failingTransport) Dial(ctx context.Context, to transport.Addr) (transport.Conn, error) {
	c, err := t.Transport.Dial(ctx, to)
	if err != nil {
		return nil, err
	}
	sc := &silentConn{Conn: c}
	t.mu.Lock()
	sc.silent.Store(t.silent)
	t.conns = append(t.conns, sc)
	t.mu.Unlock()
	return sc, nil
}

func (t *failingTransport) abortAll() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, c := range t.conns {
		echo.Abort(c.Conn)
	}
}

func (t *failingTransport) silence() {
	t.mu.Lock()
	defer t.mu.Unlock()
	// The registrar aborts the association of a PE that misses its
	// keep-alive; a hung PE stays mute on the ones it dials after.
	t.silent = true
	for _, c := range t.conns {
		c.silent.Store(true)
	}
}

// silentConn drops every message both ways once silent.
type silentConn struct {
	transport.Conn
	silent atomic.Bool
}

func (c *silentConn) Send(ctx context.Context, m transport.Message) error {
	if c.silent.Load() {
		return nil
	}
	return c.Conn.Send(ctx, m)
}

func (c *silentConn) Recv(ctx context.Context) (transport.Message, error) {
	for {
		m, err := c.Conn.Recv(ctx)
		if err != nil || !c.silent.Load() {
			return m, err
		}
	}
}

// registrar wraps an enrp.Registrar with what the demo asks of it: it
// follows the registrar's events (enrp.Config.Events) to trace the
// removals of PEs with their reasons.
type registrar struct {
	*enrp.Registrar
	ann    transport.Announcer
	cancel context.CancelFunc
	ran    chan error

	tr       *tracer
	events   chan enrp.Event
	stop     chan struct{}
	followed chan struct{}

	mu       sync.Mutex
	names    map[uint32]string   // PE ID -> demo name
	watchers map[uint32]*watcher // PE ID -> who waits for its removal
}

// watcher waits for the removal of one PE.
type watcher struct {
	since   time.Time // when the PE failed
	removed chan enrp.Event
}

// startRegistrar starts a registrar on a free loopback port with the demo's
// tuned keep-alive timers, announcing itself on lo when lo is not nil.
func startRegistrar(ctx context.Context, tr *tracer, tp transport.Transport, lo *net.Interface) (*registrar, error) {
	r := &registrar{
		ran: make(chan error, 1), tr: tr,
		events: make(chan enrp.Event, 64), stop: make(chan struct{}), followed: make(chan struct{}),
		names: map[uint32]string{}, watchers: map[uint32]*watcher{},
	}
	cfg := enrp.Config{
		Transport:  tp,
		ListenAddr: loopbackAny,
		ASAP: enrp.ASAPConfig{
			KeepAliveInterval: keepAliveInterval,
			KeepAliveTimeout:  keepAliveTimeout,
			AnnounceInterval:  announceInterval,
		},
		Events: r.events,
	}
	if lo != nil {
		a, err := finder{lo: lo}.listen(ctx)
		if err != nil {
			return nil, err
		}
		r.ann, cfg.Announcer = a, a
	}
	reg, err := enrp.New(cfg)
	if err != nil {
		if r.ann != nil {
			r.ann.Close()
		}
		return nil, err
	}
	r.Registrar = reg
	rctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go r.follow()
	go func() { r.ran <- reg.Run(rctx) }()
	return r, nil
}

// Close stops the registrar and waits for it and for follow.
func (r *registrar) Close() error {
	r.cancel()
	err := r.Registrar.Close()
	<-r.ran
	close(r.stop)
	<-r.followed
	if r.ann != nil {
		r.ann.Close()
	}
	return err
}

// name gives PE id its demo name in the trace.
func (r *registrar) name(id uint32, name string) {
	r.mu.Lock()
	r.names[id] = name
	r.mu.Unlock()
}

// follow reads the registrar's events until Close: it keeps the pool's
// size and traces each removal with its reason, then hands it to the
// watcher of the PE, if any.
func (r *registrar) follow() {
	defer close(r.followed)
	size := 0
	for {
		var ev enrp.Event
		select {
		case <-r.stop:
			return
		case ev = <-r.events:
		}
		switch ev.Kind {
		case enrp.EventRegistered:
			size++
			continue
		case enrp.EventUpdated:
			continue
		}
		size--
		r.mu.Lock()
		name, w := r.names[ev.PEID], r.watchers[ev.PEID]
		delete(r.watchers, ev.PEID)
		r.mu.Unlock()
		if name == "" {
			name = fmt.Sprintf("PE %08x", ev.PEID)
		}
		if w != nil && ev.Reason != enrp.RemovedDeregistered {
			r.tr.printf("  registrar: removed %s %v after its failure: %s; %d PE(s) left",
				name, ev.Time.Sub(w.since).Round(time.Millisecond), removalReason(ev.Reason), size)
		} else {
			r.tr.printf("  registrar: removed %s: %s; %d PE(s) left", name, removalReason(ev.Reason), size)
		}
		if w != nil {
			w.removed <- ev
		}
	}
}

// watchRemoval returns a channel that receives the event of the removal
// of PE id, which follow traces. Call it before the PE fails.
func (r *registrar) watchRemoval(id uint32) <-chan enrp.Event {
	w := &watcher{since: time.Now(), removed: make(chan enrp.Event, 1)}
	r.mu.Lock()
	r.watchers[id] = w
	r.mu.Unlock()
	return w.removed
}

// awaitRemoval waits for the removal that watchRemoval watches.
func (r *registrar) awaitRemoval(ctx context.Context, name string, removed <-chan enrp.Event) (enrp.Event, error) {
	select {
	case ev := <-removed:
		return ev, nil
	case <-ctx.Done():
		return enrp.Event{}, fmt.Errorf("registrar did not remove %s (%d events dropped): %w", name, r.Stats().EventsDropped, ctx.Err())
	}
}

// poolSize returns how many PEs the registrar holds in the pool.
func (r *registrar) poolSize() int {
	pes, err := r.PoolElements(context.Background(), []byte(pool))
	if err != nil {
		return -1
	}
	return len(pes)
}

// removalReason says in words why the registrar removed a PE.
func removalReason(why enrp.RemoveReason) string {
	switch why {
	case enrp.RemovedAssocLost:
		return "its association went down"
	case enrp.RemovedKeepAliveTimeout:
		return "no answer to a keep-alive"
	case enrp.RemovedUnreachable:
		return "MAX-BAD-PE-REPORT unreachable reports"
	case enrp.RemovedExpired:
		return "its registration life ran out"
	case enrp.RemovedDeregistered:
		return "it deregistered"
	}
	return why.String()
}
