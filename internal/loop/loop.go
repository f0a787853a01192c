// Package loop runs a sans-IO protocol core on one goroutine: the pattern
// of golang.org/x/net/quic's conn loop. Every touch of the core happens on
// the loop goroutine; other goroutines (association readers, dialers, the
// host's API calls) hand it closures with Post or Call. One timer follows
// the core's NextDeadline, read from an injected Clock.
//
// Associations are driven by Link: a reader goroutine that posts received
// messages to the loop and a writer goroutine with a bounded queue, so that
// the loop never blocks on the network. With this module's transports
// (package direct) most messages skip both: a send that needs no waiting
// goes out on the loop's goroutine when nothing is queued before it, and a
// received message goes into the loop's queue straight from the transport
// while there is room; order is kept either way. When its queue runs dry, a
// loop yields its thread once before it parks, unless yields have lately
// been slow (see Gate). The loop never waits for a peer
// either: an association is closed (gracefully or by abort) on its Link's
// writer goroutine, and no goroutine that may wait for the loop holds
// anything the loop needs. Every goroutine belongs to the Loop and ends
// when the Loop's context ends; Run returns after all have.
package loop

import (
	"context"
	"sync"
	"time"

	"github.com/go-rserpool/rserpool/transport"
)

// Clock is the time source of a Loop. Real is the default; inside a
// testing/synctest bubble Real runs on virtual time.
type Clock interface {
	Now() time.Time
	NewTimer(d time.Duration) Timer
}

// Timer is a resettable one-shot timer, like *time.Timer.
type Timer interface {
	C() <-chan time.Time
	Stop() bool
	Reset(d time.Duration) bool
}

// Real is the wall clock.
var Real Clock = realClock{}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }
func (realClock) NewTimer(d time.Duration) Timer {
	return realTimer{time.NewTimer(d)}
}

type realTimer struct{ *time.Timer }

func (t realTimer) C() <-chan time.Time { return t.Timer.C }

// Core is what a Loop drives: the timer side of a sans-IO core.
type Core interface {
	NextDeadline() time.Time
	HandleTimeout(now time.Time)
}

// Queue is how many pieces of work (posted functions, received messages,
// accepted associations) wait for the loop before Post blocks.
const Queue = 256

// Loop serialises work on one goroutine.
type Loop struct {
	clock Clock
	gate  *Gate
	work  chan work
	done  chan struct{}
	ctx   context.Context
	wg    sync.WaitGroup
}

// work is one item of the loop's queue: a posted function, or a message
// received on a Link (kept apart so that receiving allocates no closure).
type work struct {
	f func(now time.Time)
	k *Link
	m transport.Message
	// down: k failed; m is empty.
	down bool
	// c is an association that f hands over to the loop; Run aborts it
	// if it stops before f runs, so that no association leaks.
	c transport.Conn
}

func (w *work) run(now time.Time) {
	switch {
	case w.k == nil:
		w.f(now)
	case w.down:
		w.k.down(now)
	case !w.k.closed.Load():
		w.k.onRecv(now, w.m)
	}
}

// New returns a Loop bound to ctx: Run ends when ctx ends. A nil clock
// means Real.
func New(ctx context.Context, clock Clock) *Loop {
	if clock == nil {
		clock = Real
	}
	return &Loop{clock: clock, gate: &processGate, work: make(chan work, Queue), done: make(chan struct{}), ctx: ctx}
}

// Context returns the Loop's context; goroutines started for the Loop
// stop when it ends.
func (l *Loop) Context() context.Context { return l.ctx }

// Now returns the clock's time.
func (l *Loop) Now() time.Time { return l.clock.Now() }

