package asap

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/go-rserpool/rserpool/internal/leakcheck"
	"github.com/go-rserpool/rserpool/policy"
	"github.com/go-rserpool/rserpool/tlv"
	"github.com/go-rserpool/rserpool/transport"
	"github.com/go-rserpool/rserpool/transport/memnet"
)

// puNet is a memnet with a fake registrar and n pool elements of pool
// "echo", registered straight into the registrar (PE IDs 1..n). Each PE
// address has a listener that accepts and closes user associations;
// closing it makes dials to the PE fail.
type puNet struct {
	n   *memnet.Network
	reg *fakeRegistrar
	ls  []transport.Listener
}

func newPUNet(t *testing.T, pes int) *puNet {
	t.Helper()
	n := memnet.New(3)
	regNode := n.NewNode()
	regL, err := regNode.Listen(regNode.Addr(transport.PortASAP))
	if err != nil {
		t.Fatal(err)
	}
	p := &puNet{n: n, reg: startFakeRegistrar(t, regL, 0xabc)}
	for i := range pes {
		node := n.NewNode()
		l, err := node.Listen(node.Addr(7000))
		if err != nil {
			t.Fatal(err)
		}
		ut, err := TransportParam(l.Addr(), tlv.TransportUseDataOnly)
		if err != nil {
			t.Fatal(err)
		}
		pe := testPE(uint32(i+1), policy.RoundRobin, policy.Values{})
		pe.UserTransport = ut
		p.reg.mu.Lock()
		p.reg.pes[pe.ID] = pe
		p.reg.mu.Unlock()
		p.ls = append(p.ls, l)
		go func() {
			for {
				c, err := l.Accept(context.Background())
				if err != nil {
					return
				}
				c.Close()
			}
		}()
	}
	return p
}

func (p *puNet) close() {
	for _, l := range p.ls {
		l.Close()
	}
	p.reg.close()
	p.n.Close()
}

func (p *puNet) newPU(t *testing.T, mod func(*PUConfig)) *PoolUser {
	t.Helper()
	cfg := PUConfig{Registrars: []transport.Addr{p.reg.l.Addr()}, Kind: transport.KindMem, Logger: testLogger(t)}
	if mod != nil {
		mod(&cfg)
	}
	pu, err := NewPoolUser(cfg, p.n.NewNode())
	if err != nil {
		t.Fatal(err)
	}
	return pu
}

func (r *fakeRegistrar) resolutions() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.hrs
}

// RFC 5352 §5.3 with the cache disabled (StaleCache < 0): Select and Dial
// resolve the handle for every selection (one ASAP_HANDLE_RESOLUTION each,
// §3.5) and select from that answer.
func TestPoolUserDisabledCache(t *testing.T) {
	leakcheck.Check(t)
	synctest.Test(t, func(t *testing.T) {
		p := newPUNet(t, 2)
		defer p.close()
		pu := p.newPU(t, func(c *PUConfig) { c.StaleCache = -1 })
		defer pu.Close()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		seen := map[uint32]int{}
		for i := range 4 {
			pe, err := pu.Select(ctx, []byte("echo"))
			if err != nil {
				t.Fatalf("Select %d: %v", i, err)
			}
			seen[pe.ID]++
			if got := p.reg.resolutions(); got != i+1 {
				t.Fatalf("after %d Selects the registrar answered %d resolutions", i+1, got)
			}
		}
		if seen[1] != 2 || seen[2] != 2 {
			t.Fatalf("round robin over fresh answers picked %v", seen)
		}
		c, pe, err := pu.Dial(ctx, []byte("echo"))
		if err != nil {
			t.Fatalf("Dial: %v", err)
		}
		c.Close()
		if pe.ID != 1 && pe.ID != 2 {
			t.Fatalf("dialled PE %d", pe.ID)
		}
		if got := p.reg.resolutions(); got != 5 {
			t.Fatalf("Dial did not resolve: %d resolutions", got)
		}
	})
}

func (r *fakeRegistrar) reported() []uint32 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.unreachables)
}

// failover records what PUConfig.OnFailover was told.
type failover struct {
	pool string
	pe   uint32
	err  error
}

func recordFailovers(dst *[]failover) func(tlv.PoolHandle, tlv.PoolElement, error) {
	return func(h tlv.PoolHandle, pe tlv.PoolElement, err error) {
		*dst = append(*dst, failover{string(h), pe.ID, err})
	}
}

// RFC 5352 §3.5: Dial reports each PE it cannot reach with
// ASAP_ENDPOINT_UNREACHABLE and fails over; OnFailover sees every such PE
// with its dial error, on the goroutine that called Dial.
func TestPoolUserDialFailoverObserver(t *testing.T) {
	leakcheck.Check(t)
	synctest.Test(t, func(t *testing.T) {
		p := newPUNet(t, 3)
		defer p.close()
		p.ls[0].Close() // PEs 1 and 2 refuse associations
		p.ls[1].Close()
		var got []failover
		pu := p.newPU(t, func(c *PUConfig) { c.OnFailover = recordFailovers(&got) })
		defer pu.Close()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		c, pe, err := pu.Dial(ctx, []byte("echo"))
		if err != nil {
			t.Fatalf("Dial: %v", err)
		}
		c.Close()
		if pe.ID != 3 {
			t.Fatalf("dialled PE %d, want the live PE 3", pe.ID)
		}
		if len(got) != 2 {
			t.Fatalf("OnFailover told %+v, want PEs 1 and 2", got)
		}
		ids := []uint32{got[0].pe, got[1].pe}
		slices.Sort(ids)
		for i, f := range got {
			if f.pool != "echo" || !errors.Is(f.err, memnet.ErrRefused) {
				t.Errorf("failover %d: %+v, want pool echo and memnet.ErrRefused", i, f)
			}
		}
		if !slices.Equal(ids, []uint32{1, 2}) {
			t.Fatalf("failovers for PEs %v, want [1 2]", ids)
		}
		synctest.Wait()
		if r := p.reg.reported(); len(r) != 2 {
			t.Fatalf("registrar got unreachable reports %v, want 2", r)
		}
	})
}

