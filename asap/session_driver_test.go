package asap

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/go-rserpool/rserpool/internal/leakcheck"
	"github.com/go-rserpool/rserpool/tlv"
	"github.com/go-rserpool/rserpool/transport"
	"github.com/go-rserpool/rserpool/transport/memnet"
)

// memSess is a memnet with a fake registrar and n session PEs.
type memSess struct {
	n *memnet.Network
	*sessRig
}

func newMemSess(t testing.TB, pes int, opts ...memnet.Option) *memSess {
	t.Helper()
	n := memnet.New(7, opts...)
	regNode := n.NewNode()
	regL, err := regNode.Listen(regNode.Addr(transport.PortASAP))
	if err != nil {
		t.Fatal(err)
	}
	var ps []*sessTestPE
	for i := range pes {
		node := n.NewNode()
		ps = append(ps, startSessPE(t, uint32(i+1), node, node.Addr(7000)))
	}
	return &memSess{n: n, sessRig: newSessRig(t, regL, ps)}
}

func (m *memSess) close() {
	m.sessRig.close()
	m.n.Close()
}

func (m *memSess) newPU(t testing.TB) *PoolUser {
	t.Helper()
	pu, err := NewPoolUser(PUConfig{Registrars: []transport.Addr{m.reg.l.Addr()}, Kind: transport.KindMem, Logger: testLogger(t)}, m.n.NewNode())
	if err != nil {
		t.Fatal(err)
	}
	return pu
}

// sessTest runs body in a synctest bubble (virtual time) on a memSess of
// pes PEs, with a context of a minute, and checks that nothing it started
// is left running.
func sessTest(t *testing.T, pes int, body func(t *testing.T, ctx context.Context, m *memSess)) {
	t.Helper()
	leakcheck.Check(t)
	synctest.Test(t, func(t *testing.T) {
		m := newMemSess(t, pes)
		t.Cleanup(m.close)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		t.Cleanup(cancel)
		body(t, ctx, m)
	})
}

