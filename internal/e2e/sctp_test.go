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
	"github.com/go-rserpool/rserpool/internal/leakcheck"
	"github.com/go-rserpool/rserpool/tlv"
	"github.com/go-rserpool/rserpool/transport"
	"github.com/go-rserpool/rserpool/transport/sctp"
)

var loopbackAny = transport.Addr{Kind: transport.KindSCTPUDP, AddrPort: netip.MustParseAddrPort("127.0.0.1:0")}

// TestLoopbackSCTP runs the ASAP procedures end to end over user-space
// SCTP on loopback, in real time: registration (RFC 5352 §3.1-3.2),
// handle resolution (§3.5), endpoint keep-alive (§3.7), deregistration
// (§3.3), and pool user failover with an Endpoint Unreachable report
// (§3.5) after a PE is killed, which the registrar then removes.
func TestLoopbackSCTP(t *testing.T) {
	if testing.Short() {
		t.Skip("real SCTP over loopback")
	}
	leakcheck.Check(t)
	const handle = "sctp-echo"
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	tp := sctp.New(sctp.Config{ShutdownTimeout: time.Second})
	const ka = 200 * time.Millisecond
	cfg := enrp.Config{Transport: tp, ListenAddr: loopbackAny, ASAP: enrp.ASAPConfig{KeepAliveInterval: ka, KeepAliveTimeout: ka}}
	events := track(t, &cfg, 256)
	r := startRegistrar(t, cfg)
	peCfg := asap.PEConfig{PoolHandle: []byte(handle), Registrars: []transport.Addr{r.Addr()}}

	// §3.1-3.2: two PEs register; the registrar is their home and stores
	// the user transports they listen on.
	pe1 := startPE(t, "pe-1", tp, loopbackAny, tp, peCfg)
	pe2 := startPE(t, "pe-2", tp, loopbackAny, tp, peCfg)
	for _, p := range []*pe{pe1, pe2} {
		if err := p.Register(ctx); err != nil {
			t.Fatalf("%s: Register: %v", p.name, err)
		}
	}
	infos, err := r.PoolElements(ctx, []byte(handle))
	if err != nil {
		t.Fatal(err)
	}
	if len(infos) != 2 {
		t.Fatalf("registrar holds %d PEs, want 2", len(infos))
	}
	byID := map[uint32]*pe{pe1.ID(): pe1, pe2.ID(): pe2}
	for _, in := range infos {
		p := byID[in.PE.ID]
		if p == nil {
			t.Fatalf("registrar holds unknown PE %s", hex(in.PE.ID))
		}
		if !in.Owned || in.PE.HomeServerID != r.ServerID() {
			t.Errorf("%s: owned %v, home %s; want owned by %s", p.name, in.Owned, hex(in.PE.HomeServerID), hex(r.ServerID()))
		}
		if a, err := asap.AddrOf(in.PE.UserTransport, transport.KindSCTPUDP); err != nil || a != p.ln.Addr() {
			t.Errorf("%s: stored user transport %v (%v), listening at %v", p.name, a, err, p.ln.Addr())
		}
	}

	// §3.7: the registrar sends keep-alives to silent PEs; the PEs answer,
	// so none is removed over several rounds.
	waitUntil(t, 10*time.Second, 20*time.Millisecond, "three keep-alive rounds", func() (bool, error) {
		return r.Stats().ASAP.KeepAlivesSent >= 6, nil
	})
	if st := r.Stats(); st.PEs != 2 || st.ASAP.KeepAliveTimeouts != 0 {
		t.Fatalf("after keep-alives: %d PEs, %d keep-alive timeouts; want 2 and 0", st.PEs, st.ASAP.KeepAliveTimeouts)
	}
	if got, want := events.holds(), sorted(pe1.ID(), pe2.ID()); !slices.Equal(got, want) {
		t.Fatalf("events say the registrar holds %v, want %v", got, want)
	}

	// §3.5: a pool user resolves the handle and reaches both PEs, in
	// round-robin order.
	pu := newPU(t, asap.PUConfig{Registrars: []transport.Addr{r.Addr()}}, tp)
	got, err := pu.Resolve(ctx, []byte(handle))
	if err != nil {
		t.Fatal(err)
	}
	if ids := peIDs(got); !slices.Equal(ids, sorted(pe1.ID(), pe2.ID())) {
		t.Fatalf("resolved %v, want both PEs", ids)
	}
	if from := ask(t, ctx, pu, handle, 4); !sameSet(from, "pe-1", "pe-2") {
		t.Errorf("answers from %v, want pe-1 and pe-2", from)
	}

	// §3.3: pe-1 deregisters; the registrar drops it at once.
	if err := pe1.Deregister(ctx); err != nil {
		t.Fatal(err)
	}
	if ids, err := poolIDs(ctx, r, handle); err != nil || !slices.Equal(ids, []uint32{pe2.ID()}) {
		t.Fatalf("after deregistration the pool holds %v (%v), want only pe-2", ids, err)
	}
	if ev := events.waitEvent(t, time.Second, "pe-1's deregistration", removed(pe1.ID())); ev.Reason != enrp.RemovedDeregistered {
		t.Fatalf("pe-1 removed for %v, want %v", ev.Reason, enrp.RemovedDeregistered)
	}
	// (A new pool user: the first one may use its cache of the pool,
	// which still names pe-1, for stale.cache.value.)
	puNew := newPU(t, asap.PUConfig{Registrars: []transport.Addr{r.Addr()}}, tp)
	if from := ask(t, ctx, puNew, handle, 2); !sameSet(from, "pe-2") {
		t.Errorf("answers from %v after pe-1 left, want pe-2 only", from)
	}

	// §3.5: pe-3 joins, pe-2 is killed (aborts, no deregistration). The
	// pool user's cached pe-2 fails; it reports it and fails over to
	// pe-3, and the registrar removes pe-2.
	pe3 := startPE(t, "pe-3", tp, loopbackAny, tp, peCfg)
	if err := pe3.Register(ctx); err != nil {
		t.Fatal(err)
	}
	dials := &dialCounter{Transport: tp, failed: map[transport.Addr]int{}}
	pu2 := newPU(t, asap.PUConfig{Registrars: []transport.Addr{r.Addr()}}, dials) // caching
	if _, err := pu2.Resolve(ctx, []byte(handle)); err != nil {
		t.Fatal(err)
	}
	pe2.crash()
	for i := range 4 {
		a, err := echo.Call(ctx, pu2, []byte(handle), "after the kill", time.Second)
		if err != nil {
			t.Fatalf("request %d after the kill: %v", i, err)
		}
		if a.From != "pe-3" {
			t.Errorf("request %d after the kill answered by %s", i, a.From)
		}
	}
	if n := dials.failures(pe2.ln.Addr()); n != 1 {
		t.Errorf("the pool user dialled the killed pe-2 and failed %d times, want once (then failover)", n)
	}
	rm := events.waitEvent(t, 10*time.Second, "pe-2's removal", removed(pe2.ID()))
	if ids, err := poolIDs(ctx, r, handle); err != nil || !slices.Equal(ids, []uint32{pe3.ID()}) {
		t.Fatalf("after pe-2's removal the pool holds %v (%v), want only pe-3", ids, err)
	}
	st := r.Stats().ASAP
	t.Logf("registrar: %d registrations, %d deregistrations, %d resolutions, %d keep-alives, %d unreachable reports, removals: %d association lost, %d keep-alive timeout, %d unreachable; pe-2 removed for %v",
		st.Registrations, st.Deregistrations, st.Resolutions, st.KeepAlivesSent, st.UnreachableReports,
		st.AssocLostRemoved, st.KeepAliveTimeouts, st.UnreachableRemoved, rm.Reason)
	if st.Deregistrations != 1 || st.AssocLostRemoved+st.KeepAliveTimeouts+st.UnreachableRemoved != 1 {
		t.Errorf("want 1 deregistration and 1 removal of the killed PE")
	}
	// The events tell the same story, in order: three PEs registered
	// (and maybe re-registered), pe-1 deregistered, pe-2 removed once.
	var story []string
	for _, ev := range events.seen() {
		if ev.Kind != enrp.EventUpdated {
			story = append(story, fmt.Sprintf("%v %s", ev.Kind, hex(ev.PEID)))
		}
	}
	if want := []string{
		"registered " + hex(pe1.ID()), "registered " + hex(pe2.ID()), "removed " + hex(pe1.ID()),
		"registered " + hex(pe3.ID()), "removed " + hex(pe2.ID()),
	}; !slices.Equal(story, want) {
		t.Errorf("events %v, want %v", story, want)
	}
}

