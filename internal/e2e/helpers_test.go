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
	"github.com/go-rserpool/rserpool/internal/regtest"
	"github.com/go-rserpool/rserpool/tlv"
	"github.com/go-rserpool/rserpool/transport"
)

// announceGroup is the ASAP announce group of the memnet tests.
var announceGroup = netip.MustParseAddrPort("239.0.0.50:3863")

// startRegistrar runs a registrar of cfg until the test ends.
var startRegistrar = regtest.Start

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

// waitUntil polls cond every step until it holds or limit passes, for
// what the registrar's events do not tell (its keep-alive counts); inside
// a synctest bubble the wait costs no wall time.
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

// tracker follows a registrar's events (enrp.Config.Events): which PEs it
// holds, and every event in order, so that tests wait for the change
// they expect instead of polling the registrar's view.
type tracker struct {
	events chan enrp.Event
	mu     sync.Mutex
	held   map[uint32]bool // by PE ID (the tests use one pool)
	log    []enrp.Event
	wake   chan struct{} // closed at the next event
}

// track sets cfg.Events to a channel of buf events and follows it until
// the test ends.
func track(t testing.TB, cfg *enrp.Config, buf int) *tracker {
	k := &tracker{events: make(chan enrp.Event, buf), held: map[uint32]bool{}, wake: make(chan struct{})}
	cfg.Events = k.events
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			case ev := <-k.events:
				k.mu.Lock()
				k.log = append(k.log, ev)
				if !ev.Kind.IsPeer() { // peer events name no PE
					k.held[ev.PEID] = ev.Kind != enrp.EventRemoved
				}
				close(k.wake)
				k.wake = make(chan struct{})
				k.mu.Unlock()
			}
		}
	}()
	t.Cleanup(func() { close(stop); <-done })
	return k
}

// holds returns the sorted IDs of the PEs the events say the registrar
// holds.
func (k *tracker) holds() []uint32 {
	k.mu.Lock()
	defer k.mu.Unlock()
	var ids []uint32
	for id, in := range k.held {
		if in {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids
}

// seen returns the events so far, in order.
func (k *tracker) seen() []enrp.Event {
	k.mu.Lock()
	defer k.mu.Unlock()
	return slices.Clone(k.log)
}

// waitEvent waits until an event that match accepts has come, for at
// most limit, and returns the first such one.
func (k *tracker) waitEvent(t testing.TB, limit time.Duration, what string, match func(enrp.Event) bool) enrp.Event {
	t.Helper()
	timeout := time.After(limit)
	for n := 0; ; {
		k.mu.Lock()
		for ; n < len(k.log); n++ {
			if match(k.log[n]) {
				ev := k.log[n]
				k.mu.Unlock()
				return ev
			}
		}
		wake := k.wake
		k.mu.Unlock()
		select {
		case <-wake:
		case <-timeout:
			t.Fatalf("no event for %s within %v", what, limit)
		}
	}
}

// waitHolds waits until the events say the registrar holds exactly ids
// (sorted), for at most limit.
func (k *tracker) waitHolds(t testing.TB, limit time.Duration, what string, ids []uint32) {
	t.Helper()
	timeout := time.After(limit)
	for {
		k.mu.Lock()
		wake := k.wake
		k.mu.Unlock()
		if slices.Equal(k.holds(), ids) {
			return
		}
		select {
		case <-wake:
		case <-timeout:
			t.Fatalf("no %s within %v: the registrar holds %d PEs", what, limit, len(k.holds()))
		}
	}
}

// removed matches the removal of PE id.
func removed(id uint32) func(enrp.Event) bool {
	return func(ev enrp.Event) bool { return ev.Kind == enrp.EventRemoved && ev.PEID == id }
}

func hex(id uint32) string { return fmt.Sprintf("0x%08x", id) }
