package enrp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/go-rserpool/rserpool/asap"
	"github.com/go-rserpool/rserpool/tlv"
	"github.com/go-rserpool/rserpool/transport"
)

// Registrar is an embeddable RSerPool registrar (an ENRP server, RFC 5353,
// serving ASAP, RFC 5352): it owns a handlespace, accepts registrations
// from pool elements and handle resolutions from pool users on an ASAP
// listener, supervises the PEs it owns, and announces itself by multicast.
//
// Create it with New, serve with Run (one call; it returns when its
// context ends or Close is called), and read its state with Stats, Pools
// and PoolElements from any goroutine.
type Registrar struct {
	cfg  Config
	log  *slog.Logger
	id   uint32
	l    transport.Listener
	ownL bool
	core *server

	events chan event
	calls  chan func()

	mu      sync.Mutex
	state   int // 0 new, 1 running, 2 done
	cancel  context.CancelFunc
	done    chan struct{}
	closeMu sync.Once

	statsMu sync.Mutex
	stats   Stats
}

// Stats is a snapshot of a Registrar's counts.
type Stats struct {
	Pools        int // pools in the handlespace
	PEs          int // PEs in the handlespace
	Owned        int // PEs this registrar is home of and supervises
	Associations int // open ASAP associations
	// ASAP counts the ASAP procedures run (registrations, resolutions,
	// keep-alives, removals, errors, drops).
	ASAP asap.ServerStats
}

// New validates cfg, opens the ASAP listener if cfg.Listener is nil, and
// returns a Registrar ready to Run.
func New(cfg Config) (*Registrar, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	log := logger(cfg.Logger)
	src := cfg.Rand
	if src == nil {
		src = rand.NewPCG(rand.Uint64(), rand.Uint64())
	}
	id := cfg.ServerID
	for r := rand.New(src); id == 0; {
		id = r.Uint32() // RFC 5353 §3.1: a random non-zero server ID
	}
	r := &Registrar{
		cfg: cfg, log: log, id: id, l: cfg.Listener,
		events: make(chan event, 256),
		calls:  make(chan func()),
		done:   make(chan struct{}),
	}
	if r.l == nil {
		var err error
		if r.l, err = cfg.Transport.Listen(cfg.ListenAddr); err != nil {
			return nil, fmt.Errorf("enrp: listen at %v: %w", cfg.ListenAddr, err)
		}
		r.ownL = true
	}
	addrs := cfg.AnnounceAddrs
	if addrs == nil {
		if a := r.l.Addr(); a.IsValid() && !a.AddrPort.Addr().IsUnspecified() {
			addrs = []transport.Addr{a}
		}
	}
	ac := cfg.asapConfig()
	for _, a := range addrs {
		t, err := asap.TransportParam(a, tlv.TransportUseDataOnly)
		if err != nil {
			r.closeListener()
			return nil, fmt.Errorf("%w: AnnounceAddrs: %w", ErrInvalidConfig, err)
		}
		ac.AnnounceTransports = append(ac.AnnounceTransports, t)
	}
	hs := cfg.Handlespace
	if hs.Rand == nil {
		hs.Rand = src
	}
	core, err := newServer(id, ac, hs, log)
	if err != nil {
		r.closeListener()
		return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	r.core = core
	return r, nil
}

// ServerID returns the registrar's ENRP server identifier.
func (r *Registrar) ServerID() uint32 { return r.id }

// Addr returns the address of the ASAP listener.
func (r *Registrar) Addr() transport.Addr { return r.l.Addr() }

// Stats returns a snapshot of the registrar's counts, as of the end of the
// last batch of work its loop did.
func (r *Registrar) Stats() Stats {
	r.statsMu.Lock()
	defer r.statsMu.Unlock()
	return r.stats
}

// event is something the loop goroutine handles.
type event struct {
	kind eventKind
	id   asap.AssocID
	conn transport.Conn
	data []byte
	err  error
}

type eventKind uint8

const (
	evAccepted eventKind = iota
	evData
	evLost
	evFatal
)

// assoc is one association of the loop.
type assoc struct {
	c transport.Conn
	q chan []byte
}

// Run serves ASAP until ctx ends or Close is called, and returns nil then.
// It returns an error when the listener fails. Run may be called once.
//
// Inside, one goroutine (the caller's) owns the handlespace and the
// protocol core; one goroutine accepts associations; each association
// has a reader and a writer goroutine. All of them end before Run
// returns.
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
	r.cancel = cancel
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		r.state = 2
		r.mu.Unlock()
		close(r.done)
	}()
	defer cancel()

	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // acceptor
		defer wg.Done()
		for {
			c, err := r.l.Accept(ctx)
			if err != nil {
				if ctx.Err() == nil {
					r.post(ctx, event{kind: evFatal, err: err})
				}
				return
			}
			if !r.post(ctx, event{kind: evAccepted, conn: c}) {
				c.Close()
				return
			}
		}
	}()

	conns := make(map[asap.AssocID]*assoc)
	var nextID asap.AssocID
	drop := func(id asap.AssocID, now time.Time) {
		a := conns[id]
		if a == nil {
			return
		}
		delete(conns, id)
		close(a.q)
		a.c.Close()
		r.core.asapLost(now, id)
	}
	flush := func() {
		for _, o := range r.core.outbox() {
			switch o := o.(type) {
			case asap.Send:
				a := conns[o.Assoc]
				if a == nil {
					continue
				}
				b, err := tlv.Append(make([]byte, 0, o.Msg.Len()), o.Msg)
				if err != nil {
					r.log.Warn("enrp: cannot encode message", "type", o.Msg.ASAPType(), "err", err)
					continue
				}
				select {
				case a.q <- b:
				default:
					r.log.Warn("enrp: association too slow, aborting it", "assoc", o.Assoc, "peer", a.c.RemoteAddr())
					drop(o.Assoc, time.Now())
				}
			case asap.SendAnnounce:
				if r.cfg.Announcer == nil {
					continue
				}
				b, err := tlv.Marshal(o.Msg)
				if err == nil {
					err = r.cfg.Announcer.Send(ctx, b)
				}
				if err != nil && ctx.Err() == nil {
					r.log.Warn("enrp: server announce failed", "err", err)
				}
			}
		}
	}
	handle := func(ev event) error {
		now := time.Now()
		switch ev.kind {
		case evAccepted:
			nextID++
			id := nextID
			a := &assoc{c: ev.conn, q: make(chan []byte, r.cfg.SendQueue)}
			conns[id] = a
			r.core.asapAccepted(now, id, asap.AssocInfo{Local: ev.conn.LocalAddr(), Remote: ev.conn.RemoteAddr()})
			wg.Add(2)
			go r.reader(ctx, &wg, id, ev.conn)
			go r.writer(ctx, &wg, id, a)
		case evData:
			if conns[ev.id] != nil {
				r.core.asapData(now, ev.id, ev.data)
			}
		case evLost:
			if conns[ev.id] != nil {
				r.log.Debug("enrp: association ended", "assoc", ev.id, "err", ev.err)
				drop(ev.id, now)
			}
		case evFatal:
			return fmt.Errorf("enrp: accept: %w", ev.err)
		}
		// Publish the counts before the answers leave, so that a peer
		// that got an answer sees the Stats that go with it.
		r.snapshot(len(conns))
		flush()
		return nil
	}

	// The first timeout starts the clocks (the first Server Announce).
	r.core.timeout(time.Now())
	flush()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	var err error
