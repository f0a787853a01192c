package enrp

import (
	"context"
	"net/netip"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/go-rserpool/rserpool/internal/leakcheck"
	"github.com/go-rserpool/rserpool/tlv"
	"github.com/go-rserpool/rserpool/transport"
	"github.com/go-rserpool/rserpool/transport/memnet"
)

// floodThenClose opens assocs associations to r, sends each one's
// messages (built by msg) without reading the answers, all associations
// at once, and closes each association as soon as its messages are out.
func floodThenClose(t *testing.T, ctx context.Context, net *memnet.Network, r *Registrar, assocs, perAssoc int, msg func(c *client, a, i int) tlv.ASAPMessage) {
	t.Helper()
	cs := make([]*client, assocs)
	for a := range cs {
		cs[a] = dial(t, ctx, net.NewNode(), r.Addr())
	}
	var wg sync.WaitGroup
	for a, c := range cs {
		wg.Go(func() {
			for i := range perAssoc {
				b, err := tlv.Marshal(msg(c, a, i))
				if err != nil {
					t.Error(err)
					return
				}
				if err := c.c.Send(ctx, transport.Message{PPID: transport.PPIDASAP, Data: b}); err != nil {
					t.Errorf("flood: %v", err)
					return
				}
			}
			c.c.Close()
		})
	}
	wg.Wait()
}

// stillServes checks, within a bound, that r registers a new PE and
// resolves its pool for a new PU, and that the flood left nothing behind:
// only these two associations and this PE remain.
func stillServes(t *testing.T, ctx context.Context, net *memnet.Network, r *Registrar) {
	t.Helper()
	const bound = 10 * time.Second
	pe := dial(t, ctx, net.NewNode(), r.Addr())
	pe.send(ctx, pe.registration("after", 42, time.Minute))
	m, err := pe.recvWithin(ctx, bound)
	if err != nil {
		t.Fatalf("registration after the flood not answered within %v: %v (registrar loop stuck)", bound, err)
	}
	if resp, ok := m.(*tlv.RegistrationResponse); !ok || resp.Reject {
		t.Fatalf("registration after the flood: %T %+v", m, m)
	}
	pu := dial(t, ctx, net.NewNode(), r.Addr())
	pu.send(ctx, &tlv.HandleResolution{PoolHandle: tlv.PoolHandle("after")})
	m, err = pu.recvWithin(ctx, bound)
	if err != nil {
		t.Fatalf("resolution after the flood not answered within %v: %v", bound, err)
	}
	if hr, ok := m.(*tlv.HandleResolutionResponse); !ok || len(hr.PEs) != 1 || hr.PEs[0].ID != 42 {
		t.Fatalf("resolution after the flood: %T %+v", m, m)
	}
	waitFor(t, ctx, pu, bound, func() bool {
		s := r.Stats()
		return s.Associations == 2 && s.PEs == 1
	})
	t.Logf("after the flood: %+v", r.Stats())
}

// runFloodRig starts a registrar on memnet without rate limits, for the
// flood tests; real time, not a synctest bubble: a deadlocked loop blocks
// on a lock, which a bubble does not count as durably blocked, so a
// deadlock would hang the bubble instead of failing the bounded wait.
func runFloodRig(t *testing.T) (context.Context, *memnet.Network, *Registrar) {
	leakcheck.Check(t)
	ctx := t.Context()
	net := memnet.New(1)
	t.Cleanup(func() { net.Close() })
	nd := net.NewNode()
	r, err := New(Config{
		Transport: nd, ListenAddr: nd.Addr(transport.PortASAP),
		ASAP: ASAPConfig{AssocRate: Unlimited, MaxPEsPerAssoc: Unlimited},
	})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- r.Run(context.Background()) }()
	t.Cleanup(func() {
		r.Close()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return ctx, net, r
}

// Issue 9, finding 1: associations that flood Handle Resolutions and
// close while the loop's queue is full must not deadlock the registrar
// (the loop's Close of a link whose Send failed used to wait for the
// link's failure report, itself waiting for room in the loop's queue).
func TestRegistrarFloodThenCloseNoDeadlock(t *testing.T) {
	ctx, net, r := runFloodRig(t)
	floodThenClose(t, ctx, net, r, 50, 400, func(*client, int, int) tlv.ASAPMessage {
		return &tlv.HandleResolution{PoolHandle: tlv.PoolHandle("echo")}
	})
	stillServes(t, ctx, net, r)
}

// Issue 9, finding 1, second recipe: many associations each registering
// many PEs, then closing (500 x 1,024 in the report; 500 x 64 here).
func TestRegistrarManyPEsThenCloseNoDeadlock(t *testing.T) {
	ctx, net, r := runFloodRig(t)
	floodThenClose(t, ctx, net, r, 500, 64, func(c *client, a, i int) tlv.ASAPMessage {
		return c.registration("pool", uint32(a<<16|i+1), time.Minute)
	})
	stillServes(t, ctx, net, r)
}

// shutdownBound is how long a graceful close to a hung peer waits before
// it gives up, as sctp.Config.ShutdownTimeout (3 s by default) does.
const shutdownBound = 3 * time.Second

// hungListener wraps a listener; the associations from the addresses in
// hung are hungConns.
type hungListener struct {
	transport.Listener
	hung map[netip.Addr]bool // guarded by mu
	// torn receives one value per hungConn when its teardown (Close or
	// Abort) starts; graceful counts the Closes that waited for the peer.
	torn     chan struct{}
	mu       sync.Mutex
	graceful int
}

func newHungListener(ln transport.Listener) *hungListener {
	return &hungListener{Listener: ln, hung: map[netip.Addr]bool{}, torn: make(chan struct{}, 1024)}
}

func (l *hungListener) Accept(ctx context.Context) (transport.Conn, error) {
	c, err := l.Listener.Accept(ctx)
	if err != nil {
		return c, err
	}
	l.mu.Lock()
	hung := l.hung[c.RemoteAddr().AddrPort.Addr()]
	l.mu.Unlock()
	if !hung {
		return c, nil
	}
	return &hungConn{Conn: c, l: l, down: make(chan struct{})}, nil
}

func (l *hungListener) gracefulCloses() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.graceful
}

