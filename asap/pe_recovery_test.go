package asap

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/go-rserpool/rserpool/internal/leakcheck"
	"github.com/go-rserpool/rserpool/policy"
	"github.com/go-rserpool/rserpool/tlv"
	"github.com/go-rserpool/rserpool/transport"
	"github.com/go-rserpool/rserpool/transport/memnet"
)

// RFC 5352 §3.1, RFC 5354 §3.12, RFC 5355: a re-registration refused for a
// transient cause (an attacker holds the PE's identifier, 0x4, or
// re-created its pool with another policy, 0x5, ...) does not end the PE:
// it registers again after an exponential, jittered back-off from
// RefusedRetry (1 s) capped at RefusedRetryMax (10 s), and is registered
// again once the registrar accepts. (Before: the core gave up for good
// after the first refusal; 0 registrations in the next 10 minutes.)
func TestPERefusedTransientRetries(t *testing.T) {
	for _, code := range []tlv.CauseCode{
		tlv.CauseUnspecified, tlv.CauseNonUniquePEIdentifier, tlv.CauseInconsistentPoolingPolicy,
		tlv.CauseLackOfResources, tlv.CauseInconsistentTransportType,
		tlv.CauseInconsistentDataControlConfig, tlv.CauseUnknownPoolHandle, 0x77,
	} {
		t.Run(code.String(), func(t *testing.T) {
			c := newPE(t, nil)
			home := registerPE(t, c, t0)
			now := c.NextDeadline() // T4: re-registration
			c.HandleTimeout(now)
			if regs, _ := sent[*tlv.Registration](t, c.Outbox()); len(regs) != 1 {
				t.Fatal("no re-registration at T4")
			}
			for n := 1; n <= 6; n++ {
				c.Handle(now, home, wire(t, &tlv.RegistrationResponse{Reject: true, PoolHandle: []byte("echo"), PEID: c.ID(),
					Error: &tlv.OperationError{Causes: []tlv.Cause{{Code: code}}}}))
				f := only[RegistrationFailed](c.Outbox())
				var re *RejectError
				if len(f) != 1 || !errors.As(f[0].Err, &re) || re.Code() != code || !re.Transient() {
					t.Fatalf("refusal %d: want a transient RejectError with %v, got %v", n, code, f)
				}
				if c.Registered() {
					t.Fatal("still registered after a refusal")
				}
				d := min(DefaultRefusedRetryMax, DefaultRefusedRetry<<(n-1))
				if wait := f[0].Retry.Sub(now); wait < d/2 || wait > d {
					t.Fatalf("refusal %d: retry in %v, want %v..%v", n, wait, d/2, d)
				}
				if got := c.NextDeadline(); !got.Equal(f[0].Retry) {
					t.Fatalf("next deadline %v, want the retry at %v", got, f[0].Retry)
				}
				c.Register(now) // the host asking again does not undo the back-off
				c.HandleTimeout(f[0].Retry.Add(-time.Nanosecond))
				if len(c.Outbox()) != 0 {
					t.Fatal("retried before the back-off ended")
				}
				now = f[0].Retry
				c.HandleTimeout(now)
				regs, as := sent[*tlv.Registration](t, c.Outbox())
				if len(regs) != 1 || as[0] != home || regs[0].PE.ID != c.ID() {
					t.Fatalf("refusal %d: no retry on the home: %v on %v", n, regs, as)
				}
			}
			c.Handle(now, home, wire(t, &tlv.RegistrationResponse{PoolHandle: []byte("echo"), PEID: c.ID()}))
			if r := only[Registered](c.Outbox()); len(r) != 1 || r[0].Renewal || !c.Registered() {
				t.Fatalf("not registered again: %v", r)
			}
			// The back-off starts over after a success.
			c.HandleTimeout(c.NextDeadline())
			c.Outbox()
			c.Handle(now, home, wire(t, &tlv.RegistrationResponse{Reject: true, PoolHandle: []byte("echo"), PEID: c.ID(),
				Error: &tlv.OperationError{Causes: []tlv.Cause{{Code: code}}}}))
			if f := only[RegistrationFailed](c.Outbox()); len(f) != 1 || f[0].Retry.Sub(now) > DefaultRefusedRetry {
				t.Fatalf("back-off not reset by the success: %v", f)
			}
		})
	}
}

