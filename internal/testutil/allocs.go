// Package testutil holds small helpers shared by the tests of this module.
package testutil

import "testing"

// CheckAllocs fails t when f allocates more than max times per run
// (averaged by testing.AllocsPerRun). It skips under the race detector,
// which adds allocations of its own.
func CheckAllocs(t testing.TB, max float64, f func()) {
	t.Helper()
	if RaceEnabled {
		t.Skip("allocation counts are not meaningful under -race")
	}
	if n := testing.AllocsPerRun(100, f); n > max {
		t.Errorf("got %v allocs per run, want at most %v", n, max)
	}
}
