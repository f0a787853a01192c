package enrp

import (
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/go-rserpool/rserpool/tlv"
	"github.com/go-rserpool/rserpool/transport"
	"github.com/go-rserpool/rserpool/transport/memnet"
)

// eventRig is a registrar over memnet whose events go to a channel; it
// must be built inside a synctest bubble.
type eventRig struct {
	t      *testing.T
	net    *memnet.Network
	r      *Registrar
	events chan Event
	done   chan error
}

// newEventRig starts a registrar with an events channel of size buf and
// the keep-alive timers ka (interval and timeout); tune changes the rest.
func newEventRig(t *testing.T, buf int, ka time.Duration, tune func(*Config)) *eventRig {
	t.Helper()
	net := memnet.New(1)
	t.Cleanup(func() { net.Close() })
	nd := net.NewNode()
	g := &eventRig{t: t, net: net, events: make(chan Event, buf), done: make(chan error, 1)}
	cfg := Config{
		Transport: nd, ListenAddr: nd.Addr(transport.PortASAP),
		ASAP:   ASAPConfig{KeepAliveInterval: ka, KeepAliveTimeout: ka},
		Events: g.events, Logger: testLogger(t),
	}
	if tune != nil {
		tune(&cfg)
	}
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	g.r = r
	go func() { g.done <- r.Run(t.Context()) }()
	t.Cleanup(g.stop)
	return g
}

// stop closes the registrar and checks Run's result (idempotent).
func (g *eventRig) stop() {
	if g.done == nil {
		return
	}
	g.r.Close()
	if err := <-g.done; err != nil {
		g.t.Errorf("Run: %v", err)
	}
	g.done = nil
}

// next returns the next event, waiting (in virtual time) for at most an
// hour.
func (g *eventRig) next() Event {
	g.t.Helper()
	select {
	case ev := <-g.events:
		return ev
	case <-time.After(time.Hour):
		g.t.Fatal("no event within an hour")
		return Event{}
	}
}

// none checks that no event is pending once every goroutine of the
// bubble is idle.
func (g *eventRig) none() {
	g.t.Helper()
	synctest.Wait()
	select {
	case ev := <-g.events:
		g.t.Fatalf("unexpected event %v", ev)
	default:
	}
}

// register registers PE id in pool over c, with user transport port
// port, and waits for the answer.
func (g *eventRig) register(c *client, pool string, id uint32, life time.Duration, port uint16) {
	g.t.Helper()
	m := c.registration(pool, id, life)
	m.PE.UserTransport.Port = port
	c.send(g.t.Context(), m)
	if resp := recvAs[*tlv.RegistrationResponse](c, g.t.Context()); resp.Reject {
		g.t.Fatalf("registration of %08x refused: %+v", id, resp)
	}
}

// want checks the kind, PE and reason of ev.
func want(t *testing.T, ev Event, kind EventKind, pool string, id uint32, why RemoveReason) {
	t.Helper()
	if ev.Kind != kind || string(ev.PoolHandle) != pool || ev.PEID != id || ev.Reason != why {
		t.Fatalf("event %v (kind %v, pool %q, PE %08x, reason %v), want %v of PE %08x in %q (reason %v)",
			ev, ev.Kind, ev.PoolHandle, ev.PEID, ev.Reason, kind, id, pool, why)
	}
	if kind == EventRemoved && ev.PE.ID != 0 {
		t.Errorf("removal event carries PE %+v, want the zero PE", ev.PE)
	}
}

