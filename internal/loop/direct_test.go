package loop

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/go-rserpool/rserpool/internal/direct"
	"github.com/go-rserpool/rserpool/transport"
	"github.com/go-rserpool/rserpool/transport/memnet"
)

// directConn is a fakeConn that can send without its writer: TrySend
// records the message while open is set and refuses otherwise, or fails
// with err.
type directConn struct {
	*fakeConn
	mu     sync.Mutex
	open   bool
	err    error
	direct []byte
}

func (c *directConn) TrySend(m transport.Message) (bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.err != nil:
		return true, c.err
	case !c.open:
		return false, nil
	}
	c.direct = append(c.direct, m.Data...)
	return true, nil
}

func (c *directConn) set(open bool, err error) {
	c.mu.Lock()
	c.open, c.err = open, err
	c.mu.Unlock()
}

// Send goes around the writer only while nothing it was given earlier is
// still on its way, so order holds when TrySend refuses; SendCopy copies
// only what it queues.
func TestLinkDirectSendKeepsOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l, stop := start(t)
		defer stop()
		c := &directConn{fakeConn: newFakeConn(), open: true}
		k := l.Attach(c, func(time.Time, transport.Message) {}, func(time.Time, error) {})
		msg := func(b byte) transport.Message { return transport.Message{PPID: 11, Data: []byte{b}} }
		k.Send(msg(1)) // sent at once
		c.set(false, nil)
		buf := []byte{2}
		k.SendCopy(transport.Message{PPID: 11, Data: buf}) // refused: queued, copied
		buf[0] = 99
		c.set(true, nil)
		k.Send(msg(3)) // TrySend would take it, but 2 is still queued
		synctest.Wait()
		for _, want := range []byte{2, 3} {
			c.pass <- struct{}{}
			if m := <-c.sent; m.Data[0] != want {
				t.Fatalf("writer sent %d, want %d", m.Data[0], want)
			}
		}
		synctest.Wait() // the writer is idle again
		k.Send(msg(4))
		c.mu.Lock()
		defer c.mu.Unlock()
		if string(c.direct) != "\x01\x04" {
			t.Fatalf("sent without the writer: %v, want [1 4]", c.direct)
		}
	})
}

// A TrySend that fails ends the Link as a failing writer does: onDown
// runs once with the error, and the association is aborted.
func TestLinkDirectSendFailure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l, stop := start(t)
		defer stop()
		c := &directConn{fakeConn: newFakeConn()}
		lost := errors.New("peer gone")
		c.set(true, lost)
		var downs []error
		k := l.Attach(c, func(time.Time, transport.Message) {}, func(_ time.Time, err error) { downs = append(downs, err) })
		if !k.Send(transport.Message{PPID: 11, Data: []byte{1}}) {
			t.Fatal("Send refused")
		}
		synctest.Wait()
		l.Call(t.Context(), func(time.Time) {
			if len(downs) != 1 || !errors.Is(downs[0], lost) {
				t.Errorf("onDown calls %v, want one with %v", downs, lost)
			}
		})
		if !c.aborted() {
			t.Error("association not aborted after the failed send")
		}
		if k.Send(transport.Message{PPID: 11, Data: []byte{2}}) {
			t.Error("Send accepted after the failure")
		}
	})
}

// A message too large for the Conn, refused by TrySend, ends the Link as
// the writer's refusal would: onDown hears it, and the association is
// closed gracefully, not aborted, since it still works.
func TestLinkDirectSendTooLarge(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l, stop := start(t)
		defer stop()
		c := &directConn{fakeConn: newFakeConn()}
		c.set(true, transport.ErrMessageTooLarge)
		var downs []error
		k := l.Attach(c, func(time.Time, transport.Message) {}, func(_ time.Time, err error) { downs = append(downs, err) })
		k.Send(transport.Message{PPID: 11, Data: []byte{1}})
		synctest.Wait()
		l.Call(t.Context(), func(time.Time) {
			if len(downs) != 1 || !errors.Is(downs[0], transport.ErrMessageTooLarge) {
				t.Errorf("onDown calls %v, want one with ErrMessageTooLarge", downs)
			}
		})
		if !c.isClosed() || c.aborted() {
			t.Errorf("closed %v, aborted %v: want a graceful close", c.isClosed(), c.aborted())
		}
	})
}

