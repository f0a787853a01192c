package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/go-rserpool/rserpool/asap"
	"github.com/go-rserpool/rserpool/enrp"
	"github.com/go-rserpool/rserpool/internal/echo"
	"github.com/go-rserpool/rserpool/tlv"
	"github.com/go-rserpool/rserpool/transport"
)

// announceGroup is the ASAP announce group of the memnet tests.
var announceGroup = netip.MustParseAddrPort("239.0.0.50:3863")

// startRegistrar runs r until the test ends.
func startRegistrar(t testing.TB, cfg enrp.Config) *enrp.Registrar {
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

// pe is an echo pool element: a listener for pool users, an echo server
// on it, and the ASAP pool element that registers the listener.
type pe struct {
	name string
	ln   transport.Listener
	srv  *echo.Server
	*asap.PoolElement

	cancel context.CancelFunc
	served chan error
	once   sync.Once
}

// startPE starts an echo PE: users reach it at listenAt over userTr, it
// talks to registrars over regTr. It stops when the test ends.
func startPE(t testing.TB, name string, userTr transport.Transport, listenAt transport.Addr, regTr transport.Transport, cfg asap.PEConfig, opts ...asap.Option) *pe {
	t.Helper()
	ln, err := userTr.Listen(listenAt)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.UserTransport, err = asap.TransportParam(ln.Addr(), tlv.TransportUseDataOnly); err != nil {
		t.Fatal(err)
	}
	el, err := asap.NewPoolElement(cfg, regTr, opts...)
	if err != nil {
		ln.Close()
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &pe{name: name, ln: ln, srv: &echo.Server{Name: name}, PoolElement: el, cancel: cancel, served: make(chan error, 1)}
	go func() { p.served <- p.srv.Serve(ctx, ln) }()
	t.Cleanup(p.stop)
	return p
}

// stop closes the PE without deregistering it, as a process that exits
// does: its associations close (idempotent).
func (p *pe) stop() {
	p.once.Do(func() {
		p.PoolElement.Close()
		p.cancel()
		p.ln.Close()
		<-p.served
	})
}

// crash stops the PE abruptly: its user associations are aborted first.
func (p *pe) crash() {
	p.srv.Kill()
	p.stop()
}

// newPU starts a pool user that stops when the test ends.
func newPU(t testing.TB, cfg asap.PUConfig, tr transport.Transport, opts ...asap.Option) *asap.PoolUser {
	t.Helper()
	pu, err := asap.NewPoolUser(cfg, tr, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pu.Close() })
	return pu
}

// poolIDs returns the IDs of the PEs the registrar holds in the pool.
func poolIDs(ctx context.Context, r *enrp.Registrar, handle string) ([]uint32, error) {
	pes, err := r.PoolElements(ctx, []byte(handle))
	if err != nil {
		return nil, err
	}
	ids := make([]uint32, len(pes))
	for i, p := range pes {
		ids[i] = p.PE.ID
	}
	slices.Sort(ids)
	return ids, nil
}

// waitUntil polls cond every step until it holds or limit passes. The
// registrar offers no change notifications, so the end-to-end tests
// watch its read-only view; inside a synctest bubble the wait costs no
// wall time.
func waitUntil(t testing.TB, limit, step time.Duration, what string, cond func() (bool, error)) {
	t.Helper()
	deadline := time.Now().Add(limit)
	tick := time.NewTicker(step)
	defer tick.Stop()
	for {
		ok, err := cond()
		if err != nil {
			t.Fatalf("waiting for %s: %v", what, err)
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s within %v", what, limit)
		}
		<-tick.C
	}
}

func hex(id uint32) string { return fmt.Sprintf("%08x", id) }