// hungConn is an association to a peer that stopped answering: Send
// blocks (its window never opens) until ctx ends or the association is
// torn down, and Close (graceful, RFC 9260 §9.2) waits shutdownBound for
// a SHUTDOWN ACK that never comes, then gives up. Abort (RFC 9260 §9.1)
// ends it at once. As with transport/sctp, a teardown happens once;
// other callers wait for it (on a channel, which a synctest bubble counts
// as durably blocked, unlike a sync.Once).
type hungConn struct {
	transport.Conn
	l       *hungListener
	mu      sync.Mutex
	started bool
	down    chan struct{} // closed when the teardown has finished
}

func (c *hungConn) Send(ctx context.Context, _ transport.Message) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-c.down:
		return transport.ErrClosed
	}
}

func (c *hungConn) Close() error { c.teardown(true); return nil }
func (c *hungConn) Abort() error { c.teardown(false); return nil }

func (c *hungConn) teardown(graceful bool) {
	c.mu.Lock()
	first := !c.started
	c.started = true
	c.mu.Unlock()
	if !first {
		<-c.down
		return
	}
	c.l.torn <- struct{}{}
	if graceful {
		c.l.mu.Lock()
		c.l.graceful++
		c.l.mu.Unlock()
		<-time.After(shutdownBound) // virtual time in the bubble
	}
	c.Conn.Abort()
	close(c.down)
}

// hungRig is a registrar over memnet whose listener makes the
// associations of some nodes hung; build it inside a synctest bubble.
type hungRig struct {
	t   *testing.T
	net *memnet.Network
	ln  *hungListener
	r   *Registrar
}

