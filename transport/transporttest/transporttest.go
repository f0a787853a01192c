// Package transporttest is the conformance suite that every
// transport.Transport implementation passes, and a round-trip benchmark
// shared by all of them.
//
// An implementation's test calls Run with a Factory:
//
//	func TestConformance(t *testing.T) {
//		transporttest.Run(t, func(t testing.TB) (client, server transport.Transport, listenAt transport.Addr) {
//			net := memnet.New(1)
//			t.Cleanup(func() { net.Close() })
//			return net.NewNode(), net.NewNode(), transport.Addr{Kind: transport.KindMem}
//		})
//	}
//
// The Factory is called once per subtest and returns fresh transports:
// client dials, server listens at listenAt (port 0 asks for a free port;
// the suite dials the Listener's Addr). Client and server may be the same
// value. Everything the Factory creates is released by cleanups it registers
// on t; the suite checks after those cleanups that no goroutine started in
// the subtest is still running (internal/leakcheck). Subtests run one at a
// time.
//
// The subtests check the semantics documented in package transport (SCTP
// semantics, RFC 9260): messages arrive whole and in order per stream
// (RFC 9260 §6.5, §6.6), PPID and stream are preserved (§3.3.1), the
// message size limits, at least 200 concurrent associations on one
// listener, graceful close (SHUTDOWN, §9.2) and local close, a dial to an
// address nobody listens on failing within the context deadline, and
// context cancellation of Recv, Accept and Dial. When the server
// transport is a transport.EndpointTransport, the Endpoint subtest checks
// that an association dialled with DialFrom comes from the Endpoint's
// address, that the peer reaches the Endpoint back at that address, and
// that several such associations to one peer are kept apart.
//
// BenchmarkRoundTrip measures request/response round trips of a 100-byte
// message over 1 and over 64 concurrent associations (sub-benchmarks
// "assocs=1" and "assocs=64"), reporting round trips per second as the
// metric "msgs/s". BenchmarkRoundTripFuncs runs the same body over
// associations that are not behind a transport.Transport, for reference
// implementations such as bare pion/sctp.
package transporttest

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/go-rserpool/rserpool/internal/leakcheck"
	"github.com/go-rserpool/rserpool/transport"
)

// Factory returns the transports for one subtest: client dials, server
// listens at listenAt. It registers on t the cleanups that release them.
type Factory func(t testing.TB) (client, server transport.Transport, listenAt transport.Addr)

// Timeout bounds every wait in the suite; a subtest that hits it has hung.
// It is a safety net, not a performance requirement.
var Timeout = 30 * time.Second

// ManyAssociations is how many concurrent associations the
// ManyAssociations subtest opens on one listener.
var ManyAssociations = 200

// Options adjusts the suite for one implementation; a zero field keeps
// the package default.
type Options struct {
	// ManyAssociations overrides [ManyAssociations] for this run: an
	// implementation whose handshake is expensive (DTLS: public-key
	// operations on both ends, many times slower under -race) may open
	// fewer at once so the subtest stays within [Timeout] on a small
	// machine.
	ManyAssociations int
}

// Run runs every conformance subtest against the implementation f makes.
func Run(t *testing.T, f Factory) { RunWith(t, f, Options{}) }

// RunWith is Run with o's adjustments.
func RunWith(t *testing.T, f Factory, o Options) {
	many := ManyAssociations
	if o.ManyAssociations > 0 {
		many = o.ManyAssociations
	}
	tests := []struct {
		name string
		fn   func(t *testing.T, f Factory)
	}{
		{"Basic", testBasic},
		{"PPIDAndStream", testPPIDAndStream},
		{"OrderPerStream", testOrderPerStream},
		{"MessageBoundaries", testMessageBoundaries},
		{"MessageSizeLimits", testMessageSizeLimits},
		{"FullDuplex", testFullDuplex},
		{"ManyAssociations", func(t *testing.T, f Factory) { testManyAssociations(t, f, many) }},
		{"PeerClose", testPeerClose},
		{"LocalClose", testLocalClose},
		{"Abort", testAbort},
		{"AbortAfterClose", testAbortAfterClose},
		{"ListenerClose", testListenerClose},
		{"DialDeadAddress", testDialDeadAddress},
		{"ContextCancel", testContextCancel},
		{"Endpoint", testEndpoint},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			leakcheck.Check(t) // registered first, so it runs after the Factory's cleanups
			tc.fn(t, f)
		})
	}
}

