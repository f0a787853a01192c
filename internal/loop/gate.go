package loop

import (
	"runtime"
	"sync/atomic"
	"time"
)

// Gate decides whether loops yield their thread before they park.
//
// When a Loop's queue runs dry, it yields once (runtime.Gosched) before it
// parks, and then takes whatever arrived meanwhile. The goroutines its sends
// have just woken (pool users reading their answers, transport goroutines)
// run during the yield and queue their next messages while the loop is still
// runnable, so they need not wake it, and it takes those messages in the same
// batch. Parking and being woken for nearly every message was the largest
// cost left on the registrar's resolution path over an in-memory transport
// (BenchmarkRegistrarResolve/transport=memnet in package enrp): the yield cut
// the CPU time per resolution by about a fifth there. A loop with nothing
// else to run beside it pays a fraction of a microsecond per yield.
//
// A yield puts the loop at the back of the scheduler's global run queue,
// though, behind every runnable goroutine, and each of those may run for a
// whole time slice (10 ms). On a host whose cores are all busy with
// CPU-bound goroutines, one yield took about 20 ms with four such goroutines
// on two cores and over 600 ms with 64; nothing runs on the loop meanwhile,
// its timer included (BenchmarkResolveLatencyBusyHost in package enrp
// measures a registrar on such a host). So every yield is timed, and one that
// ends more than slowYield after the loop's last piece of work began closes
// the gate for every loop of the process: no loop yields during a pause that
// starts at yieldPause and doubles with each slow yield in a row, up to
// maxYieldPause. The first yield after a pause probes again; a fast one
// resets the pause. On a host that stays saturated the process thus pays one
// slow yield a few times a minute at first, and then once every
// maxYieldPause.
type Gate struct {
	off   atomic.Int64 // nanoseconds since gateEpoch before which no loop yields; 0: none
	pause atomic.Int64 // the next pause in nanoseconds; 0 means yieldPause
	// yield is runtime.Gosched when nil; tests count yields with it.
	yield func()
}

// processGate is the Gate every Loop uses.
var processGate Gate

// gateEpoch anchors the Gate's times, so that they compare by the
// monotonic clock where the Clock's times carry it. (A clock whose times
// lie before it, as in a testing/synctest bubble, works as well: the times
// of one clock compare among themselves.)
var gateEpoch = time.Now()

const (
	// slowYield: the goroutines a yield lets run take microseconds each;
	// a millisecond means that other goroutines hold the cores.
	slowYield = time.Millisecond
	// yieldPause and maxYieldPause bound how long yields stay off after a
	// slow one (see Gate).
	yieldPause    = time.Second
	maxYieldPause = time.Minute
)

// open reports whether a loop whose clock reads now may yield.
func (g *Gate) open(now time.Time) bool {
	off := g.off.Load()
	return off == 0 || now.Sub(gateEpoch).Nanoseconds() >= off
}

// doYield yields once and returns the clock's time after it. since is the
// last time the loop read before it (when its last piece of work began):
// a yield that ends more than slowYield after it closes the gate. Timing
// the piece with the yield saves a clock read per yield; a piece that alone
// takes longer than slowYield closes the gate too, which costs only yields
// (the loop parks as it would without them).
func (g *Gate) doYield(clock Clock, since time.Time) time.Time {
	if g.yield != nil {
		g.yield()
	} else {
		runtime.Gosched()
	}
	now := clock.Now()
	if now.Sub(since) <= slowYield {
		g.pause.Store(0)
		return now
	}
	p := time.Duration(g.pause.Load())
	if p <= 0 {
		p = yieldPause
	}
	g.off.Store(now.Sub(gateEpoch).Nanoseconds() + p.Nanoseconds())
	g.pause.Store(min(2*p, maxYieldPause).Nanoseconds())
	return now
}