// When every PE fails, Dial's error is a *DialError that counts the PEs
// tried and wraps the last dial error (errors.Is sees memnet.ErrRefused
// and ErrNoPoolElement). MaxFailover bounds the PEs tried.
func TestPoolUserDialAllFail(t *testing.T) {
	leakcheck.Check(t)
	synctest.Test(t, func(t *testing.T) {
		p := newPUNet(t, 3)
		defer p.close()
		for _, l := range p.ls {
			l.Close()
		}
		var got []failover
		pu := p.newPU(t, func(c *PUConfig) { c.MaxFailover = 2; c.OnFailover = recordFailovers(&got) })
		defer pu.Close()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_, _, err := pu.Dial(ctx, []byte("echo"))
		var de *DialError
		if !errors.As(err, &de) {
			t.Fatalf("Dial: %v (%T), want *DialError", err, err)
		}
		if de.Tried != 2 || len(got) != 2 || !errors.Is(err, memnet.ErrRefused) || !errors.Is(err, ErrNoPoolElement) {
			t.Fatalf("Dial: %v; tried %d, %d failovers", err, de.Tried, len(got))
		}
		if string(de.Pool) != "echo" || !strings.Contains(err.Error(), "2 PEs tried") {
			t.Fatalf("error text %q", err)
		}

		// Without the bound, Dial runs out of PEs: the last one fails, the
		// registrar (which drops reported PEs) no longer knows the pool.
		// The reports of the first Dial leave its writer after Dial
		// returns: let them reach the registrar first.
		synctest.Wait()
		pu2 := p.newPU(t, nil)
		defer pu2.Close()
		_, _, err = pu2.Dial(ctx, []byte("echo"))
		if !errors.As(err, &de) || de.Tried != 1 || !errors.Is(err, ErrUnknownPool) || !errors.Is(err, memnet.ErrRefused) {
			t.Fatalf("Dial with one PE left: %v", err)
		}
	})
}

// With the cache disabled each failover resolves again, and a registrar
// that has not yet reached MAX-BAD-PE-REPORT still returns
// the dead PEs: one Dial must try each PE once, not the same ones until
// MaxFailover runs out.
func TestPoolUserDialNeverRetriesAPE(t *testing.T) {
	leakcheck.Check(t)
	synctest.Test(t, func(t *testing.T) {
		p := newPUNet(t, 2)
		defer p.close()
		p.reg.mu.Lock()
		p.reg.keepReported = true
		p.reg.mu.Unlock()
		for _, l := range p.ls {
			l.Close()
		}
		var got []failover
		pu := p.newPU(t, func(c *PUConfig) { c.StaleCache = -1; c.OnFailover = recordFailovers(&got) })
		defer pu.Close()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_, _, err := pu.Dial(ctx, []byte("echo"))
		var de *DialError
		if !errors.As(err, &de) || de.Tried != 2 || !errors.Is(err, ErrNoPoolElement) {
			t.Fatalf("Dial: %v, want a *DialError after 2 PEs", err)
		}
		if len(got) != 2 || got[0].pe == got[1].pe {
			t.Fatalf("failovers %+v, want each PE once", got)
		}
	})
}

// RFC 5352 §3.5: a PE the host finds dead after a successful Dial is
// reported with PoolUser.ReportUnreachable: the registrar gets an
// ASAP_ENDPOINT_UNREACHABLE and the PU stops selecting it from its cache,
// even while the registrar still lists it.
func TestPoolUserReportUnreachable(t *testing.T) {
	leakcheck.Check(t)
	synctest.Test(t, func(t *testing.T) {
		p := newPUNet(t, 2)
		defer p.close()
		p.reg.mu.Lock()
		p.reg.keepReported = true
		p.reg.mu.Unlock()
		pu := p.newPU(t, nil)
		defer pu.Close()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		c, dead, err := pu.Dial(ctx, []byte("echo"))
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
		if err := pu.ReportUnreachable(ctx, []byte("echo"), dead.ID); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if r := p.reg.reported(); !slices.Equal(r, []uint32{dead.ID}) {
			t.Fatalf("registrar got reports %v, want [%d]", r, dead.ID)
		}
		for range 4 {
			c, pe, err := pu.Dial(ctx, []byte("echo"))
			if err != nil {
				t.Fatal(err)
			}
			c.Close()
			if pe.ID == dead.ID {
				t.Fatalf("dialled reported PE %d again", pe.ID)
			}
		}
		pu.Close()
		if err := pu.ReportUnreachable(ctx, []byte("echo"), 1); !errors.Is(err, ErrClosed) {
			t.Fatalf("ReportUnreachable after Close: %v", err)
		}
	})
}