// pair is one association: c on the client side, s on the server side.
type pair struct {
	client transport.Transport
	l      transport.Listener
	c, s   transport.Conn
}

func ctxFor(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	t.Cleanup(cancel)
	return ctx
}

func listen(t testing.TB, f Factory) (transport.Transport, transport.Listener) {
	t.Helper()
	client, server, at := f(t)
	l, err := server.Listen(at)
	if err != nil {
		t.Fatalf("Listen(%v): %v", at, err)
	}
	t.Cleanup(func() { l.Close() })
	return client, l
}

// accept runs Accept in a goroutine the test owns.
func accept(ctx context.Context, l transport.Listener) <-chan acceptResult {
	ch := make(chan acceptResult, 1)
	go func() {
		c, err := l.Accept(ctx)
		ch <- acceptResult{c, err}
	}()
	return ch
}

type acceptResult struct {
	c   transport.Conn
	err error
}

// Connect opens one association over f's transports, closed when the test
// ends, and returns its dialling and accepting ends.
func Connect(t testing.TB, f Factory) (client, server transport.Conn) {
	t.Helper()
	p := connect(t, f)
	return p.c, p.s
}

func connect(t testing.TB, f Factory) pair {
	t.Helper()
	ctx := ctxFor(t)
	client, l := listen(t, f)
	ach := accept(ctx, l)
	c, err := client.Dial(ctx, l.Addr())
	if err != nil {
		t.Fatalf("Dial(%v): %v", l.Addr(), err)
	}
	t.Cleanup(func() { c.Close() })
	a := <-ach
	if a.err != nil {
		t.Fatalf("Accept: %v", a.err)
	}
	t.Cleanup(func() { a.c.Close() })
	return pair{client: client, l: l, c: c, s: a.c}
}

func send(t testing.TB, c transport.Conn, m transport.Message) {
	t.Helper()
	if err := c.Send(ctxFor(t), m); err != nil {
		t.Fatalf("Send(ppid %d, stream %d, %d bytes): %v", m.PPID, m.Stream, len(m.Data), err)
	}
}

func recv(t testing.TB, c transport.Conn) transport.Message {
	t.Helper()
	m, err := c.Recv(ctxFor(t))
	if err != nil {
		t.Fatalf("Recv: %v", err)
	}
	return m
}

// pattern returns n bytes that differ with seed and position, so that a
// message cut, merged or shifted does not compare equal.
func pattern(seed, n int) []byte {
	b := make([]byte, n)
	x := uint32(seed)*2654435761 + 1
	for i := range b {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b[i] = byte(x)
	}
	return b
}

func testBasic(t *testing.T, f Factory) {
	p := connect(t, f)
	if got, want := p.c.RemoteAddr(), p.l.Addr(); got != want {
		t.Errorf("client RemoteAddr = %v, want the listener's address %v", got, want)
	}
	if got, want := p.s.LocalAddr().AddrPort.Port(), p.l.Addr().AddrPort.Port(); got != want {
		t.Errorf("server LocalAddr port = %d, want the listener's port %d", got, want)
	}
	if got, want := p.s.RemoteAddr().AddrPort.Port(), p.c.LocalAddr().AddrPort.Port(); got != want {
		t.Errorf("server RemoteAddr port = %d, want the client's local port %d", got, want)
	}
	for _, a := range []transport.Addr{p.c.LocalAddr(), p.c.RemoteAddr(), p.s.LocalAddr(), p.s.RemoteAddr()} {
		if !a.IsValid() || a.Kind != p.l.Addr().Kind {
			t.Errorf("address %v: invalid or of another kind than the listener's %v", a, p.l.Addr())
		}
	}
	req := transport.Message{PPID: transport.PPIDASAP, Data: []byte("hello")}
	send(t, p.c, req)
	if got := recv(t, p.s); got.PPID != req.PPID || !bytes.Equal(got.Data, req.Data) {
		t.Fatalf("server got %+v, want %+v", got, req)
	}
	resp := transport.Message{PPID: transport.PPIDASAP, Data: []byte("world!")}
	send(t, p.s, resp)
	if got := recv(t, p.c); got.PPID != resp.PPID || !bytes.Equal(got.Data, resp.Data) {
		t.Fatalf("client got %+v, want %+v", got, resp)
	}
}

