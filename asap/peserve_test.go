package asap_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"net/netip"
	"os"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/go-rserpool/rserpool/asap"
	"github.com/go-rserpool/rserpool/asap/cookie"
	"github.com/go-rserpool/rserpool/enrp"
	"github.com/go-rserpool/rserpool/internal/leakcheck"
	"github.com/go-rserpool/rserpool/internal/regtest"
	"github.com/go-rserpool/rserpool/tlv"
	"github.com/go-rserpool/rserpool/transport"
	"github.com/go-rserpool/rserpool/transport/memnet"
)

// peRig is a registrar and the nodes of a session test over memnet.
// The pool users are written with raw transport and tlv: they are what
// RFC 5352 §3.9-3.11 says a pool user sends, not this package's client.
type peRig struct {
	t   *testing.T
	net *memnet.Network
	reg *enrp.Registrar
}

// peTest runs body in a synctest bubble (virtual time) with a new rig,
// and checks that nothing it started is left running.
func peTest(t *testing.T, body func(t *testing.T, r *peRig)) {
	t.Helper()
	leakcheck.Check(t)
	synctest.Test(t, func(t *testing.T) { body(t, newPERig(t)) })
}

func newPERig(t *testing.T) *peRig {
	t.Helper()
	net := memnet.New(1)
	t.Cleanup(func() { net.Close() })
	nd := net.NewNode()
	reg := regtest.Start(t, enrp.Config{Transport: nd, ListenAddr: nd.Addr(transport.PortASAP)})
	return &peRig{t: t, net: net, reg: reg}
}

// server starts a SessionServer for pool "kv" on a new node, port 7000;
// tune changes the configuration first.
func (r *peRig) server(tune func(*asap.SessionServerConfig)) *asap.SessionServer {
	r.t.Helper()
	nd := r.net.NewNode()
	cfg := asap.SessionServerConfig{
		PE:         asap.PEConfig{PoolHandle: []byte("kv"), Registrars: []transport.Addr{r.reg.Addr()}},
		ListenAddr: nd.Addr(7000),
	}
	if tune != nil {
		tune(&cfg)
	}
	srv, err := asap.NewSessionServer(cfg, nd)
	if err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(func() { srv.Close() })
	return srv
}

// serverEvents is server with the server's events on a channel of n.
func (r *peRig) serverEvents(n int, tune func(*asap.SessionServerConfig)) (*asap.SessionServer, chan asap.PESessionEvent) {
	r.t.Helper()
	events := make(chan asap.PESessionEvent, n)
	return r.server(func(c *asap.SessionServerConfig) {
		c.Events = events
		if tune != nil {
			tune(c)
		}
	}), events
}

// open connects a new pool user to srv, sends data first, and returns
// the pool user's association and the session srv accepted for it.
func (r *peRig) open(srv *asap.SessionServer, data string) (transport.Conn, *asap.PESession) {
	r.t.Helper()
	pu := r.dial(srv)
	sendRaw(r.t, pu, 0, []byte(data))
	return pu, accept(r.t, srv)
}

// dial connects a new pool user node to srv.
func (r *peRig) dial(srv *asap.SessionServer) transport.Conn {
	r.t.Helper()
	c, err := r.net.NewNode().Dial(context.Background(), srv.Addr())
	if err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(func() { c.Abort() })
	return c
}

// sendASAP sends one ASAP message on PPID 11, stream 0.
func sendASAP(t *testing.T, c transport.Conn, m tlv.ASAPMessage) {
	t.Helper()
	b, err := tlv.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	sendRaw(t, c, transport.PPIDASAP, b)
}

func sendRaw(t *testing.T, c transport.Conn, ppid uint32, b []byte) {
	t.Helper()
	if err := c.Send(context.Background(), transport.Message{PPID: ppid, Data: b}); err != nil {
		t.Fatal(err)
	}
}