// RFC 5354 §2: an ASAP_ERROR that reports a parameter the registrar
// skipped (Unrecognized Parameter for a type whose action bits are 11,
// "skip and report") is not a refusal: the registrar went on with the
// registration. (Before: the PE took it for a rejection and gave up.)
func TestPEASAPErrorSkippedParameterIsNoRefusal(t *testing.T) {
	c := newPE(t, nil)
	c.Register(t0)
	conn := oneConnect(t, c.Outbox())
	c.HandleConnected(t0, conn.Assoc)
	c.Outbox()
	c.Handle(t0, conn.Assoc, wire(t, &tlv.ASAPError{Error: tlv.OperationError{Causes: []tlv.Cause{
		{Code: tlv.CauseUnrecognizedParameter, Info: []byte{0xc0, 0x99, 0, 4}}}}}))
	if f := only[RegistrationFailed](c.Outbox()); len(f) != 0 {
		t.Fatalf("skip-and-report error taken for a refusal: %v", f)
	}
	c.Handle(t0, conn.Assoc, wire(t, &tlv.RegistrationResponse{PoolHandle: []byte("echo"), PEID: c.ID()}))
	if !c.Registered() {
		t.Fatal("the registration's response was not taken")
	}
	// Any other ASAP_ERROR while a registration is outstanding refuses it,
	// transient or final by its cause.
	c.HandleTimeout(c.NextDeadline())
	c.Outbox()
	c.Handle(t0, conn.Assoc, wire(t, &tlv.ASAPError{Error: tlv.OperationError{Causes: []tlv.Cause{{Code: tlv.CauseLackOfResources}}}}))
	if f := only[RegistrationFailed](c.Outbox()); len(f) != 1 || f[0].Retry.IsZero() {
		t.Fatalf("Lack of Resources ASAP_ERROR: %v", f)
	}
}

// RFC 5352 §3.6: losing the home association ends the registration at
// once (Registered false, a RegistrationLost output) and the PE registers
// with the registrar the hunt finds as soon as the association is up.
// (Before: Registered stayed true.)
func TestPEHomeLostEndsRegistration(t *testing.T) {
	c := newPE(t, func(cfg *PEConfig) { cfg.Registrars = []transport.Addr{regA, regB} })
	home := registerPE(t, c, t0)
	now := t0.Add(time.Minute)
	c.HandleLost(now, home)
	outs := c.Outbox()
	if l := only[RegistrationLost](outs); len(l) != 1 || !errors.Is(l[0].Err, ErrHomeLost) {
		t.Fatalf("want RegistrationLost(ErrHomeLost), got %v", outs)
	}
	if c.Registered() {
		t.Fatal("Registered() true without a home")
	}
	cs := only[Connect](outs)
	if len(cs) == 0 {
		t.Fatal("the hunt does not dial at once")
	}
	c.HandleConnected(now, cs[0].Assoc)
	regs, as := sent[*tlv.Registration](t, c.Outbox())
	if len(regs) != 1 || as[0] != cs[0].Assoc {
		t.Fatalf("no registration on the new home: %v", regs)
	}
	c.Handle(now, cs[0].Assoc, wire(t, &tlv.RegistrationResponse{PoolHandle: []byte("echo"), PEID: c.ID()}))
	if r := only[Registered](c.Outbox()); len(r) != 1 || r[0].Renewal || !c.Registered() {
		t.Fatalf("not registered with the new home: %v", r)
	}
}

// nextEvent reads the next PE event, failing the test after a minute of
// (virtual) time.
func nextEvent(t *testing.T, ch <-chan PEEvent) PEEvent {
	t.Helper()
	select {
	case ev := <-ch:
		t.Logf("event at %v: %v", ev.Time.Format("15:04:05.000"), ev)
		return ev
	case <-time.After(time.Minute):
		t.Fatal("no PE event within a minute")
		return PEEvent{}
	}
}

// RFC 5355 §3.2 / RFC 5352 §3.1 over memnet: a registered PE whose
// re-registration is refused with Inconsistent Pooling Policy (0x5: an
// attacker re-created its pool with another policy) tells its host, keeps
// retrying with back-off, and is registered again within
// RefusedRetryMax after the attacker's binding expired. The events come
// in order: registered, refused (retrying)..., registered.
func TestDriverPERefusedThenRegisteredAgain(t *testing.T) {
	leakcheck.Check(t)
	synctest.Test(t, func(t *testing.T) {
		n := memnet.New(4)
		defer n.Close()
		regNode, peNode := n.NewNode(), n.NewNode()
		regL, err := regNode.Listen(regNode.Addr(transport.PortASAP))
		if err != nil {
			t.Fatal(err)
		}
		reg := startFakeRegistrar(t, regL, 0xabc)
		defer reg.close()
		events := make(chan PEEvent, 32)
		ut, _ := TransportParam(peNode.Addr(7000), tlv.TransportUseDataOnly)
		pe, err := NewPoolElement(PEConfig{PoolHandle: []byte("echo"), UserTransport: ut, PEID: 7, Policy: policy.LeastUsed,
			Registrars: []transport.Addr{regL.Addr()}, Events: events, Logger: testLogger(t)}, peNode)
		if err != nil {
			t.Fatal(err)
		}
		defer pe.Close()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := pe.Register(ctx); err != nil {
			t.Fatal(err)
		}
		if ev := nextEvent(t, events); ev.Kind != PEEventHomeChanged {
			t.Fatalf("first event %v, want home changed", ev)
		}
		if ev := nextEvent(t, events); ev.Kind != PEEventRegistered {
			t.Fatalf("event %v, want registered", ev)
		}

		expiry := time.Now().Add(5 * time.Second) // the attacker's binding
		reg.mu.Lock()
		reg.refuseUntil, reg.refuseCode = expiry, tlv.CauseInconsistentPoolingPolicy
		reg.mu.Unlock()
		if err := pe.UpdatePolicy(ctx, policy.Values{Load: 3}); err != nil { // re-registers at once
			t.Fatal(err)
		}
		refusals := 0
		for {
			ev := nextEvent(t, events)
			if ev.Kind == PEEventRegistered {
				break
			}
			var re *RejectError
			if ev.Kind != PEEventRefused || !errors.As(ev.Err, &re) || re.Code() != tlv.CauseInconsistentPoolingPolicy || ev.Retry.IsZero() {
				t.Fatalf("event %v, want a transient refusal (0x5) with a retry", ev)
			}
			refusals++
		}
		late := time.Since(expiry)
		t.Logf("registered again %v after the binding expired, after %d refusals", late, refusals)
		if refusals == 0 || late > DefaultRefusedRetryMax {
			t.Fatalf("registered again %v after the binding expired (%d refusals), want within %v", late, refusals, DefaultRefusedRetryMax)
		}
		if !pe.Registered() {
			t.Fatal("Registered() false after the registered event")
		}
		if d := pe.EventsDropped(); d != 0 {
			t.Fatalf("%d events dropped", d)
		}
		pe.Close()
	})
}