func newHungRig(t *testing.T, ka time.Duration) *hungRig {
	t.Helper()
	net := memnet.New(1)
	t.Cleanup(func() { net.Close() })
	nd := net.NewNode()
	inner, err := nd.Listen(nd.Addr(transport.PortASAP))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { inner.Close() })
	g := &hungRig{t: t, net: net, ln: newHungListener(inner)}
	g.r, err = New(Config{
		Listener: g.ln, SendQueue: 1,
		ASAP:   ASAPConfig{AssocRate: Unlimited, KeepAliveInterval: ka, KeepAliveTimeout: time.Second},
		Logger: testLogger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- g.r.Run(context.Background()) }()
	t.Cleanup(func() {
		g.r.Close()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return g
}

// dialHung opens an association whose registrar side is hung.
func (g *hungRig) dialHung() *client {
	nd := g.net.NewNode()
	g.ln.mu.Lock()
	g.ln.hung[nd.Addr(0).AddrPort.Addr()] = true
	g.ln.mu.Unlock()
	return dial(g.t, g.t.Context(), nd, g.r.Addr())
}

// Issue 9, finding 2: aborting slow associations costs the loop nothing.
// k associations that stopped reading overflow their send queues back to
// back, just before an honest PE acknowledges a keep-alive; the ack is
// handled at once (the PE's next keep-alive comes exactly one interval
// after it), the PE stays registered and is served, and the slow
// associations are aborted (RFC 9260 §9.1), never closed gracefully on
// the loop.
func TestRegistrarSlowAbortsDoNotDelayHonestPE(t *testing.T) {
	leakcheck.Check(t)
	synctest.Test(t, func(t *testing.T) {
		const ka, k = 5 * time.Second, 5
		g := newHungRig(t, ka)
		ctx := t.Context()
		pe := dial(t, ctx, g.net.NewNode(), g.r.Addr())
		pe.send(ctx, pe.registration("echo", 1, time.Hour))
		recvAs[*tlv.RegistrationResponse](pe, ctx)

		hr := &tlv.HandleResolution{PoolHandle: tlv.PoolHandle("echo")}
		slow := make([]*client, k)
		for i := range slow {
			slow[i] = g.dialHung()
			slow[i].send(ctx, hr) // its answer is stuck in the writer
			synctest.Wait()
			slow[i].send(ctx, hr) // this one fills the queue (SendQueue 1)
		}
		synctest.Wait()
		if s := g.r.Stats(); s.Associations != k+1 || s.PEs != 1 {
			t.Fatalf("before the aborts: %+v", s)
		}

		kam := recvAs[*tlv.EndpointKeepAlive](pe, ctx)
		for _, c := range slow {
			c.send(ctx, hr) // no room: the registrar aborts the association
		}
		synctest.Wait()
		acked := time.Now()
		pe.send(ctx, &tlv.EndpointKeepAliveAck{PoolHandle: kam.PoolHandle, PEID: 1})
		m, err := pe.recvWithin(ctx, time.Hour)
		if err != nil {
			t.Fatalf("no keep-alive after the ack: %v", err)
		}
		if _, ok := m.(*tlv.EndpointKeepAlive); !ok {
			t.Fatalf("got %T after the ack, want the next keep-alive", m)
		}
		if d := time.Since(acked); d != ka {
			t.Errorf("next keep-alive %v after the ack, want %v: the ack waited %v behind %d aborts", d, ka, d-ka, k)
		}
		pe.send(ctx, hr)
		if r := recvAs[*tlv.HandleResolutionResponse](pe, ctx); len(r.PEs) != 1 || r.PEs[0].ID != 1 {
			t.Errorf("resolution after the aborts: %+v", r)
		}
		s := g.r.Stats()
		if s.PEs != 1 || s.ASAP.KeepAliveTimeouts != 0 || s.Associations != 1 {
			t.Errorf("after the aborts: %+v (honest PE removed, or slow associations kept)", s)
		}
		if n := g.ln.gracefulCloses(); n != 0 {
			t.Errorf("%d slow associations closed gracefully, want all aborted", n)
		}
	})
}

// Issue 9, finding 2: Registrar.Close with hung peers returns within one
// shutdown bound, not one per peer: n hung PEs whose send queues overflow
// in the same keep-alive round (aborted), n idle hung PUs (closed
// gracefully at shutdown, all at once), and n hung peers that associate
// while the keep-alive round runs.
func TestRegistrarCloseWithHungPeersBounded(t *testing.T) {
	leakcheck.Check(t)
	synctest.Test(t, func(t *testing.T) {
		const ka, n = 5 * time.Second, 20
		g := newHungRig(t, ka)
		ctx := t.Context()
		hr := &tlv.HandleResolution{PoolHandle: tlv.PoolHandle("echo")}
		for i := range n {
			c := g.dialHung()
			c.send(ctx, c.registration("echo", uint32(i+1), time.Hour)) // answer stuck in the writer
			synctest.Wait()
			c.send(ctx, hr) // fills the queue
		}
		for range n {
			g.dialHung().send(ctx, hr) // answer stuck in the writer
		}
		synctest.Wait()
		if s := g.r.Stats(); s.Associations != 2*n || s.PEs != n {
			t.Fatalf("before the keep-alive round: %+v", s)
		}
		<-g.ln.torn // the keep-alive round is tearing the PEs' associations down
		for range n {
			g.dialHung()
		}
		synctest.Wait()
		start := time.Now()
		if err := g.r.Close(); err != nil {
			t.Fatal(err)
		}
		if took := time.Since(start); took > shutdownBound {
			t.Errorf("Close with %d hung peers took %v, want at most one shutdown bound (%v)", 3*n, took, shutdownBound)
		}
		if torn := 1 + len(g.ln.torn); torn != 3*n {
			t.Errorf("%d of %d hung associations torn down", torn, 3*n)
		}
	})
}
