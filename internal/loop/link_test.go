package loop

import (
	"context"
	"errors"
	"net/netip"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/go-rserpool/rserpool/transport"
)

// fakeConn is an association driven by the test: it receives what the
// test puts in in, and Send blocks until the test lets one message
// through on pass.
type fakeConn struct {
	in      chan transport.Message
	recvErr chan error
	sendErr chan error
	pass    chan struct{}
	sent    chan transport.Message

	mu     sync.Mutex
	closed chan struct{}
	closes int
	aborts int
}

func newFakeConn() *fakeConn {
	return &fakeConn{
		in: make(chan transport.Message), recvErr: make(chan error, 1), sendErr: make(chan error, 1),
		pass: make(chan struct{}), sent: make(chan transport.Message, 100),
		closed: make(chan struct{}),
	}
}

func (c *fakeConn) Send(ctx context.Context, m transport.Message) error {
	select {
	case <-c.pass:
		c.sent <- m
		return nil
	case err := <-c.sendErr:
		return err
	case <-ctx.Done():
		return ctx.Err()
	case <-c.closed:
		return transport.ErrClosed
	}
}

func (c *fakeConn) Recv(ctx context.Context) (transport.Message, error) {
	select {
	case m := <-c.in:
		return m, nil
	case err := <-c.recvErr:
		return transport.Message{}, err
	case <-ctx.Done():
		return transport.Message{}, ctx.Err()
	case <-c.closed:
		return transport.Message{}, transport.ErrClosed
	}
}

func (c *fakeConn) Abort() error {
	c.mu.Lock()
	c.aborts++
	c.mu.Unlock()
	return c.Close()
}

func (c *fakeConn) aborted() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.aborts > 0
}

func (c *fakeConn) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closes++; c.closes == 1 {
		close(c.closed)
	}
	return nil
}

func (c *fakeConn) isClosed() bool {
	select {
	case <-c.closed:
		return true
	default:
		return false
	}
}

var testAddr = transport.Addr{Kind: transport.KindMem, AddrPort: netip.MustParseAddrPort("10.0.0.1:3863")}

func (c *fakeConn) LocalAddr() transport.Addr  { return testAddr }
func (c *fakeConn) RemoteAddr() transport.Addr { return testAddr }

// fakeListener hands out the associations and the error the test gives it.
type fakeListener struct {
	conns chan transport.Conn
	err   chan error
}

func (l *fakeListener) Accept(ctx context.Context) (transport.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case err := <-l.err:
		return nil, err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}
func (l *fakeListener) Addr() transport.Addr { return testAddr }
func (l *fakeListener) Close() error         { return nil }

// start runs a Loop over a core without deadlines; stop ends it and
// waits.
func start(t *testing.T) (l *Loop, stop func()) {
	ctx, cancel := context.WithCancel(t.Context())
	l = New(ctx, nil)
	done := make(chan struct{})
	go func() { l.Run(&fakeCore{}, nil); close(done) }()
	return l, func() { cancel(); <-done }
}

// A Link's send queue holds exactly its size: beyond it Send fails at
// once instead of blocking the loop, and after Close it fails too, so
// that a driver can abort an association that stopped reading.
func TestLinkQueueFull(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l, stop := start(t)
		defer stop()
		c := newFakeConn()
		downs := 0
		k := l.AttachQueue(c, 2, func(time.Time, transport.Message) {}, func(time.Time, error) { downs++ })
		m := transport.Message{PPID: transport.PPIDASAP, Data: []byte{1}}
		if !k.Send(m) {
			t.Fatal("first Send refused")
		}
		synctest.Wait() // the writer holds it, blocked in conn.Send
		for i := range 2 {
			if !k.Send(m) {
				t.Fatalf("Send %d refused with room in the queue", i+2)
			}
		}
		if k.Send(m) {
			t.Fatal("Send accepted beyond the queue")
		}
		c.pass <- struct{}{} // one leaves: room for one
		synctest.Wait()
		if !k.Send(m) {
			t.Fatal("Send refused after the writer made room")
		}
		k.Close()
		synctest.Wait()
		if k.Send(m) {
			t.Fatal("Send accepted after Close")
		}
		if !c.isClosed() {
			t.Fatal("Close left the association open")
		}
		l.Call(t.Context(), func(time.Time) {})
		if downs != 0 {
			t.Fatalf("onDown ran %d times after Close", downs)
		}
	})
}

// Accept hands each association to the loop; messages received on its
// Link run on the loop in order; a failed association reports down once;
// a failing listener reports its error once and stops accepting.
func TestAcceptRecvDown(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l, stop := start(t)
		defer stop()
		ln := &fakeListener{conns: make(chan transport.Conn), err: make(chan error, 1)}
		var (
			got     []byte
			downErr []error
			lnErr   []error
			links   int
		)
		l.Accept(ln, func(now time.Time, c transport.Conn) {
			links++
			l.Attach(c, func(_ time.Time, m transport.Message) {
				got = append(got, m.Data...)
			}, func(_ time.Time, err error) { downErr = append(downErr, err) })
		}, func(_ time.Time, err error) { lnErr = append(lnErr, err) })

		c := newFakeConn()
		ln.conns <- c
		for i := range byte(3) {
			c.in <- transport.Message{PPID: transport.PPIDASAP, Data: []byte{i}}
		}
		lost := errors.New("association lost")
		c.recvErr <- lost
		synctest.Wait()
		broken := errors.New("listener broken")
		ln.err <- broken
		synctest.Wait()
		l.Call(t.Context(), func(time.Time) {
			if links != 1 || string(got) != "\x00\x01\x02" {
				t.Errorf("links %d, received %x", links, got)
			}
			if len(downErr) != 1 || !errors.Is(downErr[0], lost) {
				t.Errorf("onDown calls %v", downErr)
			}
			if len(lnErr) != 1 || !errors.Is(lnErr[0], broken) {
				t.Errorf("onErr calls %v", lnErr)
			}
		})
		if !c.isClosed() {
			t.Error("failed association left open")
		}
	})
}

// An association accepted but still queued when the loop stops is aborted
// by Run (never waiting for its peer), not leaked; no work runs once the
// context has ended.
func TestStopAbortsQueuedHandOver(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		l := New(ctx, nil)
		ln := &fakeListener{conns: make(chan transport.Conn), err: make(chan error)}
		ran := false
		l.Accept(ln, func(time.Time, transport.Conn) { ran = true }, func(time.Time, error) {})
		c := newFakeConn()
		ln.conns <- c // queued: Run has not started
		synctest.Wait()
		cancel()
		l.Run(&fakeCore{}, nil)
		if ran {
			t.Error("onConn ran after the context ended")
		}
		if !c.aborted() {
			t.Error("queued association not aborted")
		}
	})
}
