package loop

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"
)

type fakeCore struct {
	deadline time.Time
	fired    []time.Time
}

func (c *fakeCore) NextDeadline() time.Time { return c.deadline }
func (c *fakeCore) HandleTimeout(now time.Time) {
	c.fired = append(c.fired, now)
	c.deadline = time.Time{}
}

// The loop runs posted work in order, fires the core's deadline on the
// clock, and stops with its context.
func TestLoopTimerAndCall(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		l := New(ctx, nil)
		core := &fakeCore{}
		afters := 0
		done := make(chan struct{})
		go func() { l.Run(core, func(time.Time) { afters++ }); close(done) }()
		start := time.Now()
		if err := l.Call(ctx, func(now time.Time) { core.deadline = now.Add(3 * time.Second) }); err != nil {
			t.Fatal(err)
		}
		<-time.After(5 * time.Second) // virtual time inside the bubble
		var fired []time.Time
		l.Call(ctx, func(time.Time) { fired = append(fired, core.fired...) })
		if len(fired) != 1 || fired[0].Sub(start) != 3*time.Second {
			t.Fatalf("timeouts %v, want one at +3s", fired)
		}
		cancel()
		<-done
		if err := l.Call(context.Background(), func(time.Time) {}); !errors.Is(err, ErrStopped) {
			t.Fatalf("Call after stop: %v", err)
		}
		if l.Post(func(time.Time) {}) {
			t.Fatal("Post after stop accepted")
		}
		if afters < 3 {
			t.Fatalf("after ran %d times", afters)
		}
	})
}

// A deadline moved later fires at the later time, once; one moved later
// and then cleared never fires. (The loop moves its timer only to an
// earlier deadline: a later one is seen when the earlier tick finds
// nothing due.)
func TestLoopDeadlineMovesLater(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		l := New(ctx, nil)
		core := &fakeCore{}
		done := make(chan struct{})
		go func() { l.Run(core, nil); close(done) }()
		start := time.Now()
		l.Call(ctx, func(now time.Time) { core.deadline = now.Add(time.Second) })
		l.Call(ctx, func(now time.Time) { core.deadline = now.Add(3 * time.Second) })
		<-time.After(2 * time.Second) // virtual time
		l.Call(ctx, func(time.Time) {
			if len(core.fired) != 0 {
				t.Errorf("fired %v before the deadline at +3s", core.fired)
			}
		})
		<-time.After(2 * time.Second)
		l.Call(ctx, func(now time.Time) {
			if len(core.fired) != 1 || core.fired[0].Sub(start) != 3*time.Second {
				t.Errorf("fired %v, want once at +3s", core.fired)
			}
			core.fired = nil
			core.deadline = now.Add(time.Second)
		})
		l.Call(ctx, func(time.Time) { core.deadline = time.Time{} })
		<-time.After(5 * time.Second)
		l.Call(ctx, func(time.Time) {
			if len(core.fired) != 0 {
				t.Errorf("cleared deadline fired at %v", core.fired)
			}
		})
		cancel()
		<-done
	})
}
