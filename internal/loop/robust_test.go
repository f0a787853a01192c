package loop

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/go-rserpool/rserpool/internal/leakcheck"
	"github.com/go-rserpool/rserpool/transport"
)

// fillQueue posts no-ops until the loop's work queue is full; the loop
// must be busy (blocked in some work) meanwhile.
func fillQueue(t *testing.T, l *Loop) {
	t.Helper()
	for len(l.work) < cap(l.work) {
		if !l.Post(func(time.Time) {}) {
			t.Fatal("loop stopped")
		}
	}
}

// alive reports whether the loop runs a Call within a bound; a loop that
// deadlocked never does.
func alive(l *Loop) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return l.Call(ctx, func(time.Time) {}) == nil
}

// An association that fails while the loop's queue is full, and that the
// loop closes at the same moment (its Send to it failed), must not
// deadlock the loop: the failure's report to the loop cannot hold
// anything the loop's Close waits for. Not in a synctest bubble: a
// goroutine stuck on a lock is not durably blocked, so a deadlock would
// hang the bubble instead of failing; the bounded Call detects it.
func TestFailWhileQueueFullThenCloseNoDeadlock(t *testing.T) {
	for _, side := range []string{"recv", "send"} {
		t.Run(side, func(t *testing.T) {
			leakcheck.Check(t)
			l, stop := start(t)
			defer stop()
			c := newFakeConn()
			downs := 0
			k := l.Attach(c, func(time.Time, transport.Message) {}, func(time.Time, error) { downs++ })
			if side == "send" {
				k.Send(transport.Message{PPID: transport.PPIDASAP, Data: []byte{1}})
			}
			busy, gate := make(chan struct{}), make(chan struct{})
			l.Post(func(time.Time) {
				close(busy)
				<-gate
				k.Close() // the driver's reaction to a failed Send
			})
			<-busy
			fillQueue(t, l)
			lost := errors.New("association lost")
			if side == "recv" {
				c.recvErr <- lost
			} else {
				c.sendErr <- lost
			}
			<-c.closed // the failure is being handled, with the queue full
			close(gate)
			if !alive(l) {
				t.Fatal("loop deadlocked: Link.Close on the loop waits for the failure's report, which waits for the loop")
			}
			if downs != 0 {
				t.Errorf("onDown ran %d times after Close", downs)
			}
		})
	}
}

// slowConn is an association to a peer that stopped answering: its
// graceful Close waits bound (virtual time) before it gives up; Abort
// ends it at once.
type slowConn struct {
	*fakeConn
	bound    time.Duration
	graceful chan struct{} // receives when a graceful Close starts
}

func (c *slowConn) Close() error {
	c.graceful <- struct{}{}
	<-time.After(c.bound)
	return c.fakeConn.Close()
}

// Closing or aborting a Link on the loop costs the loop nothing: the
// association is ended by the Link's own goroutine, Abort with
// Conn.Abort, Close gracefully; and Run's end waits for the graceful
// closes of all Links at once, one bound in all.
func TestLinkCloseAndAbortNeverStallLoop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const bound, n = 3 * time.Second, 10
		ctx, cancel := context.WithCancel(t.Context())
		l := New(ctx, nil)
		done := make(chan struct{})
		go func() { l.Run(&fakeCore{}, nil); close(done) }()
		graceful := make(chan struct{}, 3*n)
		conns := make([]*slowConn, 3*n)
		links := make([]*Link, 3*n)
		for i := range conns {
			conns[i] = &slowConn{fakeConn: newFakeConn(), bound: bound, graceful: graceful}
			links[i] = l.Attach(conns[i], func(time.Time, transport.Message) {}, func(time.Time, error) {})
		}
		start := time.Now()
		l.Call(ctx, func(time.Time) {
			for i := range n {
				links[i].Abort()
				links[n+i].Close()
			}
		})
		if !alive(l) || time.Since(start) != 0 {
			t.Fatalf("loop held up %v by closing and aborting", time.Since(start))
		}
		synctest.Wait()
		for i := range n {
			if !conns[i].aborted() {
				t.Errorf("link %d: Abort did not abort the association", i)
			}
		}
		if got := len(graceful); got != n {
			t.Errorf("%d graceful closes after Close of %d links", got, n)
		}
		// n graceful closes in progress, n links still open: Run ends
		// after one bound.
		cancel()
		<-done
		if took := time.Since(start); took != bound {
			t.Errorf("Run returned %v after the end, want one shutdown bound %v", took, bound)
		}
		for i, c := range conns {
			if !c.isClosed() {
				t.Errorf("association %d left open", i)
			}
		}
	})
}

// A failure reported while the loop's queue is full is not lost: onDown
// runs once, after the messages received before it.
func TestFailWhileQueueFullStillReportsDown(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l, stop := start(t)
		defer stop()
		c := newFakeConn()
		var got []string
		l.Attach(c, func(time.Time, transport.Message) { got = append(got, "msg") },
			func(time.Time, error) { got = append(got, "down") })
		c.in <- transport.Message{PPID: transport.PPIDASAP, Data: []byte{1}}
		synctest.Wait() // handled
		busy, gate := make(chan struct{}), make(chan struct{})
		l.Post(func(time.Time) { close(busy); <-gate })
		<-busy
		fillQueue(t, l)
		c.in <- transport.Message{PPID: transport.PPIDASAP, Data: []byte{2}} // waits for room
		c.recvErr <- errors.New("association lost")
		synctest.Wait()
		close(gate)
		synctest.Wait()
		l.Call(t.Context(), func(time.Time) {
			if len(got) != 3 || got[1] != "msg" || got[2] != "down" {
				t.Errorf("loop saw %v, want [msg msg down]", got)
			}
		})
		if !c.aborted() {
			t.Error("failed association not aborted")
		}
	})
}

// A Send refused for the message alone leaves a working association: the
// Link reports it down and closes it gracefully rather than aborting it.
func TestSendTooLargeClosesGracefully(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l, stop := start(t)
		defer stop()
		c := newFakeConn()
		var downErr error
		k := l.Attach(c, func(time.Time, transport.Message) {}, func(_ time.Time, err error) { downErr = err })
		k.Send(transport.Message{PPID: transport.PPIDASAP, Data: []byte{1}})
		c.sendErr <- transport.ErrMessageTooLarge
		synctest.Wait()
		l.Call(t.Context(), func(time.Time) {
			if !errors.Is(downErr, transport.ErrMessageTooLarge) {
				t.Errorf("onDown with %v", downErr)
			}
		})
		if !c.isClosed() || c.aborted() {
			t.Errorf("closed %v, aborted %v; want a graceful close", c.isClosed(), c.aborted())
		}
	})
}