// ask sends n echo requests and returns who answered, in order.
func ask(t *testing.T, ctx context.Context, pu *asap.PoolUser, handle string, n int) []string {
	t.Helper()
	var from []string
	for range n {
		a, err := echo.Call(ctx, pu, []byte(handle), "hello", time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if a.Text != "hello" {
			t.Fatalf("echoed %q", a.Text)
		}
		from = append(from, a.From)
	}
	return from
}

func peIDs(pes []tlv.PoolElement) []uint32 {
	ids := make([]uint32, len(pes))
	for i, p := range pes {
		ids[i] = p.ID
	}
	slices.Sort(ids)
	return ids
}

func sorted(ids ...uint32) []uint32 { slices.Sort(ids); return ids }

// sameSet reports whether got holds exactly the names of want (each at
// least once).
func sameSet(got []string, want ...string) bool {
	for _, g := range got {
		if !slices.Contains(want, g) {
			return false
		}
	}
	for _, w := range want {
		if !slices.Contains(got, w) {
			return false
		}
	}
	return true
}

// dialCounter counts failed dials per address.
type dialCounter struct {
	transport.Transport
	mu     sync.Mutex
	failed map[transport.Addr]int
}

func (d *dialCounter) Dial(ctx context.Context, to transport.Addr) (transport.Conn, error) {
	c, err := d.Transport.Dial(ctx, to)
	if err != nil {
		d.mu.Lock()
		d.failed[to]++
		d.mu.Unlock()
	}
	return c, err
}

func (d *dialCounter) failures(a transport.Addr) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.failed[a]
}