// connect opens a session with pool "echo" from a new pool user; both
// are closed when the test ends.
func (m *memSess) connect(t *testing.T, ctx context.Context, cfg SessionConfig) *Session {
	t.Helper()
	pu := m.newPU(t)
	t.Cleanup(func() { pu.Close() })
	s, err := pu.Connect(ctx, []byte("echo"), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// nextFailover waits for the next FailoverEvent on ch.
func nextFailover(t *testing.T, ctx context.Context, ch <-chan SessionEvent) FailoverEvent {
	t.Helper()
	for {
		select {
		case e := <-ch:
			if fe, ok := e.(FailoverEvent); ok {
				return fe
			}
		case <-ctx.Done():
			t.Fatal("no FailoverEvent")
		}
	}
}

// RFC 5352 §3.9-3.11 over memnet, PE crash: the PE sends a cookie with its
// state and a business card naming the PE to fail over to; it is aborted
// with a request in flight; the session reports it, goes to the card's PE,
// which sees ASAP_COOKIE_ECHO with the latest cookie as its first message,
// and the request is answered there with the state carried over. The
// host sees the failover as an event.
func TestSessionFailoverOnCrash(t *testing.T) {
	sessTest(t, 3, func(t *testing.T, ctx context.Context, m *memSess) {
		for _, p := range m.pes {
			p.card = []tlv.PoolElement{m.byID((p.id+1)%3 + 1).pe}
		}
		events := make(chan SessionEvent, 16)
		s := m.connect(t, ctx, SessionConfig{Events: events})
		on, ok := s.PE()
		if !ok {
			t.Fatal("not connected after Connect")
		}
		for seq := 1; seq <= 3; seq++ {
			n, pe, err := inc(ctx, s, seq)
			if err != nil || n != seq || pe != on.ID {
				t.Fatalf("request %d: n=%d from PE %d, %v", seq, n, pe, err)
			}
		}
		card := m.byID(on.ID)
		wantNext := (on.ID+1)%3 + 1 // the card names PE 3 after 1, 1 after 2, 2 after 3
		if cards := s.Stats().BusinessCardsReceived; cards != 1 {
			t.Fatalf("%d business cards taken", cards)
		}

		// The request is in flight (read, not answered) when the PE dies.
		card.hang()
		type answer struct {
			n   int
			pe  uint32
			err error
		}
		res := make(chan answer, 1)
		go func() {
			n, pe, err := inc(ctx, s, 4)
			res <- answer{n, pe, err}
		}()
		synctest.Wait()
		card.crash()
		r := <-res
		n, pe, err := r.n, r.pe, r.err
		if err != nil || n != 4 || pe != wantNext {
			t.Fatalf("after the crash: n=%d from PE %d, %v; want 4 from the card's PE %d", n, pe, err, wantNext)
		}
		fe := nextFailover(t, ctx, events)
		if fe.Old.ID != on.ID || fe.New.ID != wantNext || fe.Reason != ReasonAssociationLost ||
			!fe.CookieEchoed || fe.Err != nil || !errors.Is(fe.Cause, transport.ErrAssociationLost) {
			t.Fatalf("failover event %+v", fe)
		}
		firsts := m.byID(wantNext).firstMessages()
		if got := firsts[len(firsts)-1]; got != "echo:3 3" {
			t.Fatalf("the new PE's first message was %q, want the COOKIE_ECHO of the latest cookie", got)
		}
		if got := string(s.Cookie()); got != "4 4" {
			t.Fatalf("Cookie() = %q", got)
		}
		st := s.Stats()
		if st.Failovers != 1 || st.CookieEchoesSent != 1 || st.BusinessCardsReceived != 2 {
			t.Fatalf("stats %+v", st)
		}
		synctest.Wait()
		if r := m.reg.reported(); !slices.Contains(r, on.ID) {
			t.Fatalf("registrar got reports %v, want PE %d", r, on.ID)
		}
	})
}

// A hung PE (it reads and never answers): the request's deadline passes,
// the session fails over (ReasonRequestTimeout) within the deadline, and
// the request is answered by the next PE, which got the COOKIE_ECHO first.
func TestSessionFailoverOnHang(t *testing.T) {
	sessTest(t, 2, func(t *testing.T, ctx context.Context, m *memSess) {
		events := make(chan SessionEvent, 16)
		s := m.connect(t, ctx, SessionConfig{Events: events, RequestTimeout: 300 * time.Millisecond})
		first, _ := s.PE()
		if n, _, err := inc(ctx, s, 1); err != nil || n != 1 {
			t.Fatalf("first request: %d, %v", n, err)
		}
		m.byID(first.ID).hang()
		start := time.Now()
		n, pe, err := inc(ctx, s, 2)
		took := time.Since(start)
		if err != nil || n != 2 || pe == first.ID {
			t.Fatalf("after the hang: n=%d from PE %d, %v", n, pe, err)
		}
		// Virtual time (synctest): the failover happens at the deadline,
		// and connecting the next PE takes no network time on memnet.
		if took < 300*time.Millisecond || took > 400*time.Millisecond {
			t.Fatalf("answered after %v (virtual), want just past the 300 ms deadline", took)
		}
		fe := nextFailover(t, ctx, events)
		if fe.Reason != ReasonRequestTimeout || fe.Old.ID != first.ID || fe.New.ID != pe || !fe.CookieEchoed || fe.Retried != 1 {
			t.Fatalf("failover event %+v", fe)
		}
		if f := m.byID(pe).firstMessages(); len(f) != 1 || f[0] != "echo:1 1" {
			t.Fatalf("the new PE's first messages %v", f)
		}
	})
}

// Send and Recv pass application messages (PPID and stream) through; a
// forced failover (as rsp_forcefailover) with a cookie echoes it first; a
// session without cookies echoes nothing; PPID 11 is refused as data; and
// Close ends everything (leakcheck).
func TestSessionSendRecvForcedAndNoCookie(t *testing.T) {
	sessTest(t, 2, func(t *testing.T, ctx context.Context, m *memSess) {
		for _, p := range m.pes {
			p.noCookie = true
		}
		s := m.connect(t, ctx, SessionConfig{})
		if err := s.Send(ctx, transport.Message{PPID: 47, Stream: 2, Data: []byte("hello")}); err != nil {
			t.Fatal(err)
		}
		got, err := s.Recv(ctx)
		if err != nil || got.PPID != 47 || got.Stream != 2 || string(got.Data) != "hello" {
			t.Fatalf("Recv %+v, %v", got, err)
		}
		// The PU side refuses PPID 11 with the same exported error as the
		// PE side (PESession.Send).
		if err := s.Send(ctx, transport.Message{PPID: transport.PPIDASAP, Data: []byte{1}}); !errors.Is(err, ErrControlPPID) {
			t.Fatalf("Send on PPID 11: %v, want ErrControlPPID", err)
		}
		if _, err := s.Request(ctx, transport.Message{PPID: transport.PPIDASAP, Data: []byte{1}}); !errors.Is(err, ErrControlPPID) {
			t.Fatalf("Request on PPID 11: %v, want ErrControlPPID", err)
		}
		if _, _, err := inc(ctx, s, 1); err != nil {
			t.Fatal(err)
		}
		old, _ := s.PE()
		if err := s.Failover(ctx, nil); err != nil {
			t.Fatal(err)
		}
		now, ok := s.PE()
		if !ok || now.ID == old.ID {
			t.Fatalf("forced failover stayed on PE %d", now.ID)
		}
		if n, _, err := inc(ctx, s, 2); err != nil || n != 1 {
			t.Fatalf("without cookies the new PE starts afresh: n=%d, %v", n, err)
		}
		for _, p := range m.pes {
			for _, f := range p.firstMessages() {
				if f[:5] != "data:" {
					t.Fatalf("PE %d got %q first without any cookie", p.id, f)
				}
			}
		}
		if s.Cookie() != nil || s.Stats().CookieEchoesSent != 0 {
			t.Fatal("a cookie appeared")
		}
		s.Close()
		if err := s.Send(ctx, transport.Message{Data: []byte("x")}); !errors.Is(err, ErrClosed) {
			t.Fatalf("Send after Close: %v", err)
		}
		if _, err := s.Recv(ctx); !errors.Is(err, ErrClosed) {
			t.Fatalf("Recv after Close: %v", err)
		}
		if _, err := s.Request(ctx, transport.Message{Data: []byte("x")}); !errors.Is(err, ErrClosed) {
			t.Fatalf("Request after Close: %v", err)
		}
	})
}

// A session given a cookie (resumed) echoes it to its first PE; when every
// PE is gone the session is broken: Request, Recv and Failover report it,
// and once a PE is back a Request resumes the session.
func TestSessionResumeAndBroken(t *testing.T) {
	sessTest(t, 1, func(t *testing.T, ctx context.Context, m *memSess) {
		m.reg.keepReported = true
		s := m.connect(t, ctx, SessionConfig{Cookie: []byte("7 41")})
		if n, _, err := inc(ctx, s, 8); err != nil || n != 42 {
			t.Fatalf("resumed session: n=%d, %v", n, err)
		}
		p := m.pes[0]
		p.crash()
		_, _, err := inc(ctx, s, 9)
		var fe *FailoverError
		if !errors.As(err, &fe) || fe.Err == nil || fe.PE.ID != 1 {
			t.Fatalf("request with no PE left: %v", err)
		}
		if _, err := s.Recv(ctx); !errors.As(err, &fe) {
			t.Fatalf("Recv on a broken session: %v", err)
		}
		if err := s.Failover(ctx, nil); !errors.As(err, &fe) {
			t.Fatalf("Failover with no PE: %v", err)
		}
		if err := p.listen(); err != nil { // the PE is back
			t.Fatal(err)
		}
		if n, _, err := inc(ctx, s, 9); err != nil || n != 43 {
			t.Fatalf("after the PE came back: n=%d, %v", n, err)
		}
		if _, ok := s.PE(); !ok {
			t.Fatal("not connected")
		}
	})
}

// failingConn is an association whose Send fails once it is broken, as a
// send on a broken association would.
type failingConn struct {
	transport.Conn
	broken atomic.Bool
}

func (c *failingConn) Send(ctx context.Context, m transport.Message) error {
	if c.broken.Load() {
		return fmt.Errorf("injected: %w", transport.ErrAssociationLost)
	}
	return c.Conn.Send(ctx, m)
}

// A send that fails (RSPLIB's rsp_sendmsg failure) fails the session over
// (ReasonSendFailed); the message Send could not hand to the transport is
// sent on the next PE, so Send succeeds; a Request whose caller gives up
// returns ctx's error, and its answer can no longer become the next
// request's: the next request waits for its deadline, which fails the PE
// over without sending the abandoned request again.
func TestSessionSendFailureAndCancelledRequest(t *testing.T) {
	sessTest(t, 2, func(t *testing.T, ctx context.Context, m *memSess) {
		m.reg.keepReported = true
		node := m.n.NewNode()
		dialled := make(chan *failingConn, 8)
		events := make(chan SessionEvent, 16)
		s := m.connect(t, ctx, SessionConfig{Events: events, RequestTimeout: time.Second, Dial: func(ctx context.Context, pe tlv.PoolElement) (transport.Conn, error) {
			addr, err := AddrOf(pe.UserTransport, transport.KindMem)
			if err != nil {
				return nil, err
			}
			c, err := node.Dial(ctx, addr)
			if err != nil {
				return nil, err
			}
			fc := &failingConn{Conn: c}
			select {
			case dialled <- fc: // the test takes the first
			default:
			}
			return fc, nil
		}})
		first, _ := s.PE()
		// The first PE's association breaks; the next one works.
		(<-dialled).broken.Store(true)
		if err := s.Send(ctx, transport.Message{Data: []byte("ping")}); err != nil {
			t.Fatalf("Send: %v", err)
		}
		fe := nextFailover(t, ctx, events)
		if fe.Reason != ReasonSendFailed || fe.Old.ID != first.ID || !errors.Is(fe.Cause, transport.ErrAssociationLost) {
			t.Fatalf("failover event %+v", fe)
		}
		got, err := s.Recv(ctx)
		if err != nil || string(got.Data) != "ping" {
			t.Fatalf("Recv %q, %v: the message was not sent on the next PE", got.Data, err)
		}
		on, _ := s.PE()
		if f := m.byID(on.ID).firstMessages(); len(f) != 1 || f[0] != "data:ping" {
			t.Fatalf("the new PE got %v", f)
		}

		// A request given up: its PE hangs until the caller's ctx ends.
		m.byID(on.ID).hang()
		short, cancelShort := context.WithTimeout(ctx, 100*time.Millisecond)
		defer cancelShort()
		if _, err := s.Request(short, transport.Message{Data: []byte("slow")}); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Request past ctx: %v", err)
		}
		// The abandoned request holds the session's request slot until its
		// deadline (its answer would be dropped): then the session fails
		// over without sending it again, and the next request goes to the
		// next PE.
		ans, err := s.Request(ctx, transport.Message{Data: []byte("next")})
		if err != nil || string(ans.Data) != "next" {
			t.Fatalf("next Request: %q, %v", ans.Data, err)
		}
		fe = nextFailover(t, ctx, events)
		if fe.Reason != ReasonRequestTimeout || fe.Old.ID != on.ID || fe.Retried != 0 {
			t.Fatalf("failover event %+v", fe)
		}
		if f := m.byID(first.ID).firstMessages(); f[len(f)-1] != "data:next" {
			t.Fatalf("PE %d got %v first", first.ID, f)
		}
	})
}