// RFC 5352 §3.2 and §3.4: a registration, a re-registration that changes
// the user transport, and a deregistration are told in that order; the
// first two carry the PE as stored (home server ID set by the registrar,
// §3.2), the last the reason.
func TestEventsRegisterUpdateDeregister(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := newEventRig(t, 16, time.Hour, nil)
		ctx := t.Context()
		pe := dial(t, ctx, g.net.NewNode(), g.r.Addr())
		start := time.Now()

		g.register(pe, "echo", 1, time.Minute, 7000)
		// The event is on the channel before the answer left (Config.Events).
		var ev Event
		select {
		case ev = <-g.events:
		default:
			t.Fatal("no event when the registration response arrived")
		}
		want(t, ev, EventRegistered, "echo", 1, 0)
		if ev.PE.ID != 1 || ev.PE.HomeServerID != g.r.ServerID() || ev.PE.UserTransport.Port != 7000 || ev.PE.RegistrationLife != 60000 {
			t.Errorf("registered PE %+v", ev.PE)
		}
		if ev.Time.Before(start) || ev.Time.After(time.Now()) {
			t.Errorf("event time %v outside [%v, %v]", ev.Time, start, time.Now())
		}
		if s := g.r.Stats(); s.PEs != 1 || s.ASAP.Registrations != 1 {
			t.Errorf("Stats with the event: %+v", s)
		}

		time.Sleep(time.Second) // virtual: the update comes later
		g.register(pe, "echo", 1, 2*time.Minute, 7001)
		up := g.next()
		want(t, up, EventUpdated, "echo", 1, 0)
		if up.PE.UserTransport.Port != 7001 || up.PE.RegistrationLife != 120000 || !up.Time.Equal(ev.Time.Add(time.Second)) {
			t.Errorf("update %+v at %v, want port 7001, life 120000 at %v", up.PE, up.Time, ev.Time.Add(time.Second))
		}
		// The copy is the host's: the registrar does not share it.
		up.PE.UserTransport.Addrs[0] = up.PE.UserTransport.Addrs[0].Next()
		if pes, err := g.r.PoolElements(ctx, []byte("echo")); err != nil || pes[0].PE.UserTransport.Addrs[0] == up.PE.UserTransport.Addrs[0] {
			t.Errorf("changing the event's PE changed the store: %+v, %v", pes, err)
		}

		pe.send(ctx, &tlv.Deregistration{PoolHandle: tlv.PoolHandle("echo"), PEID: 1})
		if dr := recvAs[*tlv.DeregistrationResponse](pe, ctx); dr.Error != nil {
			t.Fatalf("deregistration: %+v", dr)
		}
		want(t, g.next(), EventRemoved, "echo", 1, RemovedDeregistered)
		g.none()
		// A refused registration (Invalid Values: life 0 is not
		// allowed, RFC 5352 §3.2) changes nothing and is not told.
		bad := pe.registration("echo", 2, time.Minute)
		bad.PE.RegistrationLife = -1
		pe.send(ctx, bad)
		if resp := recvAs[*tlv.RegistrationResponse](pe, ctx); !resp.Reject {
			t.Fatalf("bad registration accepted: %+v", resp)
		}
		g.none()
	})
}

// RFC 5352 §3.7: a PE that does not answer an ASAP_ENDPOINT_KEEP_ALIVE
// within the timeout is removed, exactly interval + timeout after its
// registration when it was otherwise silent.
func TestEventsKeepAliveTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const ka = 2 * time.Second
		g := newEventRig(t, 16, ka, nil)
		ctx := t.Context()
		pe := dial(t, ctx, g.net.NewNode(), g.r.Addr())
		g.register(pe, "echo", 7, time.Hour, 7000)
		reg := g.next()
		want(t, reg, EventRegistered, "echo", 7, 0)
		recvAs[*tlv.EndpointKeepAlive](pe, ctx) // not answered
		ev := g.next()
		want(t, ev, EventRemoved, "echo", 7, RemovedKeepAliveTimeout)
		if at := reg.Time.Add(2 * ka); !ev.Time.Equal(at) {
			t.Errorf("removed at %v, want %v (keep-alive interval + timeout after registering)", ev.Time, at)
		}
		if s := g.r.Stats(); s.PEs != 0 || s.ASAP.KeepAliveTimeouts != 1 {
			t.Errorf("Stats: %+v", s)
		}
		g.none()
	})
}

