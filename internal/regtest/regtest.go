// Package regtest runs an embedded registrar (enrp.Registrar) for the
// length of a test: the rig the end-to-end, asap and example tests
// share.
package regtest

import (
	"context"
	"testing"

	"github.com/go-rserpool/rserpool/enrp"
)

// Start makes a registrar of cfg and runs it until the test ends; then it
// closes it, waits for Run to return, and fails the test when Run
// returned an error.
func Start(t testing.TB, cfg enrp.Config) *enrp.Registrar {
	t.Helper()
	r, err := enrp.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ran := make(chan error, 1)
	go func() { ran <- r.Run(context.Background()) }()
	t.Cleanup(func() {
		r.Close()
		if err := <-ran; err != nil {
			t.Errorf("registrar Run: %v", err)
		}
	})
	return r
}