// Run drives core until the Loop's context ends: it runs posted work and
// the core's timeouts, and calls after (if not nil) after each, where the
// driver empties the core's outbox. It waits for the goroutines started
// with Go before it returns, and aborts the associations (from Accept or
// Dial) whose hand-over to the loop was still queued.
//
// Shutdown takes one bound, however many associations hang: every Link
// ends its association on its own goroutine, all at once (gracefully,
// each within the transport's own shutdown bound, unless aborted), and
// queued hand-overs are aborted, which never waits.
func (l *Loop) Run(core Core, after func(now time.Time)) {
	defer func() {
		close(l.done)
		l.wg.Wait()
		for { // nobody can queue work any more
			select {
			case w := <-l.work:
				if w.c != nil {
					w.c.Abort() // never served; Abort never waits
				}
			default:
				return
			}
		}
	}()
	timer := l.clock.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	armed := time.Time{}
	// The timer is moved only to an earlier deadline: a later one (or
	// none) leaves it armed, and when it fires early the loop sees that
	// nothing is due yet and arms it again. Cores whose deadline moves
	// with every message (a keep-alive after the latest one) cost no
	// timer reset per message that way.
	rearm := func() {
		d := core.NextDeadline()
		if d.IsZero() || (!armed.IsZero() && !d.Before(armed)) {
			return
		}
		timer.Stop()
		armed = d
		timer.Reset(max(d.Sub(l.clock.Now()), 0))
	}
	for {
		if l.ctx.Err() != nil {
			return // no work runs once the end is seen, whatever is queued
		}
		select {
		case <-l.ctx.Done():
			return
		case w := <-l.work:
			// Work through what is queued, up to a batch, before going
			// back to the select and the timer: a plain receive is much
			// cheaper than a select over several busy channels.
			now := l.do(&w, after)
			yielded := false
			for range batch - 1 {
				if l.ctx.Err() != nil {
					return
				}
				select {
				case w = <-l.work:
					now = l.do(&w, after)
					continue
				default:
				}
				// The queue is empty: yield once before parking (see
				// Gate), then take what arrived meanwhile.
				if yielded || !l.gate.open(now) {
					break
				}
				yielded = true
				t := l.gate.doYield(l.clock, now)
				if l.ctx.Err() != nil {
					return
				}
				select {
				case w = <-l.work:
					// t was read just now: it serves as this piece's time.
					now = t
					l.doAt(&w, now, after)
					continue
				default:
				}
				break
			}
		case <-timer.C():
			armed = time.Time{}
			now := l.clock.Now()
			if d := core.NextDeadline(); !d.IsZero() && !now.Before(d) {
				core.HandleTimeout(now)
				if after != nil {
					after(now)
				}
			}
		}
		rearm()
	}
}

// batch bounds the work Run does between two looks at the timer.
const batch = 64

// do runs w with the clock's time, then after, and returns that time.
func (l *Loop) do(w *work, after func(now time.Time)) time.Time {
	now := l.clock.Now()
	l.doAt(w, now, after)
	return now
}

// doAt runs w with now, then after.
func (l *Loop) doAt(w *work, now time.Time, after func(now time.Time)) {
	w.run(now)
	if after != nil {
		after(now)
	}
}

// Post queues f to run on the loop. It returns false when the loop has
// stopped (f will never run). It blocks while the queue is full, so it is
// for other goroutines: work on the loop must not call Post (nor Call,
// which waits for the loop) and does what it has to do directly.
func (l *Loop) Post(f func(now time.Time)) bool {
	return l.put(work{f: f})
}

func (l *Loop) put(w work) bool {
	// Run returns only once ctx has ended, so ctx alone tells whether the
	// loop has stopped. The single-case send is the cheap path (no select
	// over several channels) for the readers that post every message.
	if l.ctx.Err() != nil {
		return false
	}
	select {
	case l.work <- w:
		return true
	default:
	}
	select {
	case l.work <- w:
		return true
	case <-l.ctx.Done():
		return false
	}
}

// tryPut queues w if there is room, without waiting. It reports true when
// the loop has stopped: w is then dropped, as it would never run.
func (l *Loop) tryPut(w work) bool {
	if l.ctx.Err() != nil {
		return true
	}
	select {
	case l.work <- w:
		return true
	default:
		return false
	}
}

// Call runs f on the loop and waits for it. It fails with ctx's error or
// ErrStopped. It must not be called on the loop.
func (l *Loop) Call(ctx context.Context, f func(now time.Time)) error {
	if l.stopped() {
		return ErrStopped
	}
	ran := make(chan struct{})
	g := func(now time.Time) { f(now); close(ran) }
	select {
	case l.work <- work{f: g}:
	case <-ctx.Done():
		return ctx.Err()
	case <-l.done:
		return ErrStopped
	case <-l.ctx.Done():
		return ErrStopped
	}
	select {
	case <-ran:
		return nil
	case <-l.done:
		return ErrStopped
	}
}

func (l *Loop) stopped() bool {
	select {
	case <-l.done:
		return true
	case <-l.ctx.Done():
		return true
	default:
		return false
	}
}

// Go runs f on a new goroutine owned by the loop: Run waits for it. f must
// return when the Loop's context ends.
func (l *Loop) Go(f func(ctx context.Context)) {
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		f(l.ctx)
	}()
}
