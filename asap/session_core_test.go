package asap

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/go-rserpool/rserpool/policy"
	"github.com/go-rserpool/rserpool/tlv"
	"github.com/go-rserpool/rserpool/transport"
)

// sessPE is a PE of pool "echo" whose user transport carries data and
// control (RFC 5354 §3.4), as a session PE's does.
func sessPE(id uint32) tlv.PoolElement {
	pe := testPE(id, policy.RoundRobin, policy.Values{})
	pe.UserTransport = tlv.Transport{Type: tlv.ParamSCTPTransport, Port: 7000, Use: tlv.TransportUseDataPlusControl,
		Addrs: []netip.Addr{netip.AddrFrom4([4]byte{10, 0, 0, byte(id)})}}
	return pe
}

func newSessCore(t *testing.T, cfg SessionCoreConfig) *SessionCore {
	t.Helper()
	cfg.Logger = testLogger(t)
	c, err := NewSessionCore([]byte("echo"), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// dialOf expects exactly one SessionDial among outs.
func dialOf(t *testing.T, outs []SessionOutput) SessionDial {
	t.Helper()
	d := only[SessionDial](outs)
	if len(d) != 1 {
		t.Fatalf("want one SessionDial, got %#v", outs)
	}
	return d[0]
}

// connectTo walks a session core that asks for a selection to pe; it
// returns every output from the selection on.
func connectTo(t *testing.T, c *SessionCore, now time.Time, pe tlv.PoolElement) []SessionOutput {
	t.Helper()
	outs := slices.Clone(c.Outbox())
	if len(only[SessionSelect](outs)) != 1 {
		t.Fatalf("want a SessionSelect, got %#v", outs)
	}
	c.HandleSelected(now, pe)
	d := dialOf(t, c.Outbox())
	if d.PE.ID != pe.ID {
		t.Fatalf("dialled PE %d, want %d", d.PE.ID, pe.ID)
	}
	c.HandleConnected(now, d.Assoc)
	return append(outs, c.Outbox()...)
}

func asapData(t *testing.T, m tlv.ASAPMessage) transport.Message {
	t.Helper()
	b, err := tlv.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return transport.Message{PPID: transport.PPIDASAP, Data: b}
}

// sends returns the messages of the SessionSends in outs, in order.
func sends(outs []SessionOutput) []transport.Message {
	var r []transport.Message
	for _, s := range only[SessionSend](outs) {
		r = append(r, s.Msg)
	}
	return r
}

// echoOf parses m as ASAP_COOKIE_ECHO, or fails.
func echoOf(t *testing.T, m transport.Message) []byte {
	t.Helper()
	if m.PPID != transport.PPIDASAP {
		t.Fatalf("message on PPID %d, want an ASAP_COOKIE_ECHO on PPID 11", m.PPID)
	}
	msg, err := tlv.ParseASAP(m.Data)
	if err != nil {
		t.Fatal(err)
	}
	e, ok := msg.(*tlv.CookieEcho)
	if !ok {
		t.Fatalf("got %T, want *tlv.CookieEcho", msg)
	}
	return e.Cookie
}

// connectedSessCore is a session core of cfg started at t0 and connected
// to PE 1 (sessPE), and its association.
func connectedSessCore(t *testing.T, cfg SessionCoreConfig) (*SessionCore, AssocID) {
	t.Helper()
	c := newSessCore(t, cfg)
	c.Start(t0)
	connectTo(t, c, t0, sessPE(1))
	return c, up(t, c)
}

func up(t *testing.T, c *SessionCore) AssocID {
	t.Helper()
	if c.State() != SessionEstablished {
		t.Fatalf("state %v, want established", c.State())
	}
	return c.assoc
}

// RFC 5352 §3.9: a PE may send ASAP_COOKIE at any time; the PU keeps only
// the latest one per session, and §3.10 echoes that one (once, first) to
// the next PE.
func TestSessionCoreKeepsOnlyLatestCookie(t *testing.T) {
	c, a := connectedSessCore(t, SessionCoreConfig{})
	c.HandleMessage(t0, a, asapData(t, &tlv.CookieMessage{Cookie: []byte("state=1")}))
	c.HandleMessage(t0, a, asapData(t, &tlv.CookieMessage{Cookie: []byte("state=2")}))
	evs := only[SessionCookieReceived](c.Outbox())
	if len(evs) != 2 || string(evs[1].Cookie) != "state=2" {
		t.Fatalf("cookie events %+v", evs)
	}
	if got := string(c.Cookie()); got != "state=2" {
		t.Fatalf("Cookie() = %q, want the latest, state=2", got)
	}
	c.HandleLost(t0, a, transport.ErrAssociationLost)
	outs := connectTo(t, c, t0.Add(time.Millisecond), sessPE(2))
	ms := sends(outs)
	if len(ms) != 1 || string(echoOf(t, ms[0])) != "state=2" {
		t.Fatalf("after failover sent %v, want one COOKIE_ECHO of state=2", ms)
	}
	if st := c.Stats(); st.CookiesReceived != 2 || st.CookieEchoesSent != 1 || st.Failovers != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// RFC 5352 §3.10: after a failover the first message on the new
// association is ASAP_COOKIE_ECHO, before the request in flight that is
// sent again, and before SessionUp lets host data through.
func TestSessionCoreCookieEchoFirstAfterFailover(t *testing.T) {
	c, a := connectedSessCore(t, SessionCoreConfig{})
	c.HandleMessage(t0, a, asapData(t, &tlv.CookieMessage{Cookie: []byte("ck")}))
	req := c.Request(t0, transport.Message{PPID: 0, Data: []byte("get")})
	if ms := sends(c.Outbox()); len(ms) != 1 || string(ms[0].Data) != "get" {
		t.Fatalf("request not sent: %v", ms)
	}
	c.HandleLost(t0, a, transport.ErrAssociationLost)
	outs := connectTo(t, c, t0, sessPE(2))
	var order []string
	for _, o := range outs {
		switch o := o.(type) {
		case SessionSend:
			if o.Msg.PPID == transport.PPIDASAP {
				order = append(order, "echo:"+string(echoOf(t, o.Msg)))
			} else {
				order = append(order, "data:"+string(o.Msg.Data))
			}
		case SessionUp:
			order = append(order, "up")
		}
	}
	if !slices.Equal(order, []string{"echo:ck", "up", "data:get"}) {
		t.Fatalf("order on the new association %v, want COOKIE_ECHO, up, then the request", order)
	}
	c.HandleMessage(t0, up(t, c), transport.Message{Data: []byte("answer")})
	done := only[SessionRequestDone](c.Outbox())
	if len(done) != 1 || done[0].Req != req || done[0].Err != nil || string(done[0].Msg.Data) != "answer" {
		t.Fatalf("request done %+v", done)
	}
}

// RFC 5352 §3.10: without a cookie nothing is echoed; nor to a PE whose
// user transport is data only (RFC 5354 §3.4: no control channel there).
func TestSessionCoreNoCookieNoEcho(t *testing.T) {
	c := newSessCore(t, SessionCoreConfig{})
	c.Start(t0)
	if ms := sends(connectTo(t, c, t0, sessPE(1))); len(ms) != 0 {
		t.Fatalf("first connect without a cookie sent %v", ms)
	}
	c.Failover(t0, nil)
	if ms := sends(connectTo(t, c, t0, sessPE(2))); len(ms) != 0 {
		t.Fatalf("failover without a cookie sent %v", ms)
	}
	c.HandleMessage(t0, up(t, c), asapData(t, &tlv.CookieMessage{Cookie: []byte("ck")}))
	c.Outbox()
	dataOnly := sessPE(3)
	dataOnly.UserTransport.Use = tlv.TransportUseDataOnly
	c.Failover(t0, nil)
	outs := connectTo(t, c, t0, dataOnly)
	if ms := sends(outs); len(ms) != 0 {
		t.Fatalf("failover to a data-only PE sent %v", ms)
	}
	if fe := only[FailoverEvent](outs); len(fe) != 1 || fe[0].CookieEchoed {
		t.Fatalf("failover events %+v, want one without COOKIE_ECHO", fe)
	}
	if string(c.Cookie()) != "ck" {
		t.Fatal("the cookie was lost on a data-only PE")
	}

	// A cookie the session was given is echoed on the first connect.
	c2 := newSessCore(t, SessionCoreConfig{Cookie: []byte("resume")})
	c2.Start(t0)
	if ms := sends(connectTo(t, c2, t0, sessPE(1))); len(ms) != 1 || string(echoOf(t, ms[0])) != "resume" {
		t.Fatalf("first connect with a cookie sent %v", ms)
	}
}

// RFC 5352 §3.11: the PE's business card lists its failover candidates in
// order; the session tries them first, in that order, reporting each one
// it cannot reach (§3.5), and only then asks for a selection, skipping
// every PE tried.
func TestSessionCoreBusinessCardOrder(t *testing.T) {
	c, a := connectedSessCore(t, SessionCoreConfig{})
	c.HandleMessage(t0, a, asapData(t, &tlv.BusinessCard{PoolHandle: []byte("echo"),
		PEs: []tlv.PoolElement{sessPE(5), sessPE(1), sessPE(3), sessPE(4)}}))
	cards := only[SessionCardReceived](c.Outbox())
	if len(cards) != 1 || len(cards[0].PEs) != 4 {
		t.Fatalf("card events %+v", cards)
	}
	// A card of another pool is not the session's.
	c.HandleMessage(t0, a, asapData(t, &tlv.BusinessCard{PoolHandle: []byte("other"), PEs: []tlv.PoolElement{sessPE(9)}}))
	if st := c.Stats(); st.BusinessCardsReceived != 1 || st.ControlIgnored != 1 {
		t.Fatalf("stats %+v", st)
	}
	c.HandleLost(t0, a, transport.ErrAssociationLost)
	outs := c.Outbox()
	if r := only[SessionReport](outs); len(r) != 1 || r[0].PE != 1 {
		t.Fatalf("reports %+v, want PE 1", r)
	}
	var dialled []uint32
	d := dialOf(t, outs)
	for range 3 {
		dialled = append(dialled, d.PE.ID)
		c.HandleConnectFailed(t0, d.Assoc, errors.New("refused"))
		outs = c.Outbox()
		if r := only[SessionReport](outs); len(r) != 1 || r[0].PE != d.PE.ID {
			t.Fatalf("after PE %d failed, reports %+v", d.PE.ID, r)
		}
		if ds := only[SessionDial](outs); len(ds) == 1 {
			d = ds[0]
		}
	}
	if !slices.Equal(dialled, []uint32{5, 3, 4}) {
		t.Fatalf("dialled %v, want the card's order 5, 3, 4 (PE 1 failed)", dialled)
	}
	sel := only[SessionSelect](outs)
	if len(sel) != 1 {
		t.Fatalf("after the card, outputs %#v, want a SessionSelect", outs)
	}
	skip := slices.Clone(sel[0].Skip)
	slices.Sort(skip)
	if !slices.Equal(skip, []uint32{1, 3, 4, 5}) {
		t.Fatalf("selection skips %v, want every PE tried", skip)
	}
	if len(c.Card()) != 0 {
		t.Fatalf("unreachable PEs stay on the card: %v", c.Card())
	}
}

// RFC 5352 §3.5 / §3.10: every failure cause fails the session over in the
// same way: abort the association, report the PE unreachable, connect the
// next PE, and tell the host (FailoverEvent with old and new PE, reason
// and duration).
func TestSessionCoreFailoverCauses(t *testing.T) {
	for _, tc := range []struct {
		reason FailoverReason
		fail   func(c *SessionCore, now time.Time, a AssocID)
	}{
		{ReasonAssociationLost, func(c *SessionCore, now time.Time, a AssocID) {
			c.HandleLost(now, a, transport.ErrAssociationLost)
		}},
		{ReasonSendFailed, func(c *SessionCore, now time.Time, a AssocID) {
			c.HandleSendFailed(now, a, errors.New("broken pipe"))
		}},
		{ReasonRequestTimeout, func(c *SessionCore, now time.Time, a AssocID) {
			if !c.NextDeadline().Equal(t0.Add(time.Second)) {
				panic("request deadline not armed")
			}
			c.HandleTimeout(now.Add(-time.Millisecond)) // not yet
			c.HandleTimeout(now)
		}},
		{ReasonForced, func(c *SessionCore, now time.Time, a AssocID) {
			c.Failover(now, errors.New("host says so"))
		}},
	} {
		t.Run(tc.reason.String(), func(t *testing.T) {
			c, a := connectedSessCore(t, SessionCoreConfig{RequestTimeout: time.Second})
			c.Request(t0, transport.Message{Data: []byte("q")})
			c.Outbox()
			failAt := t0.Add(time.Second)
			tc.fail(c, failAt, a)
			outs := c.Outbox()
			if ab := only[SessionAbort](outs); len(ab) != 1 || ab[0].Assoc != a {
				t.Fatalf("aborts %+v", ab)
			}
			if r := only[SessionReport](outs); len(r) != 1 || r[0].PE != 1 {
				t.Fatalf("reports %+v", r)
			}
			if c.State() != SessionConnecting {
				t.Fatalf("state %v", c.State())
			}
			c.HandleMessage(failAt, a, transport.Message{Data: []byte("late")})
			if len(c.Outbox()) != 0 || c.Stats().Stale != 1 {
				t.Fatal("a message on the given-up association was used")
			}
			// The core's outbox still holds the SessionSelect: put it back.
			c.out = append(c.out, outs...)
			outs = connectTo(t, c, failAt.Add(30*time.Millisecond), sessPE(2))
			fe := only[FailoverEvent](outs)
			if len(fe) != 1 {
				t.Fatalf("failover events %+v", fe)
			}
			e := fe[0]
			if e.Reason != tc.reason || e.Old.ID != 1 || e.New.ID != 2 || e.Duration != 30*time.Millisecond ||
				e.Tried != 1 || e.Retried != 1 || e.Err != nil || string(e.Pool) != "echo" {
				t.Fatalf("event %+v", e)
			}
			if ms := sends(outs); len(ms) != 1 || string(ms[0].Data) != "q" {
				t.Fatalf("request not sent again: %v", ms)
			}
			if st := c.Stats(); st.Failovers != 1 || st.Retries != 1 || st.Unreachable != 1 {
				t.Fatalf("stats %+v", st)
			}
		})
	}
}

// A request cut short by more failovers than RequestRetries allows, or by
// any failover with retries off, fails with a *FailoverError: it is never
// lost silently.
func TestSessionCoreRequestRetriesRunOut(t *testing.T) {
	for _, tc := range []struct {
		retries, failovers int
	}{{-1, 1}, {1, 2}, {0, DefaultRequestRetries + 1}} {
		c, _ := connectedSessCore(t, SessionCoreConfig{RequestRetries: tc.retries})
		req := c.Request(t0, transport.Message{Data: []byte("q")})
		c.Outbox()
		var done []SessionRequestDone
		for i := range tc.failovers {
			c.HandleLost(t0, up(t, c), transport.ErrAssociationLost)
			outs := connectTo(t, c, t0, sessPE(uint32(i+2)))
			done = append(done, only[SessionRequestDone](outs)...)
			if i < tc.failovers-1 && len(done) != 0 {
				t.Fatalf("retries %d: failed after %d failovers", tc.retries, i+1)
			}
		}
		if len(done) != 1 || done[0].Req != req || !errors.Is(done[0].Err, ErrFailover) ||
			!errors.Is(done[0].Err, transport.ErrAssociationLost) {
			t.Fatalf("retries %d: done %+v, want a FailoverError", tc.retries, done)
		}
		var fe *FailoverError
		if !errors.As(done[0].Err, &fe) || fe.Reason != ReasonAssociationLost || fe.Err != nil {
			t.Fatalf("error %v", done[0].Err)
		}
	}
}

// When no PE is left, the failover ends: the host is told (a FailoverEvent
// with Err, SessionDown), the waiting requests fail with the reason, and
// a new request starts a new failover (Resume).
func TestSessionCoreFailoverFindsNoPE(t *testing.T) {
	c, _ := connectedSessCore(t, SessionCoreConfig{MaxFailover: 2})
	c.Request(t0, transport.Message{Data: []byte("q")})
	c.Outbox()
	c.HandleLost(t0, up(t, c), transport.ErrAssociationLost)
	c.Outbox()
	c.HandleSelected(t0, sessPE(2))
	c.HandleConnectFailed(t0, dialOf(t, c.Outbox()).Assoc, errors.New("refused"))
	c.HandleSelected(t0, sessPE(3))
	c.HandleConnectFailed(t0, dialOf(t, c.Outbox()).Assoc, errors.New("refused"))
	outs := c.Outbox()
	if c.State() != SessionBroken {
		t.Fatalf("state %v after MaxFailover PEs, outputs %#v", c.State(), outs)
	}
	down := only[SessionDown](outs)
	var de *DialError
	if len(down) != 1 || !errors.As(down[0].Err, &de) || de.Tried != 2 || !errors.Is(down[0].Err, ErrNoPoolElement) {
		t.Fatalf("down %+v", down)
	}
	if fe := only[FailoverEvent](outs); len(fe) != 1 || fe[0].Err == nil || fe[0].New.ID != 0 {
		t.Fatalf("events %+v", fe)
	}
	if d := only[SessionRequestDone](outs); len(d) != 1 || !errors.Is(d[0].Err, ErrFailover) || !errors.As(d[0].Err, &de) {
		t.Fatalf("request %+v", d)
	}
	// A selection that fails ends it the same way. A new attempt may try
	// every PE again, the one that failed included.
	c.Request(t0, transport.Message{Data: []byte("q2")})
	if c.State() != SessionConnecting {
		t.Fatalf("a request on a broken session did not resume it: %v", c.State())
	}
	outs = c.Outbox()
	if sel := only[SessionSelect](outs); len(sel) != 1 || len(sel[0].Skip) != 0 {
		t.Fatalf("resume selection %+v", sel)
	}
	c.HandleSelectFailed(t0, ErrUnknownPool)
	if d := only[SessionRequestDone](c.Outbox()); len(d) != 1 || !errors.Is(d[0].Err, ErrUnknownPool) {
		t.Fatalf("request %+v", d)
	}
	// One failover, counted once: the attempt the request started is no
	// second one.
	if st := c.Stats(); st.FailoversFailed != 1 || st.RequestsFailed != 2 {
		t.Fatalf("stats %+v", st)
	}
}

// Malformed or foreign ASAP on PPID 11 is counted and ignored (it never
// breaks the session); data on other PPIDs goes to the host untouched.
func TestSessionCoreControlAndData(t *testing.T) {
	c, a := connectedSessCore(t, SessionCoreConfig{})
	c.HandleMessage(t0, a, transport.Message{PPID: transport.PPIDASAP, Data: []byte{0x0b, 0, 0, 3}})
	c.HandleMessage(t0, a, asapData(t, &tlv.EndpointKeepAlive{ServerID: 1, PoolHandle: []byte("echo")}))
	c.HandleMessage(t0, a, asapData(t, &tlv.CookieEcho{Cookie: []byte("not for a PU")}))
	if outs := c.Outbox(); len(outs) != 0 || c.Cookie() != nil {
		t.Fatalf("bad control gave %#v, cookie %q", outs, c.Cookie())
	}
	c.HandleMessage(t0, a, transport.Message{PPID: 47, Stream: 3, Data: []byte("hi")})
	d := only[SessionDeliver](c.Outbox())
	if len(d) != 1 || d[0].Msg.PPID != 47 || d[0].Msg.Stream != 3 || string(d[0].Msg.Data) != "hi" {
		t.Fatalf("delivered %+v", d)
	}
	if st := c.Stats(); st.ControlIgnored != 3 || c.State() != SessionEstablished {
		t.Fatalf("stats %+v, state %v", st, c.State())
	}
}

// Requests go one at a time, in order; a request whose caller gave up is
// dropped from the queue, and the answer of one in flight is dropped, not
// taken for the next request's answer.
func TestSessionCoreRequestQueueAndCancel(t *testing.T) {
	c, a := connectedSessCore(t, SessionCoreConfig{})
	r1 := c.Request(t0, transport.Message{Data: []byte("one")})
	r2 := c.Request(t0, transport.Message{Data: []byte("two")})
	r3 := c.Request(t0, transport.Message{Data: []byte("three")})
	if ms := sends(c.Outbox()); len(ms) != 1 || string(ms[0].Data) != "one" {
		t.Fatalf("sent %v, want only the first request", ms)
	}
	c.CancelRequest(t0, r1) // in flight: its answer is dropped
	c.CancelRequest(t0, r2) // queued: never sent
	c.HandleMessage(t0, a, transport.Message{Data: []byte("answer one")})
	outs := c.Outbox()
	if d := only[SessionRequestDone](outs); len(d) != 0 {
		t.Fatalf("the cancelled request's answer went to %+v", d)
	}
	if ms := sends(outs); len(ms) != 1 || string(ms[0].Data) != "three" {
		t.Fatalf("sent %v, want the third request", ms)
	}
	c.HandleMessage(t0, a, transport.Message{Data: []byte("answer three")})
	if d := only[SessionRequestDone](c.Outbox()); len(d) != 1 || d[0].Req != r3 || string(d[0].Msg.Data) != "answer three" {
		t.Fatalf("done %+v", d)
	}
	if !c.NextDeadline().IsZero() {
		t.Fatal("a deadline is armed with no request in flight")
	}
	c.Close(t0)
	if d := only[SessionRequestDone](func() []SessionOutput { c.Request(t0, transport.Message{Data: []byte("x")}); return c.Outbox() }()); len(d) != 1 || !errors.Is(d[0].Err, ErrClosed) {
		t.Fatalf("request after Close: %+v", d)
	}
}

// A PE that shuts the association down gracefully (transport.ErrPeerClosed,
// on a receive or a send) is alive: the session fails over
// (ReasonPeerClosed) without ASAP_ENDPOINT_UNREACHABLE (RFC 5352 §3.5 is
// for a PE that cannot be reached), and the request in flight is sent
// again on the next PE after the COOKIE_ECHO (§3.10).
func TestSessionCorePeerClosedNotReported(t *testing.T) {
	for name, fail := range map[string]func(c *SessionCore, a AssocID){
		"recv": func(c *SessionCore, a AssocID) { c.HandleLost(t0, a, transport.ErrPeerClosed) },
		"send": func(c *SessionCore, a AssocID) {
			c.HandleSendFailed(t0, a, fmt.Errorf("send: %w", transport.ErrPeerClosed))
		},
	} {
		t.Run(name, func(t *testing.T) {
			c, a := connectedSessCore(t, SessionCoreConfig{})
			c.HandleMessage(t0, a, asapData(t, &tlv.CookieMessage{Cookie: []byte("s")}))
			c.Request(t0, transport.Message{Data: []byte("q")})
			c.Outbox()
			fail(c, a)
			outs := c.Outbox()
			if r := only[SessionReport](outs); len(r) != 0 {
				t.Fatalf("a PE that closed gracefully was reported: %+v", r)
			}
			if ab := only[SessionAbort](outs); len(ab) != 1 || ab[0].Assoc != a {
				t.Fatalf("aborts %+v", ab)
			}
			c.out = append(c.out, outs...)
			outs = connectTo(t, c, t0, sessPE(2))
			fe := only[FailoverEvent](outs)
			if len(fe) != 1 || fe[0].Reason != ReasonPeerClosed || !errors.Is(fe[0].Cause, transport.ErrPeerClosed) || !fe[0].CookieEchoed {
				t.Fatalf("failover events %+v", fe)
			}
			if ms := sends(outs); len(ms) != 2 || string(echoOf(t, ms[0])) != "s" || string(ms[1].Data) != "q" {
				t.Fatalf("sent %v, want COOKIE_ECHO then the request", ms)
			}
			if st := c.Stats(); st.Unreachable != 0 || st.Failovers != 1 {
				t.Fatalf("stats %+v", st)
			}
		})
	}
}

// One failover is one FailoverEvent. When it found no PE, the attempts
// that Resume starts later (a request, a send, Failover on the broken
// session) that find none either emit no more events, each of them only
// failing its caller with the original failover's error; the one that
// reaches a PE emits one FailoverEvent, ReasonResumed.
func TestSessionCoreResumeNoStrayFailoverEvents(t *testing.T) {
	c, a := connectedSessCore(t, SessionCoreConfig{MaxFailover: 1})
	c.HandleLost(t0, a, transport.ErrAssociationLost)
	c.Outbox()
	c.HandleSelectFailed(t0, ErrNoPoolElement)
	if fe := only[FailoverEvent](c.Outbox()); len(fe) != 1 || fe[0].Reason != ReasonAssociationLost || fe[0].Err == nil {
		t.Fatalf("failover that found no PE: events %+v", fe)
	}
	for i := range 3 {
		c.Request(t0.Add(time.Duration(i+1)*time.Second), transport.Message{Data: []byte("q")})
		c.HandleSelectFailed(t0.Add(time.Duration(i+1)*time.Second), ErrNoPoolElement)
		outs := c.Outbox()
		if fe := only[FailoverEvent](outs); len(fe) != 0 {
			t.Fatalf("retry %d: stray failover events %+v", i, fe)
		}
		d := only[SessionRequestDone](outs)
		var fe *FailoverError
		if len(d) != 1 || !errors.As(d[0].Err, &fe) || fe.Reason != ReasonAssociationLost || fe.PE.ID != 1 || !errors.Is(d[0].Err, ErrNoPoolElement) {
			t.Fatalf("retry %d: request %+v", i, d)
		}
	}
	c.Failover(t0.Add(5*time.Second), nil)
	outs := connectTo(t, c, t0.Add(5*time.Second+10*time.Millisecond), sessPE(2))
	fe := only[FailoverEvent](outs)
	if len(fe) != 1 || fe[0].Reason != ReasonResumed || fe[0].Old.ID != 1 || fe[0].New.ID != 2 ||
		fe[0].Duration != 10*time.Millisecond || fe[0].Err != nil || !errors.Is(fe[0].Cause, ErrNoPoolElement) {
		t.Fatalf("resumed: events %+v", fe)
	}
	if st := c.Stats(); st.Failovers != 1 || st.FailoversFailed != 1 {
		t.Fatalf("stats %+v", st)
	}
}
