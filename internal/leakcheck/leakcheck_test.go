package leakcheck

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// recorder is a testing.TB whose cleanups and errors the test controls.
type recorder struct {
	testing.TB
	cleanups []func()
	errs     []string
}

func (r *recorder) Helper()                   {}
func (r *recorder) Cleanup(f func())          { r.cleanups = append(r.cleanups, f) }
func (r *recorder) Errorf(f string, a ...any) { r.errs = append(r.errs, fmt.Sprintf(f, a...)) }

func (r *recorder) runCleanups() {
	for i := len(r.cleanups) - 1; i >= 0; i-- {
		r.cleanups[i]()
	}
}

func parkedForLeakTest(stop chan struct{}) { <-stop }

func TestReportsLeakedGoroutine(t *testing.T) {
	r := &recorder{TB: t}
	check(r, 50*time.Millisecond, nil)
	stop := make(chan struct{})
	defer close(stop)
	go parkedForLeakTest(stop)
	r.runCleanups()
	if len(r.errs) != 1 || !strings.Contains(r.errs[0], "parkedForLeakTest") {
		t.Fatalf("want one error naming the leaked goroutine, got %q", r.errs)
	}
}

func TestAcceptsStoppedGoroutine(t *testing.T) {
	r := &recorder{TB: t}
	check(r, Grace, nil)
	stop := make(chan struct{})
	go parkedForLeakTest(stop)
	r.Cleanup(func() { close(stop) }) // runs before the check
	r.runCleanups()
	if len(r.errs) != 0 {
		t.Fatalf("unexpected leak report: %q", r.errs)
	}
}

func TestIgnore(t *testing.T) {
	r := &recorder{TB: t}
	check(r, 50*time.Millisecond, []string{"parkedForLeakTest"})
	stop := make(chan struct{})
	defer close(stop)
	go parkedForLeakTest(stop)
	r.runCleanups()
	if len(r.errs) != 0 {
		t.Fatalf("ignored goroutine reported: %q", r.errs)
	}
}