// RFC 9260 §3.3.1: each DATA chunk carries its stream identifier and
// payload protocol identifier to the receiver unchanged.
func testPPIDAndStream(t *testing.T, f Factory) {
	p := connect(t, f)
	ppids := []uint32{0, 1, transport.PPIDASAP, transport.PPIDENRP, 0x80000000, 0xffffffff}
	streams := []uint16{0, 1, 2, 9}
	var want []transport.Message
	for i, ppid := range ppids {
		for j, st := range streams {
			want = append(want, transport.Message{PPID: ppid, Stream: st, Data: pattern(i*100+j, 10+i+j)})
		}
	}
	// Send each stream's messages on their own stream; the suite checks
	// them per stream because streams may overtake each other.
	for _, m := range want {
		send(t, p.c, m)
	}
	got := make(map[uint16][]transport.Message)
	for range want {
		m := recv(t, p.s)
		got[m.Stream] = append(got[m.Stream], m)
	}
	for _, st := range streams {
		var w []transport.Message
		for _, m := range want {
			if m.Stream == st {
				w = append(w, m)
			}
		}
		g := got[st]
		if len(g) != len(w) {
			t.Fatalf("stream %d: got %d messages, want %d", st, len(g), len(w))
		}
		for i := range w {
			if g[i].PPID != w[i].PPID || !bytes.Equal(g[i].Data, w[i].Data) {
				t.Errorf("stream %d message %d: got ppid %d data %x, want ppid %d data %x",
					st, i, g[i].PPID, g[i].Data, w[i].PPID, w[i].Data)
			}
		}
	}
}

// RFC 9260 §6.5/§6.6: ordered delivery within a stream; streams are
// independent. Every message says its stream and its sequence number.
func testOrderPerStream(t *testing.T, f Factory) {
	p := connect(t, f)
	const streams, perStream = 4, 250
	for i := range streams * perStream {
		st := uint16(i % streams)
		b := make([]byte, 8+i%40)
		binary.BigEndian.PutUint32(b[0:], uint32(st))
		binary.BigEndian.PutUint32(b[4:], uint32(i/streams))
		send(t, p.c, transport.Message{PPID: transport.PPIDENRP, Stream: st, Data: b})
	}
	next := make([]uint32, streams)
	for range streams * perStream {
		m := recv(t, p.s)
		if len(m.Data) < 8 {
			t.Fatalf("short message %x", m.Data)
		}
		st, seq := binary.BigEndian.Uint32(m.Data), binary.BigEndian.Uint32(m.Data[4:])
		if st != uint32(m.Stream) || st >= streams {
			t.Fatalf("message for stream %d arrived on stream %d", st, m.Stream)
		}
		if seq != next[st] {
			t.Fatalf("stream %d: got sequence %d, want %d", st, seq, next[st])
		}
		next[st]++
	}
}