// Over memnet the Link takes messages pushed into the loop's queue; when
// the queue is full they wait in the association and come through the
// reader, and every message reaches onRecv once and in order.
func TestLinkPushFallbackKeepsOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l, stop := start(t)
		defer stop()
		n := memnet.New(1, memnet.StepMode())
		defer n.Close()
		a, b := n.NewNode(), n.NewNode()
		ln, err := b.Listen(b.Addr(transport.PortASAP))
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		acc := make(chan transport.Conn, 1)
		go func() {
			c, _ := ln.Accept(t.Context())
			acc <- c
		}()
		ca, err := a.Dial(t.Context(), ln.Addr())
		if err != nil {
			t.Fatal(err)
		}
		defer ca.Abort()
		cb := <-acc
		cc := &countingPusher{Conn: cb, p: cb.(direct.Pusher)}
		var got []int
		l.Attach(cc, func(_ time.Time, m transport.Message) {
			var i int
			fmt.Sscanf(string(m.Data), "%d", &i)
			got = append(got, i)
		}, func(time.Time, error) {})

		// Hold the loop while three queues' worth arrives.
		release := make(chan struct{})
		l.Post(func(time.Time) { <-release })
		const total = 3 * Queue
		for i := range total {
			if err := ca.Send(t.Context(), transport.Message{PPID: 11, Data: fmt.Appendf(nil, "%d", i)}); err != nil {
				t.Fatal(err)
			}
		}
		n.StepAll()
		synctest.Wait()
		if p := cc.pushed.Load(); p == 0 || p >= total {
			t.Fatalf("%d of %d pushed: want some, with the rest waiting for the reader", p, total)
		}
		// More while the backlog drains: they wait behind it, or are
		// pushed once it is gone, but never overtake it.
		close(release)
		for i := total; i < 2*total; i++ {
			ca.Send(t.Context(), transport.Message{PPID: 11, Data: fmt.Appendf(nil, "%d", i)})
			n.Step()
		}
		n.StepAll()
		synctest.Wait()
		before := cc.pushed.Load()
		// And a few after the backlog, which are pushed again.
		const total2 = 2 * total
		for i := total2; i < total2+10; i++ {
			ca.Send(t.Context(), transport.Message{PPID: 11, Data: fmt.Appendf(nil, "%d", i)})
		}
		n.StepAll()
		synctest.Wait()
		l.Call(t.Context(), func(time.Time) {
			if len(got) != total2+10 {
				t.Fatalf("%d messages reached the loop, want %d", len(got), total2+10)
			}
			for i, v := range got {
				if v != i {
					t.Fatalf("message %d arrived in place %d", v, i)
				}
			}
		})
		if p := cc.pushed.Load() - before; p != 10 {
			t.Errorf("%d of the 10 messages after the backlog pushed, want all", p)
		}
	})
}

// countingPusher passes a Conn's push through and counts what it took.
type countingPusher struct {
	transport.Conn
	p      direct.Pusher
	pushed atomic.Int64
}

func (c *countingPusher) SetPush(f func(transport.Message) bool) {
	c.p.SetPush(func(m transport.Message) bool {
		ok := f(m)
		if ok {
			c.pushed.Add(1)
		}
		return ok
	})
}

func (c *countingPusher) Resume() { c.p.Resume() }

// A dial that fails returning a nil pointer in the Conn interface (not a
// nil interface) is a failure: done gets no association, and a cancelled
// dial does not call Abort on the nil pointer.
func TestDialFailureWithTypedNil(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l, stop := start(t)
		defer stop()
		refused := errors.New("refused")
		dial := func(context.Context, transport.Addr) (transport.Conn, error) {
			var c *fakeConn
			return c, refused
		}
		var gotConn transport.Conn
		var gotErr error
		l.DialWith(dial, testAddr, 0, func(_ time.Time, c transport.Conn, err error) { gotConn, gotErr = c, err })
		synctest.Wait()
		cancel := l.DialWith(dial, testAddr, 0, func(time.Time, transport.Conn, error) { t.Error("done after cancel") })
		cancel()
		synctest.Wait()
		l.Call(t.Context(), func(time.Time) {
			if gotConn != nil || !errors.Is(gotErr, refused) {
				t.Errorf("done(%v, %v), want no association and the error", gotConn, gotErr)
			}
		})
	})
}
