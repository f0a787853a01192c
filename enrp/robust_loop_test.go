package enrp

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/go-rserpool/rserpool/asap"
	"github.com/go-rserpool/rserpool/internal/leakcheck"
	"github.com/go-rserpool/rserpool/tlv"
	"github.com/go-rserpool/rserpool/transport"
	"github.com/go-rserpool/rserpool/transport/memnet"
)

// floodThenClose opens assocs associations to r, sends each one's
// messages (built by msg) without reading the answers, all associations
// at once, and closes each association as soon as its messages are out.
func floodThenClose(t *testing.T, ctx context.Context, net *memnet.Network, r *Registrar, assocs, perAssoc int, msg func(c *client, a, i int) tlv.ASAPMessage) {
	t.Helper()
	cs := make([]*client, assocs)
	for a := range cs {
		cs[a] = dial(t, ctx, net.NewNode(), r.Addr())
	}
	var wg sync.WaitGroup
	for a, c := range cs {
		wg.Go(func() {
			for i := range perAssoc {
				b, err := tlv.Marshal(msg(c, a, i))
				if err != nil {
					t.Error(err)
					return
				}
				if err := c.c.Send(ctx, transport.Message{PPID: transport.PPIDASAP, Data: b}); err != nil {
					t.Errorf("flood: %v", err)
					return
				}
			}
			c.c.Close()
		})
	}
	wg.Wait()
}

// stillServes checks, within a bound, that r registers a new PE and
// resolves its pool for a new PU.
func stillServes(t *testing.T, ctx context.Context, net *memnet.Network, r *Registrar) {
	t.Helper()
	const bound = 10 * time.Second
	pe := dial(t, ctx, net.NewNode(), r.Addr())
	pe.send(ctx, pe.registration("after", 42, time.Minute))
	m, err := pe.recvWithin(ctx, bound)
	if err != nil {
		t.Fatalf("registration after the flood not answered within %v: %v (registrar loop stuck)", bound, err)
	}
	if resp, ok := m.(*tlv.RegistrationResponse); !ok || resp.Reject {
		t.Fatalf("registration after the flood: %T %+v", m, m)
	}
	pu := dial(t, ctx, net.NewNode(), r.Addr())
	pu.send(ctx, &tlv.HandleResolution{PoolHandle: tlv.PoolHandle("after")})
	m, err = pu.recvWithin(ctx, bound)
	if err != nil {
		t.Fatalf("resolution after the flood not answered within %v: %v", bound, err)
	}
	if hr, ok := m.(*tlv.HandleResolutionResponse); !ok || len(hr.PEs) != 1 || hr.PEs[0].ID != 42 {
		t.Fatalf("resolution after the flood: %T %+v", m, m)
	}
}

// runFloodRig starts a registrar on memnet without rate limits, for the
// flood tests; real time, not a synctest bubble: a deadlocked loop blocks
// on a lock, which a bubble does not count as durably blocked, so a
// deadlock would hang the bubble instead of failing the bounded wait.
func runFloodRig(t *testing.T) (context.Context, *memnet.Network, *Registrar) {
	leakcheck.Check(t)
	ctx := t.Context()
	net := memnet.New(1)
	t.Cleanup(func() { net.Close() })
	nd := net.NewNode()
	r, err := New(Config{
		Transport: nd, ListenAddr: nd.Addr(transport.PortASAP),
		AssocRate: asap.Unlimited, MaxPEsPerAssoc: asap.Unlimited,
	})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- r.Run(context.Background()) }()
	t.Cleanup(func() {
		r.Close()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return ctx, net, r
}

// Issue 9, finding 1: associations that flood Handle Resolutions and
// close while the loop's queue is full must not deadlock the registrar
// (the loop's Close of a link whose Send failed used to wait for the
// link's failure report, itself waiting for room in the loop's queue).
func TestRegistrarFloodThenCloseNoDeadlock(t *testing.T) {
	ctx, net, r := runFloodRig(t)
	floodThenClose(t, ctx, net, r, 50, 400, func(*client, int, int) tlv.ASAPMessage {
		return &tlv.HandleResolution{PoolHandle: tlv.PoolHandle("echo")}
	})
	stillServes(t, ctx, net, r)
}

// Issue 9, finding 1, second recipe: many associations each registering
// many PEs, then closing (500 x 1,024 in the report, scaled down).
func TestRegistrarManyPEsThenCloseNoDeadlock(t *testing.T) {
	ctx, net, r := runFloodRig(t)
	floodThenClose(t, ctx, net, r, 200, 64, func(c *client, a, i int) tlv.ASAPMessage {
		return c.registration("pool", uint32(a<<16|i+1), time.Minute)
	})
	stillServes(t, ctx, net, r)
}
