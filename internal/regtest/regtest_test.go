package regtest_test

import (
	"errors"
	"testing"

	"github.com/go-rserpool/rserpool/asap"
	"github.com/go-rserpool/rserpool/enrp"
	"github.com/go-rserpool/rserpool/internal/leakcheck"
	"github.com/go-rserpool/rserpool/internal/regtest"
	"github.com/go-rserpool/rserpool/transport"
	"github.com/go-rserpool/rserpool/transport/memnet"
)

// The registrar answers while the test runs, and is gone (Run returned,
// its goroutines ended) once the test is over.
func TestStart(t *testing.T) {
	leakcheck.Check(t)
	n := memnet.New(1)
	t.Cleanup(func() { n.Close() })
	nd := n.NewNode()
	var r *enrp.Registrar
	t.Run("running", func(t *testing.T) {
		r = regtest.Start(t, enrp.Config{Transport: nd, ListenAddr: nd.Addr(transport.PortASAP)})
		pu, err := asap.NewPoolUser(asap.PUConfig{Registrars: []transport.Addr{r.Addr()}}, n.NewNode())
		if err != nil {
			t.Fatal(err)
		}
		defer pu.Close()
		if _, err := pu.Resolve(t.Context(), []byte("none")); !errors.Is(err, asap.ErrUnknownPool) {
			t.Errorf("Resolve: %v, want the registrar's ErrUnknownPool", err)
		}
	})
	if _, err := r.Peers(t.Context()); !errors.Is(err, enrp.ErrClosed) {
		t.Errorf("after the test: Peers = %v, want ErrClosed", err)
	}
}