// RFC 5352 §3.7: the loss of a PE's association removes every PE
// registered over it, at once; those of other associations stay.
func TestEventsAssociationLost(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := newEventRig(t, 16, time.Hour, nil)
		ctx := t.Context()
		pe := dial(t, ctx, g.net.NewNode(), g.r.Addr())
		other := dial(t, ctx, g.net.NewNode(), g.r.Addr())
		g.register(pe, "echo", 1, time.Hour, 7000)
		g.register(pe, "echo", 2, time.Hour, 7000)
		g.register(other, "echo", 3, time.Hour, 7000)
		for _, id := range []uint32{1, 2, 3} {
			want(t, g.next(), EventRegistered, "echo", id, 0)
		}
		pe.c.Close()
		a, b := g.next(), g.next()
		if a.PEID > b.PEID { // an association's PEs go in no set order
			a, b = b, a
		}
		want(t, a, EventRemoved, "echo", 1, RemovedAssocLost)
		want(t, b, EventRemoved, "echo", 2, RemovedAssocLost)
		if !a.Time.Equal(b.Time) {
			t.Errorf("removed at %v and %v, want together", a.Time, b.Time)
		}
		g.none()
		if s := g.r.Stats(); s.PEs != 1 || s.ASAP.AssocLostRemoved != 2 {
			t.Errorf("Stats: %+v", s)
		}
	})
}

// RFC 5352 §3.5: after MAX-BAD-PE-REPORT ASAP_ENDPOINT_UNREACHABLE
// reports from distinct associations the registrar checks the PE with a
// keep-alive, and removes it when no ack comes within KeepAliveTimeout;
// not before.
func TestEventsUnreachableReports(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const maxBad = 3
		const ka = time.Minute
		g := newEventRig(t, 16, ka, func(c *Config) { c.ASAP.MaxBadPEReport = maxBad })
		ctx := t.Context()
		pe := dial(t, ctx, g.net.NewNode(), g.r.Addr())
		g.register(pe, "echo", 9, time.Hour, 7000)
		want(t, g.next(), EventRegistered, "echo", 9, 0)
		start := time.Now()
		for i := 1; i <= maxBad; i++ {
			pu := dial(t, ctx, g.net.NewNode(), g.r.Addr())
			pu.send(ctx, &tlv.EndpointUnreachable{PoolHandle: tlv.PoolHandle("echo"), PEID: 9})
			g.none()
		}
		// The PE does not answer the check.
		ev := g.next()
		want(t, ev, EventRemoved, "echo", 9, RemovedUnreachable)
		if at := start.Add(ka); !ev.Time.Equal(at) {
			t.Errorf("removed at %v, want %v (KeepAliveTimeout after the third report)", ev.Time, at)
		}
		g.none()
		if s := g.r.Stats(); s.PEs != 0 || s.ASAP.UnreachableRemoved != 1 || s.ASAP.UnreachableReports != maxBad || s.ASAP.UnreachableChecks != 1 {
			t.Errorf("Stats: %+v", s)
		}
	})
}

// RFC 5352 §3.2: a PE that does not re-register within its registration
// life is removed when it runs out, even while it answers keep-alives.
func TestEventsExpiry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const life = 5 * time.Second
		g := newEventRig(t, 16, 2*time.Second, nil)
		ctx := t.Context()
		pe := dial(t, ctx, g.net.NewNode(), g.r.Addr())
		g.register(pe, "echo", 4, life, 7000)
		reg := g.next()
		want(t, reg, EventRegistered, "echo", 4, 0)
		// Answer the keep-alives (one every 2 s) until the PE is gone.
		acked := make(chan struct{})
		go func() {
			defer close(acked)
			for {
				m, err := pe.recvWithin(ctx, time.Hour)
				if err != nil {
					return
				}
				if ka, ok := m.(*tlv.EndpointKeepAlive); ok {
					pe.send(ctx, &tlv.EndpointKeepAliveAck{PoolHandle: ka.PoolHandle, PEID: ka.PEID})
				}
			}
		}()
		ev := g.next()
		want(t, ev, EventRemoved, "echo", 4, RemovedExpired)
		if at := reg.Time.Add(life); !ev.Time.Equal(at) {
			t.Errorf("expired at %v, want %v (registration life after registering)", ev.Time, at)
		}
		if s := g.r.Stats(); s.ASAP.Expired != 1 || s.ASAP.KeepAliveTimeouts != 0 || s.ASAP.KeepAlivesSent != 2 {
			t.Errorf("Stats: %+v", s)
		}
		pe.c.Close()
		<-acked
		g.none()
	})
}