loop:
	for {
		r.rearm(timer)
		select {
		case <-ctx.Done():
			break loop
		case ev := <-r.events:
			if err = handle(ev); err != nil {
				break loop
			}
			// Work through what is queued before re-arming the timer.
			for i := 0; i < 64; i++ {
				select {
				case ev := <-r.events:
					if err = handle(ev); err != nil {
						break loop
					}
					continue
				default:
				}
				break
			}
		case <-timer.C:
			r.core.timeout(time.Now())
			r.snapshot(len(conns))
			flush()
		case f := <-r.calls:
			f()
		}
		r.snapshot(len(conns)) // after flush aborted slow associations
	}
	cancel()
	for id := range conns {
		drop(id, time.Now())
	}
	r.core.outbox() // PERemoved events of the shutdown
	r.snapshot(0)
	wg.Wait()
	return err
}

// rearm sets timer to the core's next deadline.
func (r *Registrar) rearm(t *time.Timer) {
	d := r.core.nextDeadline()
	if d.IsZero() {
		t.Stop()
		return
	}
	t.Reset(max(0, time.Until(d)))
}

func (r *Registrar) snapshot(assocs int) {
	s := Stats{
		Pools:        r.core.store.Pools(),
		PEs:          r.core.store.PEs(),
		Owned:        r.core.asap.Owned(),
		Associations: assocs,
		ASAP:         r.core.asap.Stats(),
	}
	r.statsMu.Lock()
	r.stats = s
	r.statsMu.Unlock()
}

// post hands an event to the loop unless ctx ended.
func (r *Registrar) post(ctx context.Context, ev event) bool {
	select {
	case r.events <- ev:
		return true
	case <-ctx.Done():
		return false
	}
}

// reader feeds the association's ASAP messages to the loop.
func (r *Registrar) reader(ctx context.Context, wg *sync.WaitGroup, id asap.AssocID, c transport.Conn) {
	defer wg.Done()
	for {
		m, err := c.Recv(ctx)
		if err != nil {
			r.post(ctx, event{kind: evLost, id: id, err: err})
			return
		}
		if m.PPID != transport.PPIDASAP {
			// ENRP (PPID 12) and anything else do not belong on an ASAP
			// association.
			continue
		}
		if !r.post(ctx, event{kind: evData, id: id, data: m.Data}) {
			return
		}
	}
}

// writer sends what the loop queued for the association.
func (r *Registrar) writer(ctx context.Context, wg *sync.WaitGroup, id asap.AssocID, a *assoc) {
	defer wg.Done()
	for b := range a.q {
		if err := a.c.Send(ctx, transport.Message{PPID: transport.PPIDASAP, Data: b}); err != nil {
			if !errors.Is(err, transport.ErrClosed) && ctx.Err() == nil {
				r.post(ctx, event{kind: evLost, id: id, err: err})
			}
			for range a.q { // let the loop close the queue
			}
			return
		}
	}
}

// Close stops Run (if it runs), waits for it, and closes the listener if
// the Registrar opened it. It is safe to call more than once.
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
	state := r.state
	r.mu.Unlock()
	switch state {
	case 0:
		return ErrNotRunning
	case 2:
		return ErrClosed
	}
	done := make(chan struct{})
	select {
	case r.calls <- func() { f(); close(done) }:
	case <-ctx.Done():
		return ctx.Err()
	case <-r.done:
		return ErrClosed
	}
	<-done
	return nil
}