// RFC 5352 §3.6 over memnet: when the home registrar dies (its
// associations abort), the PE is unregistered at once (Registered false,
// a lost event) and, once a registrar listens again, registers within
// one backed-off hunt round (T5ServerHuntMax), not at T4 (4 min 40 s).
func TestDriverPEHomeLostReregisters(t *testing.T) {
	leakcheck.Check(t)
	synctest.Test(t, func(t *testing.T) {
		n, regNode, reg, pe, events := peWithFakeRegistrar(t)
		defer n.Close()
		defer pe.Close()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := pe.Register(ctx); err != nil {
			t.Fatal(err)
		}
		nextEvent(t, events) // home changed
		nextEvent(t, events) // registered

		// The registrar dies.
		reg.l.Close()
		reg.dropAll()
		reg.close()
		if ev := nextEvent(t, events); ev.Kind != PEEventLost || !errors.Is(ev.Err, ErrHomeLost) {
			t.Fatalf("event %v, want registration lost", ev)
		}
		if pe.Registered() {
			t.Fatal("Registered() true after the home association was lost")
		}
		synctest.Wait()
		if pe.Registered() {
			t.Fatal("Registered() true with no registrar listening")
		}

		// A registrar comes back at the same address 3 s later.
		time.Sleep(3 * time.Second) // virtual time (synctest bubble): the hunt backs off
		regL2, err := regNode.Listen(regNode.Addr(transport.PortASAP))
		if err != nil {
			t.Fatal(err)
		}
		reg2 := startFakeRegistrar(t, regL2, 0xdef)
		defer reg2.close()
		back := time.Now()
		sawHome := false
		for {
			ev := nextEvent(t, events)
			if ev.Kind == PEEventRegistered {
				break
			}
			switch ev.Kind {
			case PEEventHomeChanged:
				sawHome = true
			case PEEventNoRegistrar:
			default:
				t.Fatalf("event %v while hunting", ev)
			}
		}
		took := time.Since(back)
		t.Logf("registered again %v after the registrar came back", took)
		if !sawHome || took > DefaultT5ServerHuntMax {
			t.Fatalf("registered again %v after the registrar came back (home changed seen: %v), want within %v", took, sawHome, DefaultT5ServerHuntMax)
		}
		if !pe.Registered() {
			t.Fatal("Registered() false after re-registration")
		}
		pe.Close()
	})
}

// peWithFakeRegistrar starts a fake registrar (server ID 0xabc) on its
// own memnet node and a PE (ID 7, pool "echo", Least Used) that knows it
// and sends its events on the returned channel. The caller closes the
// network and the PE.
func peWithFakeRegistrar(t *testing.T) (*memnet.Network, *memnet.Node, *fakeRegistrar, *PoolElement, chan PEEvent) {
	t.Helper()
	n := memnet.New(5)
	regNode, peNode := n.NewNode(), n.NewNode()
	regL, err := regNode.Listen(regNode.Addr(transport.PortASAP))
	if err != nil {
		t.Fatal(err)
	}
	reg := startFakeRegistrar(t, regL, 0xabc)
	events := make(chan PEEvent, 64)
	ut, _ := TransportParam(peNode.Addr(7000), tlv.TransportUseDataOnly)
	pe, err := NewPoolElement(PEConfig{PoolHandle: []byte("echo"), UserTransport: ut, PEID: 7, Policy: policy.LeastUsed,
		Registrars: []transport.Addr{regL.Addr()}, Events: events, Logger: testLogger(t)}, peNode)
	if err != nil {
		t.Fatal(err)
	}
	return n, regNode, reg, pe, events
}
