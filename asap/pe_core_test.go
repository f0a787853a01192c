package asap

import (
	"errors"
	"testing"
	"time"

	"github.com/go-rserpool/rserpool/policy"
	"github.com/go-rserpool/rserpool/tlv"
	"github.com/go-rserpool/rserpool/transport"
)

var (
	regA = memAddr("10.0.0.1:3863")
	regB = memAddr("10.0.0.2:3863")
	peTr = tlv.Transport{Type: tlv.ParamSCTPTransport, Port: 7, Addrs: []netipAddr{mustAddr("10.0.1.1")}}
)

func newPE(t *testing.T, mod func(*PEConfig)) *PoolElementCore {
	t.Helper()
	cfg := PEConfig{
		PoolHandle:    []byte("echo"),
		UserTransport: peTr,
		Policy:        policy.LeastUsed,
		PolicyValues:  policy.Values{Load: 100},
		Registrars:    []transport.Addr{regA},
		Kind:          transport.KindMem,
		Rand:          seeded(),
		Logger:        testLogger(t),
	}
	if mod != nil {
		mod(&cfg)
	}
	c, err := NewPoolElementCore(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// registerPE takes a PE through server hunt and registration to the
// registered state; it returns the home association.
func registerPE(t *testing.T, c *PoolElementCore, now time.Time) AssocID {
	t.Helper()
	c.Register(now)
	conn := only[Connect](c.Outbox())[0]
	c.HandleConnected(now, conn.Assoc)
	regs, as := sent[*tlv.Registration](t, c.Outbox())
	if len(regs) != 1 || as[0] != conn.Assoc {
		t.Fatalf("want one registration on %d, got %v on %v", conn.Assoc, regs, as)
	}
	c.Handle(now, conn.Assoc, wire(t, &tlv.RegistrationResponse{PoolHandle: []byte("echo"), PEID: c.ID()}))
	if ev := only[Registered](c.Outbox()); len(ev) != 1 || ev[0].PEID != c.ID() {
		t.Fatalf("want Registered, got %v", ev)
	}
	return conn.Assoc
}

// RFC 5352 §3.1: the PE picks a random non-zero PE ID, finds a registrar
// (§3.6) and sends ASAP_REGISTRATION with its pool handle and Pool Element
// parameter; an accepting response makes it registered.
func TestPERegistrationSuccess(t *testing.T) {
	c := newPE(t, func(cfg *PEConfig) { cfg.RegistrationLife = 90 * time.Second })
	if c.ID() == 0 {
		t.Fatal("PE ID is 0")
	}
	c.Register(t0)
	conn := oneConnect(t, c.Outbox())
	if conn.Addr != regA {
		t.Fatalf("dialled %v, want %v", conn.Addr, regA)
	}
	c.HandleConnected(t0, conn.Assoc)
	outs := c.Outbox()
	if hc := only[HomeChanged](outs); len(hc) != 1 || hc[0].Assoc != conn.Assoc {
		t.Fatalf("want HomeChanged to %d, got %v", conn.Assoc, hc)
	}
	regs, _ := sent[*tlv.Registration](t, outs)
	if len(regs) != 1 {
		t.Fatalf("want 1 registration, got %d", len(regs))
	}
	r := regs[0]
	if string(r.PoolHandle) != "echo" || r.PE.ID != c.ID() || r.PE.RegistrationLife != 90000 {
		t.Fatalf("registration fields: %+v", r)
	}
	pt, v, err := policy.Decode(r.PE.Policy)
	if err != nil || pt != policy.LeastUsed || v.Load != 100 {
		t.Fatalf("policy %v %+v %v", pt, v, err)
	}
	if r.PE.UserTransport.Port != 7 || r.PE.UserTransport.Addrs[0] != mustAddr("10.0.1.1") {
		t.Fatalf("user transport %+v", r.PE.UserTransport)
	}
	if got := c.NextDeadline(); !got.Equal(t0.Add(DefaultT2Registration)) {
		t.Fatalf("T2 deadline %v, want %v", got, t0.Add(DefaultT2Registration))
	}
	// A response for another PE ID or pool is not ours.
	c.Handle(t0, conn.Assoc, wire(t, &tlv.RegistrationResponse{PoolHandle: []byte("echo"), PEID: c.ID() + 1}))
	c.Handle(t0, conn.Assoc, wire(t, &tlv.RegistrationResponse{PoolHandle: []byte("other"), PEID: c.ID()}))
	if c.Registered() || len(c.Outbox()) != 0 {
		t.Fatal("foreign response accepted")
	}
	now := t0.Add(time.Second)
	c.Handle(now, conn.Assoc, wire(t, &tlv.RegistrationResponse{PoolHandle: []byte("echo"), PEID: c.ID()}))
	if !c.Registered() {
		t.Fatal("not registered")
	}
	if ev := only[Registered](c.Outbox()); len(ev) != 1 {
		t.Fatalf("want Registered event, got %v", ev)
	}
	// T4 = max(min(10 min, 90 s − 20 s), 90 s / 3) = 70 s (RFC 5352 §5.1).
	if got := c.NextDeadline(); !got.Equal(now.Add(70 * time.Second)) {
		t.Fatalf("T4 deadline %v, want %v", got, now.Add(70*time.Second))
	}
}

// RFC 5352 §3.1 / RFC 5354 §3.12 error causes: a response with the R flag
// refuses the registration; after a final cause the PE reports it and
// stops trying (transient causes: TestPERefusedTransientRetries).
func TestPERegistrationReject(t *testing.T) {
	causes := []tlv.CauseCode{
		tlv.CauseUnrecognizedParameter, tlv.CauseUnrecognizedMessage,
		tlv.CauseInvalidValues, tlv.CauseRejectedSecurity,
	}
	for _, code := range causes {
		t.Run(code.String(), func(t *testing.T) {
			c := newPE(t, nil)
			c.Register(t0)
			conn := oneConnect(t, c.Outbox())
			c.HandleConnected(t0, conn.Assoc)
			c.Outbox()
			resp := &tlv.RegistrationResponse{Reject: true, PoolHandle: []byte("echo"), PEID: c.ID(),
				Error: &tlv.OperationError{Causes: []tlv.Cause{{Code: code}}}}
			c.Handle(t0, conn.Assoc, wire(t, resp))
			outs := c.Outbox()
			f := only[RegistrationFailed](outs)
			if len(f) != 1 {
				t.Fatalf("want RegistrationFailed, got %v", outs)
			}
			var re *RejectError
			if !errors.As(f[0].Err, &re) || re.Code() != code || re.Op != tlv.ASAPRegistration {
				t.Fatalf("error %v, want reject with %v", f[0].Err, code)
			}
			if errors.Is(f[0].Err, ErrUnknownPool) || re.Transient() || !f[0].Retry.IsZero() {
				t.Fatalf("%v: final refusal reported as %v, transient %v, retry %v", code, f[0].Err, re.Transient(), f[0].Retry)
			}
			if c.Registered() || !c.NextDeadline().IsZero() || len(only[Send](outs)) != 0 {
				t.Fatalf("PE keeps trying after reject: deadline %v", c.NextDeadline())
			}
			c.HandleTimeout(t0.Add(time.Hour))
			if len(c.Outbox()) != 0 {
				t.Fatal("output after reject")
			}
		})
	}
}

// RFC 5352 §3.1 and §5: with no response, T2 expiry resends the
// registration; after MAX-REG-ATTEMPT attempts the PE hunts for another
// registrar (§3.6) and registers there.
func TestPERegistrationRetryThenServerHunt(t *testing.T) {
	c := newPE(t, func(cfg *PEConfig) {
		cfg.Registrars = []transport.Addr{regA, regB}
		cfg.HuntParallel = 1
	})
	c.Register(t0)
	first := oneConnect(t, c.Outbox())
	c.HandleConnected(t0, first.Assoc)
	if regs, _ := sent[*tlv.Registration](t, c.Outbox()); len(regs) != 1 {
		t.Fatal("no first registration")
	}
	now := t0
	for attempt := 2; attempt <= DefaultMaxRegAttempt; attempt++ {
		now = c.NextDeadline()
		if !now.Equal(t0.Add(time.Duration(attempt-1) * DefaultT2Registration)) {
			t.Fatalf("attempt %d at %v", attempt, now)
		}
		c.HandleTimeout(now)
		regs, as := sent[*tlv.Registration](t, c.Outbox())
		if len(regs) != 1 || as[0] != first.Assoc || regs[0].PE.ID != c.ID() {
			t.Fatalf("attempt %d: %v on %v", attempt, regs, as)
		}
	}
	// MAX-REG-ATTEMPT exhausted: close the home, dial the other registrar.
	now = c.NextDeadline()
	c.HandleTimeout(now)
	outs := c.Outbox()
	if cl := only[Close](outs); len(cl) != 1 || cl[0].Assoc != first.Assoc {
		t.Fatalf("want Close of %d, got %v", first.Assoc, outs)
	}
	next := oneConnect(t, outs)
	if next.Addr == first.Addr {
		t.Fatalf("hunt dialled the failed registrar %v again first", next.Addr)
	}
	if len(only[Send](outs)) != 0 {
		t.Fatal("registration sent without a home")
	}
	c.HandleConnected(now, next.Assoc)
	regs, as := sent[*tlv.Registration](t, c.Outbox())
	if len(regs) != 1 || as[0] != next.Assoc {
		t.Fatalf("no registration with the new home: %v %v", regs, as)
	}
	c.Handle(now, next.Assoc, wire(t, &tlv.RegistrationResponse{PoolHandle: []byte("echo"), PEID: c.ID()}))
	if !c.Registered() {
		t.Fatal("not registered with the second registrar")
	}
	// A late answer on the closed association is ignored.
	c.Handle(now, first.Assoc, wire(t, &tlv.RegistrationResponse{Reject: true, PoolHandle: []byte("echo"), PEID: c.ID()}))
	if !c.Registered() || len(only[RegistrationFailed](c.Outbox())) != 0 {
		t.Fatal("answer from a closed association was used")
	}
}

// RFC 5352 §3.6, T5-serverhunt: when a round's registrar does not come up
// within T5 the next round tries another one, and the first dial is left
// to go on (HuntDialLimit); a failed dial does not start the next round
// before its time. The first association up is the home; the other dial
// is closed. (Before, T5 closed the first dial, and a late success of it
// was closed, not adopted.)
func TestPEServerHuntT5(t *testing.T) {
	c := newPE(t, func(cfg *PEConfig) {
		cfg.Registrars = []transport.Addr{regA, regB}
		cfg.HuntParallel = 1
	})
	c.Register(t0)
	a := oneConnect(t, c.Outbox())
	if d := c.NextDeadline(); !d.Equal(t0.Add(DefaultT5ServerHunt)) {
		t.Fatalf("T5 deadline %v", d)
	}
	c.HandleTimeout(t0.Add(DefaultT5ServerHunt))
	outs := c.Outbox()
	if cl := only[Close](outs); len(cl) != 0 {
		t.Fatalf("T5 closed a dial still in its handshake: %v", outs)
	}
	b := oneConnect(t, outs)
	if b.Addr == a.Addr {
		t.Fatal("second round dialled the same registrar")
	}
	c.HandleConnectFailed(t0.Add(DefaultT5ServerHunt), b.Assoc, nil)
	if len(c.Outbox()) != 0 {
		t.Fatal("a refused dial started the next round before T5")
	}
	// The second round backs off: it lasts between T5 and 2·T5.
	next := c.NextDeadline()
	if d := next.Sub(t0.Add(DefaultT5ServerHunt)); d < DefaultT5ServerHunt || d > 2*DefaultT5ServerHunt {
		t.Fatalf("second round lasts %v, want %v..%v", d, DefaultT5ServerHunt, 2*DefaultT5ServerHunt)
	}
	c.HandleTimeout(next.Add(-time.Nanosecond))
	if len(c.Outbox()) != 0 {
		t.Fatal("third round before the second one's end")
	}
	// Every registrar was tried and a's dial goes on: the third round
	// dials nothing (neither a again nor, before a's pass ends, b).
	c.HandleTimeout(next)
	if outs := c.Outbox(); len(outs) != 0 {
		t.Fatalf("third round with a dial in progress: %v", outs)
	}
	// A late success of the first dial makes it the home.
	late := next.Add(time.Millisecond)
	c.HandleConnected(late, a.Assoc)
	outs = c.Outbox()
	if h, _ := c.Home(); h != a.Assoc || len(only[HomeChanged](outs)) != 1 {
		t.Fatalf("late association not the home: home %d, %v", h, outs)
	}
	if regs, as := sent[*tlv.Registration](t, outs); len(regs) != 1 || as[0] != a.Assoc {
		t.Fatalf("no registration on the late home: %v", outs)
	}
}

// RFC 5352 §3.1, T4-reregistration: a registered PE re-registers before
// its registration life runs out, with the same PE ID.
func TestPEReregistration(t *testing.T) {
	for _, tc := range []struct {
		life, t4 time.Duration
	}{
		{5 * time.Minute, 4*time.Minute + 40*time.Second}, // life − 20 s
		{time.Hour, MaxT4Reregistration},                  // capped at 10 min
		{30 * time.Second, 10 * time.Second},              // life/3 floor
	} {
		t.Run(tc.life.String(), func(t *testing.T) {
			c := newPE(t, func(cfg *PEConfig) { cfg.RegistrationLife = tc.life })
			home := registerPE(t, c, t0)
			due := c.NextDeadline()
			if !due.Equal(t0.Add(tc.t4)) {
				t.Fatalf("T4 %v, want %v", due.Sub(t0), tc.t4)
			}
			c.HandleTimeout(due.Add(-time.Nanosecond))
			if len(c.Outbox()) != 0 {
				t.Fatal("re-registered early")
			}
			c.HandleTimeout(due)
			regs, as := sent[*tlv.Registration](t, c.Outbox())
			if len(regs) != 1 || as[0] != home || regs[0].PE.ID != c.ID() {
				t.Fatalf("no re-registration: %v", regs)
			}
			if !c.Registered() {
				t.Fatal("a re-registration in flight must not unregister")
			}
		})
	}
}

// RFC 5352 §3.1 (and RFC 5356 adaptive policies): new policy values are
// sent in a re-registration at once; a change while a registration is
// outstanding is sent after its response.
func TestPEUpdatePolicyReregisters(t *testing.T) {
	c := newPE(t, nil)
	home := registerPE(t, c, t0)
	c.UpdatePolicy(t0, policy.Values{Load: 100}) // unchanged: nothing
	if len(c.Outbox()) != 0 {
		t.Fatal("unchanged values re-registered")
	}
	c.UpdatePolicy(t0, policy.Values{Load: 5000})
	regs, _ := sent[*tlv.Registration](t, c.Outbox())
	if len(regs) != 1 {
		t.Fatal("no re-registration on load change")
	}
	if _, v, _ := policy.Decode(regs[0].PE.Policy); v.Load != 5000 {
		t.Fatalf("load %d", v.Load)
	}
	c.UpdatePolicy(t0, policy.Values{Load: 6000}) // outstanding: deferred
	if len(c.Outbox()) != 0 {
		t.Fatal("second registration while one is outstanding")
	}
	c.Handle(t0, home, wire(t, &tlv.RegistrationResponse{PoolHandle: []byte("echo"), PEID: c.ID()}))
	regs, _ = sent[*tlv.Registration](t, c.Outbox())
	if len(regs) != 1 {
		t.Fatal("deferred values not sent after the response")
	}
	if _, v, _ := policy.Decode(regs[0].PE.Policy); v.Load != 6000 {
		t.Fatalf("deferred load %d", v.Load)
	}
}

// RFC 5352 §3.3, T3-deregistration: the PE sends ASAP_DEREGISTRATION and
// waits T3; the response ends it, T3 expiry resends, and the retries run
// out with ErrTimeout.
func TestPEDeregistration(t *testing.T) {
	t.Run("response", func(t *testing.T) {
		c := newPE(t, nil)
		home := registerPE(t, c, t0)
		if err := c.Deregister(t0); err != nil {
			t.Fatal(err)
		}
		ds, as := sent[*tlv.Deregistration](t, c.Outbox())
		if len(ds) != 1 || as[0] != home || ds[0].PEID != c.ID() || string(ds[0].PoolHandle) != "echo" {
			t.Fatalf("deregistration %v", ds)
		}
		if c.Registered() {
			t.Fatal("still registered")
		}
		if d := c.NextDeadline(); !d.Equal(t0.Add(DefaultT3Deregistration)) {
			t.Fatalf("T3 deadline %v", d)
		}
		c.Handle(t0, home, wire(t, &tlv.DeregistrationResponse{PoolHandle: []byte("echo"), PEID: c.ID()}))
		if d := only[Deregistered](c.Outbox()); len(d) != 1 || d[0].Err != nil {
			t.Fatalf("want clean Deregistered, got %v", d)
		}
		if !c.NextDeadline().IsZero() {
			t.Fatal("timers left after deregistration")
		}
	})
	t.Run("error cause", func(t *testing.T) {
		c := newPE(t, nil)
		home := registerPE(t, c, t0)
		c.Deregister(t0)
		c.Outbox()
		c.Handle(t0, home, wire(t, &tlv.DeregistrationResponse{PoolHandle: []byte("echo"), PEID: c.ID(),
			Error: &tlv.OperationError{Causes: []tlv.Cause{{Code: tlv.CauseUnknownPoolHandle}}}}))
		d := only[Deregistered](c.Outbox())
		if len(d) != 1 || !errors.Is(d[0].Err, ErrUnknownPool) {
			t.Fatalf("want reject, got %v", d)
		}
	})
	t.Run("T3 exhaustion", func(t *testing.T) {
		c := newPE(t, nil)
		registerPE(t, c, t0)
		c.Deregister(t0)
		c.Outbox()
		c.HandleTimeout(t0.Add(DefaultT3Deregistration))
		if ds, _ := sent[*tlv.Deregistration](t, c.Outbox()); len(ds) != 1 {
			t.Fatal("no resend on T3")
		}
		c.HandleTimeout(t0.Add(2 * DefaultT3Deregistration))
		d := only[Deregistered](c.Outbox())
		if len(d) != 1 || !errors.Is(d[0].Err, ErrTimeout) {
			t.Fatalf("want ErrTimeout, got %v", d)
		}
	})
	t.Run("not registered", func(t *testing.T) {
		c := newPE(t, nil)
		if err := c.Deregister(t0); !errors.Is(err, ErrNotRegistered) {
			t.Fatalf("got %v", err)
		}
	})
}

// RFC 5352 §3.7: the PE answers ASAP_ENDPOINT_KEEP_ALIVE with
// ASAP_ENDPOINT_KEEP_ALIVE_ACK carrying its pool handle and PE ID, and
// learns its home's server ID.
func TestPEKeepAliveAck(t *testing.T) {
	c := newPE(t, nil)
	home := registerPE(t, c, t0)
	c.Handle(t0, home, wire(t, &tlv.EndpointKeepAlive{ServerID: 0x1234, PoolHandle: []byte("echo")}))
	acks, as := sent[*tlv.EndpointKeepAliveAck](t, c.Outbox())
	if len(acks) != 1 || as[0] != home || acks[0].PEID != c.ID() || string(acks[0].PoolHandle) != "echo" {
		t.Fatalf("ack %v on %v", acks, as)
	}
	if _, sid := c.Home(); sid != 0x1234 {
		t.Fatalf("home server ID %x", sid)
	}
	// Keep-alives for another pool or PE (RSPLIB's PE ID extension) are not ours.
	c.Handle(t0, home, wire(t, &tlv.EndpointKeepAlive{ServerID: 0x1234, PoolHandle: []byte("x")}))
	c.Handle(t0, home, wire(t, &tlv.EndpointKeepAlive{ServerID: 0x1234, PoolHandle: []byte("echo"), HasPEID: true, PEID: c.ID() + 1}))
	if len(c.Outbox()) != 0 {
		t.Fatal("answered a keep-alive that is not ours")
	}
	// The next registration carries the home server ID.
	c.HandleTimeout(c.NextDeadline())
	if regs, _ := sent[*tlv.Registration](t, c.Outbox()); len(regs) != 1 || regs[0].PE.HomeServerID != 0x1234 {
		t.Fatalf("re-registration home ID: %v", regs)
	}
}

// RFC 5352 §3.7 (takeover, RFC 5353 §3.9): a keep-alive with H=1 from
// another registrar makes it the home; the PE acks there, closes the old
// home and re-registers with the new one.
func TestPEHomeChangeOnKeepAlive(t *testing.T) {
	c := newPE(t, nil)
	old := registerPE(t, c, t0)
	in := c.HandleAccepted(t0, regB)
	c.Handle(t0, in, wire(t, &tlv.EndpointKeepAlive{Home: true, ServerID: 0xbbbb, PoolHandle: []byte("echo")}))
	outs := c.Outbox()
	if hc := only[HomeChanged](outs); len(hc) != 1 || hc[0].Assoc != in || hc[0].ServerID != 0xbbbb {
		t.Fatalf("HomeChanged %v", hc)
	}
	if cl := only[Close](outs); len(cl) != 1 || cl[0].Assoc != old {
		t.Fatalf("old home not closed: %v", cl)
	}
	if acks, as := sent[*tlv.EndpointKeepAliveAck](t, outs); len(acks) != 1 || as[0] != in {
		t.Fatalf("ack %v on %v", acks, as)
	}
	if h, sid := c.Home(); h != in || sid != 0xbbbb {
		t.Fatalf("home %d %x", h, sid)
	}
	c.HandleTimeout(c.NextDeadline())
	regs, as := sent[*tlv.Registration](t, c.Outbox())
	if len(regs) != 1 || as[0] != in || regs[0].PE.HomeServerID != 0xbbbb {
		t.Fatalf("re-registration went to %v: %v", as, regs)
	}
	// Messages on an association the PE does not know are dropped.
	c.Handle(t0, 999, wire(t, &tlv.EndpointKeepAlive{Home: true, ServerID: 1, PoolHandle: []byte("echo")}))
	if len(c.Outbox()) != 0 {
		t.Fatal("unknown association answered")
	}
}

// RFC 5352 §3.6: losing the home association starts a server hunt and the
// PE registers with the registrar found.
func TestPEHomeLostHunts(t *testing.T) {
	c := newPE(t, func(cfg *PEConfig) { cfg.Registrars = []transport.Addr{regA, regB} })
	home := registerPE(t, c, t0)
	c.HandleLost(t0, home)
	outs := c.Outbox()
	cs := only[Connect](outs)
	if len(cs) == 0 {
		t.Fatal("no hunt after home loss")
	}
	c.HandleConnected(t0, cs[0].Assoc)
	outs = c.Outbox()
	if regs, as := sent[*tlv.Registration](t, outs); len(regs) != 1 || as[0] != cs[0].Assoc {
		t.Fatalf("no registration with new home: %v", regs)
	}
	for _, other := range cs[1:] {
		found := false
		for _, cl := range only[Close](outs) {
			found = found || cl.Assoc == other.Assoc
		}
		if !found {
			t.Fatalf("parallel attempt %d not closed", other.Assoc)
		}
	}
}

// RFC 5352 §3.6, T7-ENRPoutdate: an announced registrar joins the table
// and leaves it T7 after its last ASAP_SERVER_ANNOUNCE. An announce
// without transport parameters means the source address, ASAP port.
func TestPEServerAnnounceTable(t *testing.T) {
	c := newPE(t, func(cfg *PEConfig) {
		cfg.Registrars = nil
		cfg.Kind = transport.KindSCTP
	})
	src := transport.Addr{Kind: transport.KindSCTP, AddrPort: mustAddrPort("10.9.9.9:5000")}
	ann := wire(t, &tlv.ServerAnnounce{ServerID: 77}).(*tlv.ServerAnnounce)
	c.HandleAnnounce(t0, src, ann)
	c.Register(t0)
	conn := oneConnect(t, c.Outbox())
	if conn.Addr.AddrPort != mustAddrPort("10.9.9.9:3863") {
		t.Fatalf("dialled %v, want source address at port 3863", conn.Addr)
	}
	c.HandleConnectFailed(t0, conn.Assoc, nil)
	c.HandleTimeout(t0.Add(DefaultT5ServerHunt))
	again := oneConnect(t, c.Outbox()) // only one registrar: tried again
	c.HandleConnectFailed(t0, again.Assoc, nil)
	c.Outbox()

	// An announce with an SCTP transport parameter names the address.
	c2 := newPE(t, func(cfg *PEConfig) { cfg.Registrars = nil; cfg.Kind = transport.KindSCTP })
	ann2 := wire(t, &tlv.ServerAnnounce{ServerID: 78, Transports: []tlv.Transport{{
		Type: tlv.ParamSCTPTransport, Port: 4000, Addrs: []netipAddr{mustAddr("10.8.8.8")}}}}).(*tlv.ServerAnnounce)
	c2.HandleAnnounce(t0, src, ann2)
	late := t0.Add(DefaultT7ENRPOutdate - time.Millisecond)
	c2.Register(late)
	conn2 := oneConnect(t, c2.Outbox())
	if conn2.Addr.AddrPort != mustAddrPort("10.8.8.8:4000") {
		t.Fatalf("dialled %v", conn2.Addr)
	}
	// After T7 the entry is gone: the next round dials nothing.
	c2.HandleTimeout(t0.Add(DefaultT7ENRPOutdate + DefaultT5ServerHunt))
	if cs := only[Connect](c2.Outbox()); len(cs) != 0 {
		t.Fatalf("expired registrar dialled: %v", cs)
	}
	// A fresh announce revives the hunt at once.
	c2.HandleAnnounce(t0.Add(time.Minute), src, ann2)
	if cs := only[Connect](c2.Outbox()); len(cs) != 1 {
		t.Fatalf("announce did not resume the hunt: %v", cs)
	}
}

// RFC 5352 §2.2.14: an ASAP_ERROR from the home while a registration is
// outstanding refuses it.
func TestPEASAPError(t *testing.T) {
	c := newPE(t, nil)
	c.Register(t0)
	conn := oneConnect(t, c.Outbox())
	c.HandleConnected(t0, conn.Assoc)
	c.Outbox()
	c.Handle(t0, conn.Assoc, wire(t, &tlv.ASAPError{Error: tlv.OperationError{Causes: []tlv.Cause{{Code: tlv.CauseUnrecognizedParameter, Info: []byte{0x40, 0x99, 0, 4}}}}}))
	f := only[RegistrationFailed](c.Outbox())
	var re *RejectError
	if len(f) != 1 || !errors.As(f[0].Err, &re) || re.Code() != tlv.CauseUnrecognizedParameter {
		t.Fatalf("got %v", f)
	}
}

func TestPEConfigValidation(t *testing.T) {
	bad := []func(*PEConfig){
		func(c *PEConfig) { c.PoolHandle = nil },
		func(c *PEConfig) { c.PoolHandle = make([]byte, tlv.DefaultMaxPoolHandle+1) },
		func(c *PEConfig) { c.UserTransport = tlv.Transport{} },
		func(c *PEConfig) { c.Policy = 0x7777 },
		func(c *PEConfig) { c.RegistrationLife = -1 },
		func(c *PEConfig) { c.RegistrationLife = time.Millisecond - 1 }, // would go out as 0 ms (RFC 5354 §3.10)
		func(c *PEConfig) { c.Timers.T2Registration = -time.Second },
		func(c *PEConfig) { c.Timers.MaxRegAttempt = -1 },
	}
	for i, mod := range bad {
		cfg := PEConfig{PoolHandle: []byte("p"), UserTransport: peTr}
		mod(&cfg)
		if _, err := NewPoolElementCore(cfg); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("case %d: got %v", i, err)
		}
	}
	c, err := NewPoolElementCore(PEConfig{PoolHandle: []byte("p"), UserTransport: peTr, PEID: 42})
	if err != nil || c.ID() != 42 || c.ptype != policy.RoundRobin || c.life != DefaultRegistrationLife {
		t.Fatalf("defaults: %v %+v", err, c)
	}
}
