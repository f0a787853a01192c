package loop

import (
	"context"
	"errors"
	"runtime"
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

// countingClock is Real, counting its reads.
type countingClock struct {
	reads atomic.Int64
}

func (c *countingClock) Now() time.Time                 { c.reads.Add(1); return Real.Now() }
func (c *countingClock) NewTimer(d time.Duration) Timer { return Real.NewTimer(d) }

// Work queued while the loop is busy runs as one batch: the clock is read
// once for all of it, every piece sees the same time, and a later batch
// never sees an earlier one.
func TestLoopReadsClockOncePerBatch(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	clock := &countingClock{}
	l := New(ctx, clock)
	done := make(chan struct{})
	go func() { l.Run(&fakeCore{}, nil); close(done) }()
	defer func() { cancel(); <-done }()

	release := make(chan struct{})
	started := make(chan struct{})
	const n = 10
	var nows [n + 1]time.Time
	l.Post(func(now time.Time) { nows[0] = now; close(started); <-release })
	<-started
	before := clock.reads.Load()
	for i := 1; i <= n; i++ {
		l.Post(func(now time.Time) { nows[i] = now })
	}
	close(release)
	var later time.Time
	if err := l.Call(ctx, func(now time.Time) { later = now }); err != nil {
		t.Fatal(err)
	}
	for i, now := range nows {
		if !now.Equal(nows[0]) {
			t.Errorf("work %d saw %v, the batch's first %v", i, now, nows[0])
		}
	}
	// The queued ten ran in the first one's batch, so they read nothing;
	// the Call may have run in it too, or begun a batch of its own.
	if r := clock.reads.Load() - before; r > 1 {
		t.Errorf("clock read %d times for work queued behind one batch, want at most 1", r)
	}
	if later.Before(nows[0]) {
		t.Errorf("a later batch saw %v, before the earlier one's %v", later, nows[0])
	}
}

// jumpClock moves on by step at every read, so that every yield looks as
// slow as on a host whose cores are all busy.
type jumpClock struct {
	mu    sync.Mutex
	t     time.Time
	step  time.Duration
	reads int
}

func (c *jumpClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.reads++
	c.t = c.t.Add(c.step)
	return c.t
}
func (c *jumpClock) NewTimer(d time.Duration) Timer { return Real.NewTimer(d) }
func (c *jumpClock) Reads() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.reads
}

// The loop yields when its queue runs dry; a yield that takes longer than
// slowYield turns yielding off for yieldPause.
func TestLoopYieldsUnlessYieldsAreSlow(t *testing.T) {
	for _, tc := range []struct {
		name  string
		clock Clock
		check func(yields, calls int) bool
		want  string
	}{
		{"fast", Real, func(y, calls int) bool { return y >= 1 }, "at least one"},
		// Every read 2 ms on: the first yield is slow, and the reads of
		// the calls below all fall within yieldPause of it.
		{"slow", &jumpClock{t: time.Unix(1e9, 0), step: 2 * slowYield}, func(y, calls int) bool { return y == 1 }, "exactly one"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			l := New(ctx, tc.clock)
			var yields atomic.Int64
			l.yield = func() { yields.Add(1); runtime.Gosched() }
			done := make(chan struct{})
			go func() { l.Run(&fakeCore{}, nil); close(done) }()
			defer func() { cancel(); <-done }()
			const calls = 40
			for range calls {
				if err := l.Call(ctx, func(time.Time) {}); err != nil {
					t.Fatal(err)
				}
			}
			if y := int(yields.Load()); !tc.check(y, calls) {
				t.Errorf("%d yields in %d calls, want %s", y, calls, tc.want)
			}
		})
	}
}