// When Run ends, the PEs of the associations it closes are removed as on
// any association loss (RFC 5352 §3.7), and told before Run returns.
func TestEventsShutdown(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := newEventRig(t, 16, time.Hour, nil)
		ctx := t.Context()
		pe := dial(t, ctx, g.net.NewNode(), g.r.Addr())
		g.register(pe, "echo", 5, time.Hour, 7000)
		want(t, g.next(), EventRegistered, "echo", 5, 0)
		g.stop()
		select {
		case ev := <-g.events:
			want(t, ev, EventRemoved, "echo", 5, RemovedAssocLost)
		default:
			t.Fatal("no event for the PE removed at shutdown")
		}
		g.none()
	})
}

// A host that does not read its events cannot stall the registrar: the
// events beyond the channel's buffer are dropped and counted, the
// registrar keeps answering, and those that fitted come in order.
func TestEventsSlowHostDoesNotStall(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const buf, n = 2, 10
		g := newEventRig(t, buf, time.Hour, nil)
		ctx := t.Context()
		pe := dial(t, ctx, g.net.NewNode(), g.r.Addr())
		for id := uint32(1); id <= n; id++ {
			g.register(pe, "echo", id, time.Hour, 7000) // each one answered
		}
		pu := dial(t, ctx, g.net.NewNode(), g.r.Addr())
		pu.send(ctx, &tlv.HandleResolution{PoolHandle: tlv.PoolHandle("echo")})
		if hr := recvAs[*tlv.HandleResolutionResponse](pu, ctx); hr.Error != nil || len(hr.PEs) == 0 {
			t.Fatalf("resolution while the host does not read: %+v", hr)
		}
		if s := g.r.Stats(); s.PEs != n || s.EventsDropped != n-buf {
			t.Fatalf("Stats: %d PEs, %d events dropped; want %d and %d", s.PEs, s.EventsDropped, n, n-buf)
		}
		var got []uint32
		for range buf {
			ev := g.next()
			want(t, ev, EventRegistered, "echo", ev.PEID, 0)
			got = append(got, ev.PEID)
		}
		if !slices.Equal(got, []uint32{1, 2}) {
			t.Errorf("kept events for PEs %v, want the first %d in order", got, buf)
		}
		g.none()
		// With room again, the next change is told.
		pe.send(ctx, &tlv.Deregistration{PoolHandle: tlv.PoolHandle("echo"), PEID: 1})
		recvAs[*tlv.DeregistrationResponse](pe, ctx)
		want(t, g.next(), EventRemoved, "echo", 1, RemovedDeregistered)
		if d := g.r.Stats().EventsDropped; d != n-buf {
			t.Errorf("EventsDropped %d, want %d", d, n-buf)
		}
	})
}

// Without Config.Events nothing is sent and nothing is counted.
func TestEventsDisabled(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := newEventRig(t, 0, time.Hour, func(c *Config) { c.Events = nil })
		pe := dial(t, t.Context(), g.net.NewNode(), g.r.Addr())
		g.register(pe, "echo", 1, time.Hour, 7000)
		if s := g.r.Stats(); s.PEs != 1 || s.EventsDropped != 0 {
			t.Errorf("Stats: %+v", s)
		}
	})
}

func TestEventString(t *testing.T) {
	for _, c := range []struct {
		ev   Event
		want string
	}{
		{Event{Kind: EventRegistered, PoolHandle: tlv.PoolHandle("echo"), PEID: 0x2a}, `PE 0x0000002a of pool "echo" registered`},
		{Event{Kind: EventUpdated, PoolHandle: tlv.PoolHandle("echo"), PEID: 1}, `PE 0x00000001 of pool "echo" updated`},
		{Event{Kind: EventRemoved, PoolHandle: tlv.PoolHandle("e\x00"), PEID: 1, Reason: RemovedKeepAliveTimeout}, `PE 0x00000001 of pool "0x6500" removed: keep-alive timeout`},
		{Event{Kind: 9, PEID: 1}, `PE 0x00000001 of pool "" EventKind(9)`},
	} {
		if got := c.ev.String(); got != c.want {
			t.Errorf("String() = %s, want %s", got, c.want)
		}
	}
}