func accept(t *testing.T, srv *asap.SessionServer) *asap.PESession {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := srv.Accept(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func recv(t *testing.T, c interface {
	Recv(context.Context) (transport.Message, error)
}) transport.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m, err := c.Recv(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// RFC 5352 §3.10: the COOKIE_ECHO a pool user sends first, before any
// data, is the session's; the host has it from Accept on, before its
// first Recv, and without waiting for FirstMessageWait.
func TestPESessionCookieEchoBeforeData(t *testing.T) {
	peTest(t, func(t *testing.T, r *peRig) {
		srv := r.server(nil)
		pu := r.dial(srv)
		start := time.Now()
		sendASAP(t, pu, &tlv.CookieEcho{Cookie: []byte("state=7")})
		if err := pu.Send(t.Context(), transport.Message{PPID: 0, Stream: 3, Data: []byte("get")}); err != nil {
			t.Fatal(err)
		}
		s := accept(t, srv)
		if waited := time.Since(start); waited >= asap.DefaultFirstMessageWait {
			t.Errorf("Accept waited %v, the first-message bound; the echo had arrived", waited)
		}
		if got := s.CookieEcho(); string(got) != "state=7" {
			t.Fatalf("CookieEcho = %q before the first Recv", got)
		}
		m := recv(t, s)
		if m.PPID != 0 || m.Stream != 3 || string(m.Data) != "get" {
			t.Fatalf("Recv = %+v, want the data message untouched", m)
		}
		if s.RemoteAddr() != pu.LocalAddr() {
			t.Errorf("RemoteAddr = %v, want %v", s.RemoteAddr(), pu.LocalAddr())
		}
		if st := srv.Stats(); st.Accepted != 1 || st.CookieEchoesReceived != 1 || st.Silent != 0 || st.Open != 1 {
			t.Errorf("Stats = %+v", st)
		}
		// A pool user that sends data first has no cookie echo.
		_, s2 := r.open(srv, "hello")
		if got, err := s2.WaitCookieEcho(t.Context()); got != nil || err != nil {
			t.Errorf("WaitCookieEcho after data first = %q, %v", got, err)
		}
		if m := recv(t, s2); string(m.Data) != "hello" {
			t.Errorf("Recv = %q", m.Data)
		}
	})
}

// readHex reads a testdata file of hex bytes with "#" comments and "|"
// separators.
func readHex(t *testing.T, name string) []byte {
	t.Helper()
	f, err := os.Open("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var sb strings.Builder
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line, _, _ := strings.Cut(sc.Text(), "#")
		sb.WriteString(strings.NewReplacer(" ", "", "|", "", "\t", "").Replace(line))
	}
	b, err := hex.DecodeString(sb.String())
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return b
}

// The control messages a PE sends are the RFC 5352 §2.2.11 and §2.2.13
// layouts byte for byte, on PPID 11 and stream 0 (RFC 5352 §3.9, §3.11).
func TestPESessionControlGolden(t *testing.T) {
	peTest(t, func(t *testing.T, r *peRig) {
		srv := r.server(nil)
		pu, s := r.open(srv, "hi")
		if err := s.SendCookie(t.Context(), []byte("cookie!")); err != nil {
			t.Fatal(err)
		}
		rr := tlv.Policy{Type: 0x00000001}
		card := tlv.BusinessCard{Policy: &rr, PEs: []tlv.PoolElement{{
			ID: 0x2a, RegistrationLife: 30000, Policy: rr,
			UserTransport: tlv.NewSCTPTransport(0x1234, tlv.TransportUseDataPlusControl, netip.MustParseAddr("10.0.0.1")),
		}}}
		if err := s.SendBusinessCard(t.Context(), card); err != nil {
			t.Fatal(err)
		}
		for _, want := range []struct {
			file string
			typ  tlv.ASAPType
		}{{"asap_cookie.hex", tlv.ASAPCookie}, {"asap_business_card.hex", tlv.ASAPBusinessCard}} {
			m := recv(t, pu)
			if m.PPID != transport.PPIDASAP || m.Stream != 0 {
				t.Errorf("%v on PPID %d stream %d, want 11 and 0", want.typ, m.PPID, m.Stream)
			}
			if g := readHex(t, want.file); !bytes.Equal(m.Data, g) {
				t.Errorf("%v:\n got %x\nwant %x (%s)", want.typ, m.Data, g, want.file)
			}
			msg, err := tlv.ParseASAP(m.Data)
			if err != nil || msg.ASAPType() != want.typ {
				t.Errorf("%s parses as %v, %v", want.file, msg, err)
			}
		}
		if st := s.Stats(); st.CookiesSent != 1 || st.BusinessCardsSent != 1 {
			t.Errorf("Stats = %+v", st)
		}
	})
}

// A pool user that connects and says nothing delays only its own
// session: another pool user's session is accepted at once, and the
// silent one is handed over after FirstMessageWait without a cookie. An
// echo it sends late is still taken before its first data.
func TestPESessionSilentPUDoesNotBlockAccept(t *testing.T) {
	peTest(t, func(t *testing.T, r *peRig) {
		srv, events := r.serverEvents(8, nil)
		start := time.Now()
		silent := r.dial(srv)
		synctest.Wait() // the silent association is up and waiting
		talker := r.dial(srv)
		sendASAP(t, talker, &tlv.CookieEcho{Cookie: []byte("t")})
		s := accept(t, srv)
		if s.RemoteAddr() != talker.LocalAddr() {
			t.Fatalf("first session is from %v, want the talker %v", s.RemoteAddr(), talker.LocalAddr())
		}
		if d := time.Since(start); d >= asap.DefaultFirstMessageWait {
			t.Fatalf("the talker's session took %v: it waited for the silent one", d)
		}
		q := accept(t, srv)
		if q.RemoteAddr() != silent.LocalAddr() {
			t.Fatalf("second session is from %v, want the silent PU", q.RemoteAddr())
		}
		if d := time.Since(start); d < asap.DefaultFirstMessageWait {
			t.Errorf("silent session handed over after %v, before FirstMessageWait", d)
		}
		if q.CookieEcho() != nil {
			t.Errorf("silent session has a cookie echo")
		}
		if st := srv.Stats(); st.Silent != 1 || st.Accepted != 2 {
			t.Errorf("Stats = %+v, want 1 silent of 2", st)
		}
		sendASAP(t, silent, &tlv.CookieEcho{Cookie: []byte("late")})
		if got, err := q.WaitCookieEcho(t.Context()); string(got) != "late" || err != nil {
			t.Errorf("WaitCookieEcho = %q, %v", got, err)
		}
		if ev := <-events; ev.Kind != asap.PESessionLateCookieEcho || ev.Session != q {
			t.Errorf("event %v, want a late cookie echo of the silent session", ev)
		}
		sendRaw(t, silent, 0, []byte("data"))
		if m := recv(t, q); string(m.Data) != "data" {
			t.Errorf("Recv = %q", m.Data)
		}
	})
}

// Close deregisters the PE (RFC 5352 §3.3) before it stops: the
// registrar no longer resolves the pool, open sessions are closed, and
// Accept fails with ErrClosed.
func TestPESessionCloseDeregisters(t *testing.T) {
	peTest(t, func(t *testing.T, r *peRig) {
		srv := r.server(nil)
		if err := srv.Register(t.Context()); err != nil {
			t.Fatal(err)
		}
		resolve := func() ([]tlv.PoolElement, error) {
			pu, err := asap.NewPoolUser(asap.PUConfig{Registrars: []transport.Addr{r.reg.Addr()}}, r.net.NewNode())
			if err != nil {
				t.Fatal(err)
			}
			defer pu.Close()
			return pu.Resolve(t.Context(), []byte("kv"))
		}
		pes, err := resolve()
		if err != nil || len(pes) != 1 || pes[0].ID != srv.PoolElement().ID() {
			t.Fatalf("Resolve before Close = %v, %v", pes, err)
		}
		if ut := pes[0].UserTransport; ut.Use != tlv.TransportUseDataPlusControl || ut.Port != 7000 {
			t.Errorf("advertised user transport %v, want port 7000 with data plus control (RFC 5354 §3.4)", ut)
		}
		pu, s := r.open(srv, "x")
		waiting := r.dial(srv) // its session is never accepted
		sendRaw(t, waiting, 0, []byte("y"))
		synctest.Wait()
		if err := srv.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		if pes, err := resolve(); !errors.Is(err, asap.ErrUnknownPool) {
			t.Errorf("Resolve after Close = %v, %v; want ErrUnknownPool", pes, err)
		}
		if _, err := pu.Recv(t.Context()); !errors.Is(err, transport.ErrPeerClosed) {
			t.Errorf("pool user's Recv after Close: %v, want ErrPeerClosed", err)
		}
		if _, err := s.Recv(t.Context()); !errors.Is(err, asap.ErrClosed) {
			t.Errorf("session Recv after Close: %v, want ErrClosed", err)
		}
		if _, err := waiting.Recv(t.Context()); !errors.Is(err, transport.ErrPeerClosed) {
			t.Errorf("pool user not yet accepted, Recv after Close: %v, want ErrPeerClosed", err)
		}
		if _, err := srv.Accept(t.Context()); !errors.Is(err, asap.ErrClosed) {
			t.Errorf("Accept after Close: %v", err)
		}
		if srv.PoolElement().Registered() {
			t.Error("still registered after Close")
		}
		if err := srv.Close(); err != nil {
			t.Errorf("second Close: %v", err)
		}
	})
}

// Malformed, oversized and unexpected ASAP messages on PPID 11 are
// counted and ignored; the session and its data go on.
func TestPESessionMalformedControlIgnored(t *testing.T) {
	peTest(t, func(t *testing.T, r *peRig) {
		srv, events := r.serverEvents(16, func(c *asap.SessionServerConfig) { c.MaxCookieEcho = 8 })
		pu := r.dial(srv)
		bad := [][]byte{
			{0x0c},                     // truncated header
			{0x0c, 0, 0, 8, 0, 0},      // length beyond the message
			{0xff, 0, 0, 4},            // unknown message type
			{0x0c, 0, 0, 4},            // COOKIE_ECHO without its Cookie
			bytes.Repeat([]byte{0}, 9), // zero type and length
		}
		for _, b := range bad {
			sendRaw(t, pu, transport.PPIDASAP, b)
		}
		sendASAP(t, pu, &tlv.CookieEcho{Cookie: []byte("123456789")})                  // over MaxCookieEcho
		sendASAP(t, pu, &tlv.EndpointKeepAlive{ServerID: 1, PoolHandle: []byte("kv")}) // a registrar's message
		sendASAP(t, pu, &tlv.CookieEcho{Cookie: []byte("ok")})
		sendASAP(t, pu, &tlv.CookieEcho{Cookie: []byte("again")}) // a second echo
		sendRaw(t, pu, 0, []byte("one"))
		sendASAP(t, pu, &tlv.CookieEcho{Cookie: []byte("after")}) // after data
		sendRaw(t, pu, 0, []byte("two"))
		s := accept(t, srv)
		for _, want := range []string{"one", "two"} {
			if m := recv(t, s); string(m.Data) != want {
				t.Fatalf("Recv = %q, want %q", m.Data, want)
			}
		}
		if got := s.CookieEcho(); string(got) != "ok" {
			t.Errorf("CookieEcho = %q, want the first valid one", got)
		}
		const ignored = 5 + 4
		if st := s.Stats(); st.ControlIgnored != ignored || st.DataIn != 2 {
			t.Errorf("session Stats = %+v, want %d ignored", st, ignored)
		}
		if st := srv.Stats(); st.ControlIgnored != ignored || st.CookieEchoesReceived != 1 {
			t.Errorf("server Stats = %+v", st)
		}
		var parse, large, unexpected int
		for range ignored {
			ev := <-events
			var pe *tlv.ParseError
			switch {
			case ev.Kind != asap.PESessionControlIgnored:
				t.Errorf("event %v", ev)
			case errors.As(ev.Err, &pe):
				parse++
			case errors.Is(ev.Err, asap.ErrCookieTooLarge):
				large++
			case errors.Is(ev.Err, asap.ErrUnexpectedControl):
				unexpected++
			default:
				t.Errorf("ignored for %v", ev.Err)
			}
		}
		if parse != 5 || large != 1 || unexpected != 3 {
			t.Errorf("ignored: %d malformed, %d too large, %d unexpected; want 5, 1, 3", parse, large, unexpected)
		}
		// The session still works both ways.
		if err := s.Send(t.Context(), transport.Message{Data: []byte("ack")}); err != nil {
			t.Fatal(err)
		}
		if m := recv(t, pu); string(m.Data) != "ack" {
			t.Errorf("pool user got %q", m.Data)
		}
	})
}

// A cookie sealed by one PE opens on another that shares the key (the
// failover of RFC 5352 §3.10); the same cookie tampered by the pool user
// is refused (RFC 5355 §3).
func TestPESessionSealedCookieFailover(t *testing.T) {
	peTest(t, func(t *testing.T, r *peRig) {
		key := cookie.Key{ID: 1, Secret: bytes.Repeat([]byte{7}, cookie.MinSecretLen)}
		sealer, err := cookie.New(cookie.Config{Keys: []cookie.Key{key}, Context: []byte("kv")})
		if err != nil {
			t.Fatal(err)
		}
		pe1, pe2 := r.server(nil), r.server(nil)

		pu, s := r.open(pe1, "incr")
		recv(t, s)
		sealed, err := sealer.Seal([]byte("counter=1"))
		if err != nil {
			t.Fatal(err)
		}
		if err := s.SendCookie(t.Context(), sealed); err != nil {
			t.Fatal(err)
		}
		m := recv(t, pu)
		msg, err := tlv.ParseASAP(m.Data)
		ck, ok := msg.(*tlv.CookieMessage)
		if err != nil || !ok {
			t.Fatalf("pool user got %v, %v; want ASAP_COOKIE", msg, err)
		}
		kept := bytes.Clone(ck.Cookie)
		s.Abort() // PE 1 fails
		if _, err := pu.Recv(t.Context()); !errors.Is(err, transport.ErrAssociationLost) {
			t.Fatalf("pool user after Abort: %v, want ErrAssociationLost", err)
		}

		for _, tc := range []struct {
			name   string
			echo   []byte
			want   string
			refuse error
		}{
			{"intact", kept, "counter=1", nil},
			{"tampered", append(bytes.Clone(kept[:len(kept)-1]), kept[len(kept)-1]^1), "", cookie.ErrTampered},
		} {
			pu2 := r.dial(pe2)
			sendASAP(t, pu2, &tlv.CookieEcho{Cookie: tc.echo})
			s2 := accept(t, pe2)
			state, err := sealer.Open(s2.CookieEcho())
			if tc.refuse != nil {
				if !errors.Is(err, tc.refuse) || !strings.Contains(err.Error(), "HMAC-SHA-256 under key ID 1 does not match") {
					t.Errorf("%s: Open = %q, %v; want %v saying which check failed", tc.name, state, err, tc.refuse)
				}
				continue
			}
			if err != nil || string(state) != tc.want {
				t.Errorf("%s: Open = %q, %v", tc.name, state, err)
			}
		}
	})
}

// A business card from the pool user (RFC 5352 §3.11, a PU that is a PE
// of its own pool) is kept and reported, not just logged.
func TestPESessionBusinessCardFromPU(t *testing.T) {
	peTest(t, func(t *testing.T, r *peRig) {
		srv, events := r.serverEvents(4, nil)
		pu := r.dial(srv)
		card := &tlv.BusinessCard{PoolHandle: []byte("callbacks"), PEs: []tlv.PoolElement{
			{ID: 9, UserTransport: tlv.NewSCTPTransport(4000, tlv.TransportUseDataOnly, netip.MustParseAddr("10.0.0.9")), Policy: tlv.Policy{Type: 1}},
			{ID: 8, UserTransport: tlv.NewSCTPTransport(4000, tlv.TransportUseDataOnly, netip.MustParseAddr("10.0.0.8")), Policy: tlv.Policy{Type: 1}},
		}}
		sendASAP(t, pu, card)
		sendRaw(t, pu, 0, []byte("go"))
		s := accept(t, srv)
		recv(t, s)
		got := s.BusinessCard()
		if got == nil || string(got.PoolHandle) != "callbacks" || len(got.PEs) != 2 || got.PEs[0].ID != 9 || got.PEs[1].ID != 8 {
			t.Fatalf("BusinessCard = %+v, want the card with PEs 9, 8 in order", got)
		}
		got.PEs[0].ID = 100 // the caller's copy
		if s.BusinessCard().PEs[0].ID != 9 {
			t.Error("BusinessCard returned the session's own card")
		}
		ev := <-events
		if ev.Kind != asap.PESessionBusinessCard || ev.Session != s || ev.BusinessCard == nil || len(ev.BusinessCard.PEs) != 2 {
			t.Errorf("event %v", ev)
		}
		if st := s.Stats(); st.BusinessCardsReceived != 1 || st.ControlIgnored != 0 {
			t.Errorf("Stats = %+v", st)
		}
	})
}

// Beyond MaxSessions an association is aborted, so the pool user fails
// over; closing a session frees its place.
func TestPESessionLimit(t *testing.T) {
	peTest(t, func(t *testing.T, r *peRig) {
		srv, events := r.serverEvents(4, func(c *asap.SessionServerConfig) { c.MaxSessions = 1 })
		_, s := r.open(srv, "1")
		pu2 := r.dial(srv)
		if _, err := pu2.Recv(t.Context()); !errors.Is(err, transport.ErrAssociationLost) {
			t.Fatalf("second pool user: %v, want the association aborted", err)
		}
		if ev := <-events; ev.Kind != asap.PESessionRefused || !errors.Is(ev.Err, asap.ErrTooManySessions) || ev.Remote != pu2.LocalAddr() {
			t.Errorf("event %v", ev)
		}
		s.Close()
		synctest.Wait()
		pu3 := r.dial(srv)
		sendRaw(t, pu3, 0, []byte("3"))
		if s3 := accept(t, srv); s3.RemoteAddr() != pu3.LocalAddr() {
			t.Errorf("after a Close, session from %v", s3.RemoteAddr())
		}
		if st := srv.Stats(); st.Refused != 1 || st.Accepted != 2 || st.Open != 1 {
			t.Errorf("Stats = %+v", st)
		}
	})
}

// A negative MaxSessions turns the bound off, as a negative bound does
// everywhere in the module: more than DefaultMaxSessions pool users get a
// session each.
func TestPESessionNoLimit(t *testing.T) {
	peTest(t, func(t *testing.T, r *peRig) {
		srv := r.server(func(c *asap.SessionServerConfig) { c.MaxSessions = -1 })
		n := asap.DefaultMaxSessions + 2
		nd := r.net.NewNode()
		for i := range n {
			c, err := nd.Dial(t.Context(), srv.Addr())
			if err != nil {
				t.Fatalf("pool user %d: %v", i, err)
			}
			t.Cleanup(func() { c.Abort() })
			sendRaw(t, c, 0, []byte("x"))
		}
		synctest.Wait()
		if st := srv.Stats(); st.Accepted != uint64(n) || st.Refused != 0 || st.Open != n {
			t.Errorf("MaxSessions -1, %d pool users: Stats = %+v", n, st)
		}
	})
}

// What the host hands the session is checked: no data on PPID 11, no
// empty or over-long cookie, no empty business card; a closed session
// refuses everything with ErrClosed.
func TestPESessionSendErrors(t *testing.T) {
	peTest(t, func(t *testing.T, r *peRig) {
		srv := r.server(func(c *asap.SessionServerConfig) { c.FirstMessageWait = -1 })
		r.dial(srv)
		s := accept(t, srv) // handed over at once: FirstMessageWait < 0
		ctx := t.Context()
		for name, err := range map[string]error{
			"PPID 11":      s.Send(ctx, transport.Message{PPID: transport.PPIDASAP, Data: []byte("x")}),
			"empty cookie": s.SendCookie(ctx, nil),
			"too large":    s.SendCookie(ctx, make([]byte, asap.MaxCookieLen+1)),
			"empty card":   s.SendBusinessCard(ctx, tlv.BusinessCard{}),
		} {
			want := map[string]error{"PPID 11": asap.ErrControlPPID, "empty cookie": asap.ErrEmptyCookie,
				"too large": asap.ErrCookieTooLarge, "empty card": asap.ErrEmptyBusinessCard}[name]
			if !errors.Is(err, want) {
				t.Errorf("%s: %v, want %v", name, err, want)
			}
		}
		var pe *tlv.ParseError
		if err := s.SendBusinessCard(ctx, tlv.BusinessCard{PEs: []tlv.PoolElement{{ID: 1}}}); !errors.As(err, &pe) {
			t.Errorf("card with a PE without user transport: %v, want a *tlv.ParseError", err)
		}
		if err := s.SendCookie(ctx, make([]byte, asap.MaxCookieLen)); err != nil {
			t.Errorf("largest cookie: %v", err)
		}
		s.Close()
		if err := s.Send(ctx, transport.Message{Data: []byte("x")}); !errors.Is(err, asap.ErrClosed) {
			t.Errorf("Send after Close: %v", err)
		}
		if err := s.SendCookie(ctx, []byte("c")); !errors.Is(err, asap.ErrClosed) {
			t.Errorf("SendCookie after Close: %v", err)
		}
		if _, err := s.Recv(ctx); !errors.Is(err, asap.ErrClosed) {
			t.Errorf("Recv after Close: %v", err)
		}
		if err := s.Close(); err != nil {
			t.Errorf("second Close: %v", err)
		}
	})
}

func TestSessionServerConfigErrors(t *testing.T) {
	net := memnet.New(1)
	defer net.Close()
	nd := net.NewNode()
	reg := []transport.Addr{nd.Addr(transport.PortASAP)}
	dataOnly, _ := asap.TransportParam(nd.Addr(7000), tlv.TransportUseDataOnly)
	for name, cfg := range map[string]asap.SessionServerConfig{
		"no listen address": {PE: asap.PEConfig{PoolHandle: []byte("kv"), Registrars: reg}},
		"data only":         {PE: asap.PEConfig{PoolHandle: []byte("kv"), Registrars: reg, UserTransport: dataOnly}, ListenAddr: nd.Addr(7000)},
		"no registrar":      {PE: asap.PEConfig{PoolHandle: []byte("kv")}, ListenAddr: nd.Addr(7001)},
		// A queue cannot be unbounded, nor Close's wait for the
		// deregistration: negative is refused, not taken as the default.
		"negative RecvQueue":    {PE: asap.PEConfig{PoolHandle: []byte("kv"), Registrars: reg}, ListenAddr: nd.Addr(7001), RecvQueue: -1},
		"negative CloseTimeout": {PE: asap.PEConfig{PoolHandle: []byte("kv"), Registrars: reg}, ListenAddr: nd.Addr(7001), CloseTimeout: -1},
	} {
		if srv, err := asap.NewSessionServer(cfg, nd); !errors.Is(err, asap.ErrInvalidConfig) {
			t.Errorf("%s: %v, want ErrInvalidConfig", name, err)
			if srv != nil {
				srv.Close()
			}
		}
	}
	// The failed attempts released their listeners.
	ln, err := nd.Listen(nd.Addr(7001))
	if err != nil {
		t.Fatalf("port 7001 still held: %v", err)
	}
	ln.Close()
}

// MaxCookieLen is exactly what one ASAP_COOKIE carries, and asap/cookie
// seals up to the same size.
func TestMaxCookieLen(t *testing.T) {
	if asap.MaxCookieLen != cookie.MaxSealedLen {
		t.Fatalf("MaxCookieLen %d, cookie.MaxSealedLen %d", asap.MaxCookieLen, cookie.MaxSealedLen)
	}
	if _, err := tlv.Marshal(&tlv.CookieMessage{Cookie: make([]byte, asap.MaxCookieLen)}); err != nil {
		t.Errorf("largest cookie: %v", err)
	}
	if _, err := tlv.Marshal(&tlv.CookieMessage{Cookie: make([]byte, asap.MaxCookieLen+1)}); err == nil {
		t.Error("a cookie one byte larger fits too")
	}
}
