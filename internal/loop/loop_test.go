package loop

import (
	"context"
	"errors"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
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

// jumpClock moves on by step at every read, so that every yield looks as
// slow as on a host whose cores are all busy when step exceeds slowYield.
type jumpClock struct {
	mu   sync.Mutex
	t    time.Time
	step time.Duration
}

func (c *jumpClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(c.step)
	return c.t
}
func (c *jumpClock) NewTimer(d time.Duration) Timer { return Real.NewTimer(d) }

func (c *jumpClock) set(step, jump time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.step = step
	c.t = c.t.Add(jump)
}

// yields runs one Call per batch (the bubble settles after each) on a loop
// with its own Gate, calling before(i) ahead of Call i, and returns for each
// Call whether the loop yielded after it.
func yields(t *testing.T, clock Clock, calls int, before func(i int)) []bool {
	out := make([]bool, calls)
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		l := New(ctx, clock)
		var n atomic.Int64
		l.gate = &Gate{yield: func() { n.Add(1); runtime.Gosched() }}
		done := make(chan struct{})
		go func() { l.Run(&fakeCore{}, nil); close(done) }()
		for i := range calls {
			if before != nil {
				before(i)
			}
			was := n.Load()
			if err := l.Call(ctx, func(time.Time) {}); err != nil {
				t.Fatal(err)
			}
			synctest.Wait() // the loop has yielded, or not, and parked
			out[i] = n.Load() > was
		}
		cancel()
		<-done
	})
	return out
}

// which lists the indexes of the true elements.
func which(b []bool) []int {
	var out []int
	for i, v := range b {
		if v {
			out = append(out, i)
		}
	}
	return out
}

// The loop yields once each time its queue runs dry.
func TestLoopYields(t *testing.T) {
	if y := which(yields(t, nil, 40, nil)); len(y) != 40 {
		t.Fatalf("yields after batches %v of 40, want after every one", y)
	}
}

// A yield that takes longer than slowYield closes the gate for yieldPause;
// after it the loop probes again, each slow yield in a row doubles the
// pause, and a fast one resets it.
func TestLoopStopsYieldingWhenYieldsAreSlow(t *testing.T) {
	// Every read 2 ms on: each yield is slow (it ends 2 ms after its batch's
	// last piece began). A batch reads the clock once for its work, and
	// once more when it yields.
	clock := &jumpClock{t: time.Unix(1e9, 0), step: 2 * slowYield}
	got := yields(t, clock, 2600, func(i int) {
		switch i {
		case 1600: // fast yields from here: the pause is over at once
			clock.set(0, time.Hour)
		case 1610: // slow again
			clock.set(2*slowYield, 0)
		}
	})
	// Batch 0 reads 2 ms and yields until 4 ms: closed until 1.004 s, the
	// next pause 2 s. Batches 1-499 read 6-1002 ms; batch 500 (1.004 s)
	// probes: closed until 3.006 s, next 4 s. Batch 1500 (3.006 s) probes:
	// closed until 7.008 s. At 1600 the clock jumps an hour and yields are
	// fast: batch 1600 probes, fast, and the pause goes back to 1 s;
	// 1601-1609 yield as well. Batch 1610's yield is slow again: closed for
	// 1 s, until its reads reach 1 s on, at batch 2110.
	want := []int{0, 500, 1500}
	for i := 1600; i <= 1610; i++ {
		want = append(want, i)
	}
	want = append(want, 2110)
	if y := which(got); !slices.Equal(y, want) {
		t.Fatalf("yields after batches %v, want %v", y, want)
	}
}

// A cancel during a yield stops the loop before it takes more work: a
// hand-over queued meanwhile is aborted, never run.
func TestLoopCancelDuringYield(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		l := New(ctx, nil)
		c := newFakeConn()
		ran := false
		l.gate = &Gate{yield: func() {
			if !l.put(work{f: func(time.Time) { ran = true }, c: c}) {
				t.Error("the hand-over was refused")
			}
			cancel()
		}}
		done := make(chan struct{})
		go func() { l.Run(&fakeCore{}, nil); close(done) }()
		l.Post(func(time.Time) {})
		<-done
		if ran {
			t.Error("work queued during the yield ran after the cancel")
		}
		if !c.aborted() {
			t.Error("the association handed over during the yield was not aborted")
		}
	})
}
