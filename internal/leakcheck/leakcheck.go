// Package leakcheck finds goroutines that a test started and did not stop.
//
// Call Check at the top of a test, before anything that starts goroutines:
//
//	func TestX(t *testing.T) {
//		leakcheck.Check(t)
//		...
//	}
//
// Check snapshots the goroutines that exist and registers a cleanup. Since
// cleanups run last-registered first, the check runs after every cleanup the
// test registers later (closing listeners, networks and so on). It then
// waits up to a grace period for goroutines that were not there before to
// end, and fails the test with their stacks if some remain.
package leakcheck

import (
	"bytes"
	"runtime"
	"strings"
	"testing"
	"time"
)

// Grace is how long Check waits for new goroutines to end.
const Grace = 5 * time.Second

// ignored are goroutines that are not owned by the code under test.
var ignored = []string{
	"testing.(*T).Run",
	"testing.tRunner",
	"testing.runTests",
	"testing.(*M).",
	"runtime.goexit0",
	"created by runtime.gc",
	"runtime.MHeap_Scavenger",
	"signal.signal_recv",
	"os/signal.loop",
	"runtime/trace.",
}

// Check registers a cleanup that fails t if goroutines started after the
// call are still running once the test's other cleanups have run. Extra
// strings name functions (as they appear in a stack) to ignore.
func Check(t testing.TB, ignore ...string) {
	t.Helper()
	check(t, Grace, ignore)
}

func check(t testing.TB, grace time.Duration, ignore []string) {
	before := ids()
	t.Cleanup(func() {
		deadline := time.Now().Add(grace)
		wait := time.Millisecond
		for {
			leaked := leaks(before, ignore)
			if len(leaked) == 0 {
				return
			}
			if time.Now().After(deadline) {
				t.Errorf("leakcheck: %d goroutine(s) still running after the test:\n\n%s",
					len(leaked), strings.Join(leaked, "\n\n"))
				return
			}
			// Give the goroutines a chance to finish. A timer, not a
			// sleep in a test: this is the check's own back-off.
			<-time.After(wait)
			if wait < 100*time.Millisecond {
				wait *= 2
			}
		}
	})
}

// stacks returns the stack of every goroutine except the caller's.
func stacks() []string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	var out []string
	for i, g := range bytes.Split(buf, []byte("\n\n")) {
		if i == 0 { // the current goroutine comes first
			continue
		}
		if s := strings.TrimSpace(string(g)); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// id is the "goroutine N" prefix of a stack.
func id(stack string) string {
	head, _, _ := strings.Cut(stack, " [")
	return head
}

func ids() map[string]bool {
	m := make(map[string]bool)
	for _, s := range stacks() {
		m[id(s)] = true
	}
	return m
}

func leaks(before map[string]bool, ignore []string) []string {
	var out []string
next:
	for _, s := range stacks() {
		if before[id(s)] {
			continue
		}
		for _, ig := range ignored {
			if strings.Contains(s, ig) {
				continue next
			}
		}
		for _, ig := range ignore {
			if strings.Contains(s, ig) {
				continue next
			}
		}
		out = append(out, s)
	}
	return out
}