// Message boundaries are kept for every size up to MaxMessageSize, in both
// directions, including sizes around common fragmentation points.
func testMessageBoundaries(t *testing.T, f Factory) {
	p := connect(t, f)
	sizes := []int{1, 2, 3, 100, 1024, 1199, 1200, 1201, 1452, 1500, 4096, 8192,
		16383, 16384, 16385, 65000, transport.MaxMessageSize}
	for dir, ends := range [][2]transport.Conn{{p.c, p.s}, {p.s, p.c}} {
		for i, n := range sizes {
			send(t, ends[0], transport.Message{PPID: uint32(i), Stream: 1, Data: pattern(dir*1000+i, n)})
		}
		for i, n := range sizes {
			m := recv(t, ends[1])
			if m.PPID != uint32(i) || !bytes.Equal(m.Data, pattern(dir*1000+i, n)) {
				t.Fatalf("direction %d: message %d (%d bytes): got ppid %d, %d bytes, not the sent bytes",
					dir, i, n, m.PPID, len(m.Data))
			}
		}
	}
}

func testMessageSizeLimits(t *testing.T, f Factory) {
	p := connect(t, f)
	ctx := ctxFor(t)
	err := p.c.Send(ctx, transport.Message{PPID: 11, Data: make([]byte, transport.MaxMessageSize+1)})
	if !errors.Is(err, transport.ErrMessageTooLarge) {
		t.Errorf("Send(MaxMessageSize+1 bytes) = %v, want ErrMessageTooLarge", err)
	}
	err = p.c.Send(ctx, transport.Message{PPID: 11})
	if !errors.Is(err, transport.ErrEmptyMessage) {
		t.Errorf("Send(empty) = %v, want ErrEmptyMessage", err)
	}
	// The association is still usable and nothing of the refused
	// messages arrives.
	send(t, p.c, transport.Message{PPID: 11, Data: []byte("after")})
	if m := recv(t, p.s); string(m.Data) != "after" {
		t.Fatalf("got %q after refused sends, want \"after\"", m.Data)
	}
}

// Both ends send at once; neither may block the other.
func testFullDuplex(t *testing.T, f Factory) {
	p := connect(t, f)
	const n = 300
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for side, c := range []transport.Conn{p.c, p.s} {
		ctx := ctxFor(t)
		wg.Add(2)
		go func() {
			defer wg.Done()
			for i := range n {
				if err := c.Send(ctx, transport.Message{PPID: uint32(side), Stream: uint16(i % 3), Data: pattern(side*n+i, 200)}); err != nil {
					errs <- fmt.Errorf("side %d send %d: %w", side, i, err)
					return
				}
			}
		}()
		go func() {
			defer wg.Done()
			count := make(map[uint16]int)
			for range n {
				m, err := c.Recv(ctx)
				if err != nil {
					errs <- fmt.Errorf("side %d recv: %w", side, err)
					return
				}
				i := count[m.Stream]*3 + int(m.Stream)
				count[m.Stream]++
				if m.PPID != uint32(1-side) || !bytes.Equal(m.Data, pattern((1-side)*n+i, 200)) {
					errs <- fmt.Errorf("side %d: message %d on stream %d is not what the peer sent", side, i, m.Stream)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// n associations (ManyAssociations, 200 by default) at once on one listener, each carrying its
// own request and answer.
func testManyAssociations(t *testing.T, f Factory, n int) {
	ctx := ctxFor(t)
	client, l := listen(t, f)

	var wg sync.WaitGroup
	errs := make(chan error, 2*n+1)
	// Server: accept n associations and echo one message on each.
	wg.Add(1)
	go func() {
		defer wg.Done()
		for range n {
			s, err := l.Accept(ctx)
			if err != nil {
				errs <- fmt.Errorf("accept: %w", err)
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer s.Close()
				m, err := s.Recv(ctx)
				if err != nil {
					errs <- fmt.Errorf("server recv: %w", err)
					return
				}
				m.Data = append(m.Data, "-echo"...)
				if err := s.Send(ctx, m); err != nil {
					errs <- fmt.Errorf("server send: %w", err)
					return
				}
				// Wait for the client's close so the answer is not cut off.
				if _, err := s.Recv(ctx); !errors.Is(err, transport.ErrPeerClosed) {
					errs <- fmt.Errorf("server: after the client closed, Recv = %v, want ErrPeerClosed", err)
				}
			}()
		}
	}()
	// Clients: n dials at once; all stay open until every one has its answer.
	conns := make([]transport.Conn, n)
	var cwg sync.WaitGroup
	for i := range n {
		cwg.Add(1)
		go func() {
			defer cwg.Done()
			c, err := client.Dial(ctx, l.Addr())
			if err != nil {
				errs <- fmt.Errorf("dial %d: %w", i, err)
				return
			}
			conns[i] = c
			req := fmt.Sprintf("request %d", i)
			if err := c.Send(ctx, transport.Message{PPID: 11, Stream: uint16(i % 2), Data: []byte(req)}); err != nil {
				errs <- fmt.Errorf("client %d send: %w", i, err)
				return
			}
			m, err := c.Recv(ctx)
			if err != nil {
				errs <- fmt.Errorf("client %d recv: %w", i, err)
				return
			}
			if string(m.Data) != req+"-echo" || m.Stream != uint16(i%2) {
				errs <- fmt.Errorf("client %d got %q on stream %d, want %q on %d", i, m.Data, m.Stream, req+"-echo", i%2)
			}
		}()
	}
	cwg.Wait()
	open := 0
	for _, c := range conns {
		if c != nil {
			open++
			c.Close()
		}
	}
	if open != n {
		t.Errorf("%d of %d associations were established", open, n)
		l.Close() // unblock the accept loop
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// RFC 9260 §9.2: a graceful shutdown delivers everything sent before it;
// then the peer learns the association is over.
func testPeerClose(t *testing.T, f Factory) {
	p := connect(t, f)
	for i := range 3 {
		send(t, p.c, transport.Message{PPID: 12, Stream: uint16(i), Data: pattern(i, 500)})
	}
	if err := p.c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	got := 0
	for i := range 3 {
		m := recv(t, p.s)
		if !bytes.Equal(m.Data, pattern(int(m.Stream), 500)) {
			t.Errorf("message %d after close: wrong data", i)
		}
		got++
	}
	_, err := p.s.Recv(ctxFor(t))
	if !errors.Is(err, transport.ErrPeerClosed) {
		t.Fatalf("Recv after the peer closed = %v, want ErrPeerClosed", err)
	}
	// Recv keeps saying so, and Send fails the same way.
	if _, err := p.s.Recv(ctxFor(t)); !errors.Is(err, transport.ErrPeerClosed) {
		t.Errorf("second Recv after the peer closed = %v, want ErrPeerClosed", err)
	}
	if err := p.s.Send(ctxFor(t), transport.Message{PPID: 12, Data: []byte("x")}); !errors.Is(err, transport.ErrPeerClosed) {
		t.Errorf("Send after the peer closed = %v, want ErrPeerClosed", err)
	}
	if err := p.s.Close(); err != nil && !errors.Is(err, transport.ErrClosed) {
		t.Errorf("Close after the peer closed = %v, want nil", err)
	}
}

// After Close, this side's Send and Recv fail with ErrClosed, a Recv that
// was waiting returns, and a second Close does no harm.
func testLocalClose(t *testing.T, f Factory) {
	p := connect(t, f)
	waiting := make(chan error, 1)
	started := make(chan struct{})
	go func() {
		close(started)
		_, err := p.c.Recv(ctxFor(t))
		waiting <- err
	}()
	<-started
	if err := p.c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	select {
	case err := <-waiting:
		// The Recv may have started after Close; either way it is ErrClosed.
		if !errors.Is(err, transport.ErrClosed) {
			t.Errorf("Recv blocked during Close returned %v, want ErrClosed", err)
		}
	case <-time.After(Timeout):
		t.Fatal("Recv blocked during Close did not return")
	}
	if err := p.c.Send(ctxFor(t), transport.Message{PPID: 11, Data: []byte("x")}); !errors.Is(err, transport.ErrClosed) {
		t.Errorf("Send after Close = %v, want ErrClosed", err)
	}
	if _, err := p.c.Recv(ctxFor(t)); !errors.Is(err, transport.ErrClosed) {
		t.Errorf("Recv after Close = %v, want ErrClosed", err)
	}
	if err := p.c.Close(); err != nil && !errors.Is(err, transport.ErrClosed) {
		t.Errorf("second Close = %v, want nil or ErrClosed", err)
	}
	if _, err := p.s.Recv(ctxFor(t)); !errors.Is(err, transport.ErrPeerClosed) {
		t.Errorf("peer's Recv after Close = %v, want ErrPeerClosed", err)
	}
}

// abortBacklog is how much the Abort subtest sends to a peer that does not
// read: more than the send and receive buffers of an SCTP association hold
// (1 MiB each by default), so that data is outstanding when Abort is called.
const abortBacklog = 4 << 20

// RFC 9260 §9.1: Abort ends the association at once, even while the peer
// does not read and data is outstanding (a graceful Close would wait for
// it, up to its bound). A Send blocked here returns ErrClosed; Send and
// Recv here fail with ErrClosed; the peer, after the messages it already
// holds, fails with ErrAssociationLost; Abort again and Close return nil.
func testAbort(t *testing.T, f Factory) {
	p := connect(t, f)
	ctx := ctxFor(t)
	chunk := make([]byte, transport.MaxMessageSize)
	// A few messages that are surely queued, then a sender that blocks
	// once the buffers are full (on transports with flow control).
	for i := range 4 {
		send(t, p.c, transport.Message{PPID: 11, Stream: uint16(i % 2), Data: chunk})
	}
	sendErr := make(chan error, 1)
	go func() {
		for range abortBacklog / len(chunk) {
			if err := p.c.Send(ctx, transport.Message{PPID: 11, Data: chunk}); err != nil {
				sendErr <- err
				return
			}
		}
		sendErr <- nil
	}()

	aborted := make(chan error, 1)
	start := time.Now()
	go func() { aborted <- p.c.Abort() }()
	select {
	case err := <-aborted:
		if err != nil {
			t.Errorf("Abort = %v, want nil", err)
		}
		t.Logf("Abort returned after %v with the peer not reading", time.Since(start).Round(time.Millisecond))
	case <-time.After(Timeout):
		t.Fatal("Abort did not return while the peer was not reading")
	}
	select {
	case err := <-sendErr:
		if err != nil && !errors.Is(err, transport.ErrClosed) {
			t.Errorf("Send blocked during Abort returned %v, want ErrClosed (or nil if it finished first)", err)
		}
	case <-time.After(Timeout):
		t.Fatal("Send blocked during Abort did not return")
	}
	if err := p.c.Send(ctx, transport.Message{PPID: 11, Data: []byte("x")}); !errors.Is(err, transport.ErrClosed) {
		t.Errorf("Send after Abort = %v, want ErrClosed", err)
	}
	if _, err := p.c.Recv(ctx); !errors.Is(err, transport.ErrClosed) {
		t.Errorf("Recv after Abort = %v, want ErrClosed", err)
	}
	// The peer gets what it already held, then learns of the ABORT.
	var err error
	got := 0
	for got <= abortBacklog/len(chunk)+4 {
		if _, err = p.s.Recv(ctx); err != nil {
			break
		}
		got++
	}
	if !errors.Is(err, transport.ErrAssociationLost) {
		t.Errorf("peer's Recv after Abort (after %d messages) = %v, want ErrAssociationLost", got, err)
	}
	if err := p.c.Abort(); err != nil {
		t.Errorf("second Abort = %v, want nil", err)
	}
	if err := p.c.Close(); err != nil && !errors.Is(err, transport.ErrClosed) {
		t.Errorf("Close after Abort = %v, want nil or ErrClosed", err)
	}
}

// Abort after Close (and after the peer's Abort) does nothing and returns
// nil.
func testAbortAfterClose(t *testing.T, f Factory) {
	p := connect(t, f)
	if err := p.c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := p.c.Abort(); err != nil {
		t.Errorf("Abort after Close = %v, want nil", err)
	}
	if _, err := p.c.Recv(ctxFor(t)); !errors.Is(err, transport.ErrClosed) {
		t.Errorf("Recv after Close and Abort = %v, want ErrClosed", err)
	}
	// The peer saw the graceful close, not an abort.
	if _, err := p.s.Recv(ctxFor(t)); !errors.Is(err, transport.ErrPeerClosed) {
		t.Errorf("peer's Recv = %v, want ErrPeerClosed", err)
	}
	if err := p.s.Abort(); err != nil {
		t.Errorf("Abort after the peer closed = %v, want nil", err)
	}
	if err := p.s.Abort(); err != nil {
		t.Errorf("second Abort = %v, want nil", err)
	}
}

// Closing a listener ends a waiting Accept with ErrClosed and leaves the
// associations it accepted open.
func testListenerClose(t *testing.T, f Factory) {
	p := connect(t, f)
	ctx := ctxFor(t)
	ach := accept(ctx, p.l)
	if err := p.l.Close(); err != nil {
		t.Fatalf("listener Close: %v", err)
	}
	if a := <-ach; !errors.Is(a.err, transport.ErrClosed) {
		if a.c != nil {
			a.c.Close()
		}
		t.Errorf("Accept during Close = %v, want ErrClosed", a.err)
	}
	if _, err := p.l.Accept(ctx); !errors.Is(err, transport.ErrClosed) {
		t.Errorf("Accept after Close = %v, want ErrClosed", err)
	}
	send(t, p.c, transport.Message{PPID: 11, Data: []byte("still open")})
	if m := recv(t, p.s); string(m.Data) != "still open" {
		t.Errorf("after listener Close got %q", m.Data)
	}
}

// Dialing an address where nothing listens (any more) fails, at the latest
// when the context's deadline passes.
func testDialDeadAddress(t *testing.T, f Factory) {
	client, l := listen(t, f)
	dead := l.Addr()
	if err := l.Close(); err != nil {
		t.Fatalf("listener Close: %v", err)
	}
	const deadline = 2 * time.Second
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		c, err := client.Dial(ctx, dead)
		if err == nil {
			c.Close()
		}
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil {
			t.Fatalf("Dial(%v) to a closed listener succeeded", dead)
		}
	case <-time.After(deadline + Timeout):
		t.Fatalf("Dial(%v) to a closed listener still blocked well after its %v deadline", dead, deadline)
	}
}

// Recv, Accept and Dial return when their context ends; the association
// stays usable after a cancelled Recv.
func testContextCancel(t *testing.T, f Factory) {
	p := connect(t, f)
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := p.s.Recv(cancelled); !errors.Is(err, context.Canceled) {
		t.Errorf("Recv with a cancelled context = %v, want context.Canceled", err)
	}
	if c, err := p.l.Accept(cancelled); !errors.Is(err, context.Canceled) {
		if c != nil {
			c.Close()
		}
		t.Errorf("Accept with a cancelled context = %v, want context.Canceled", err)
	}
	if c, err := p.client.Dial(cancelled, p.l.Addr()); err == nil {
		c.Close()
		t.Errorf("Dial with a cancelled context succeeded")
	}
	// A Recv that is already waiting.
	ctx, cancel2 := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := p.s.Recv(ctx)
		done <- err
	}()
	cancel2()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("waiting Recv after cancel = %v, want context.Canceled", err)
		}
	case <-time.After(Timeout):
		t.Fatal("waiting Recv did not return after its context was cancelled")
	}
	send(t, p.c, transport.Message{PPID: 11, Data: []byte("after cancel")})
	if m := recv(t, p.s); string(m.Data) != "after cancel" {
		t.Errorf("after a cancelled Recv got %q, want \"after cancel\"", m.Data)
	}
}

// An Endpoint dials from its own address: the peer sees the association
// come from Endpoint.Addr and dials back there; two associations from the
// Endpoint to one listener are two; after Close the Endpoint neither
// accepts nor dials, and its associations stay open.
func testEndpoint(t *testing.T, f Factory) {
	client, server, at := f(t)
	et, ok := server.(transport.EndpointTransport)
	if !ok {
		t.Skip("the server transport is not a transport.EndpointTransport")
	}
	ctx := ctxFor(t)
	e, err := et.ListenEndpoint(at)
	if err != nil {
		t.Fatalf("ListenEndpoint(%v): %v", at, err)
	}
	t.Cleanup(func() { e.Close() })
	peer, err := server.Listen(at)
	if err != nil {
		t.Fatalf("Listen(%v): %v", at, err)
	}
	t.Cleanup(func() { peer.Close() })

	dialFrom := func() (c, s transport.Conn) {
		t.Helper()
		ach := accept(ctx, peer)
		c, err := e.DialFrom(ctx, peer.Addr())
		if err != nil {
			t.Fatalf("DialFrom(%v): %v", peer.Addr(), err)
		}
		t.Cleanup(func() { c.Close() })
		a := <-ach
		if a.err != nil {
			t.Fatalf("Accept: %v", a.err)
		}
		t.Cleanup(func() { a.c.Close() })
		return c, a.c
	}
	c1, s1 := dialFrom()
	if got := s1.RemoteAddr(); got != e.Addr() {
		t.Errorf("the peer sees the association from %v, want the Endpoint's address %v", got, e.Addr())
	}
	if got := c1.LocalAddr(); got != e.Addr() {
		t.Errorf("LocalAddr of a dialled association = %v, want %v", got, e.Addr())
	}
	c2, s2 := dialFrom()
	send(t, c1, transport.Message{PPID: 11, Data: []byte("one")})
	send(t, c2, transport.Message{PPID: 11, Data: []byte("two")})
	if m := recv(t, s1); string(m.Data) != "one" {
		t.Errorf("first association got %q, want \"one\"", m.Data)
	}
	if m := recv(t, s2); string(m.Data) != "two" {
		t.Errorf("second association got %q, want \"two\"", m.Data)
	}
	send(t, s2, transport.Message{PPID: 11, Data: []byte("back")})
	if m := recv(t, c2); string(m.Data) != "back" {
		t.Errorf("reply on the second association got %q", m.Data)
	}

	// The peer reaches the Endpoint at the address it saw.
	ach := accept(ctx, e)
	b, err := client.Dial(ctx, s1.RemoteAddr())
	if err != nil {
		t.Fatalf("Dial back to %v: %v", s1.RemoteAddr(), err)
	}
	t.Cleanup(func() { b.Close() })
	a := <-ach
	if a.err != nil {
		t.Fatalf("Endpoint Accept: %v", a.err)
	}
	t.Cleanup(func() { a.c.Close() })
	send(t, b, transport.Message{PPID: 11, Data: []byte("dialled back")})
	if m := recv(t, a.c); string(m.Data) != "dialled back" {
		t.Errorf("the Endpoint got %q on the association dialled back", m.Data)
	}
	send(t, s1, transport.Message{PPID: 11, Data: []byte("still one")})
	if m := recv(t, c1); string(m.Data) != "still one" {
		t.Errorf("first association got %q after the dial back", m.Data)
	}

	if err := e.Close(); err != nil {
		t.Fatalf("Endpoint Close: %v", err)
	}
	if c, err := e.DialFrom(ctx, peer.Addr()); !errors.Is(err, transport.ErrClosed) {
		if c != nil {
			c.Close()
		}
		t.Errorf("DialFrom after Close = %v, want ErrClosed", err)
	}
	if _, err := e.Accept(ctx); !errors.Is(err, transport.ErrClosed) {
		t.Errorf("Accept after Close = %v, want ErrClosed", err)
	}
	send(t, c1, transport.Message{PPID: 11, Data: []byte("after close")})
	if m := recv(t, s1); string(m.Data) != "after close" {
		t.Errorf("after the Endpoint's Close got %q", m.Data)
	}
	send(t, a.c, transport.Message{PPID: 11, Data: []byte("accepted, after close")})
	if m := recv(t, b); string(m.Data) != "accepted, after close" {
		t.Errorf("accepted association after the Endpoint's Close got %q", m.Data)
	}
}
