package countersvc_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/go-rserpool/rserpool/asap"
	"github.com/go-rserpool/rserpool/asap/cookie"
	"github.com/go-rserpool/rserpool/internal/countersvc"
	"github.com/go-rserpool/rserpool/policy"
	"github.com/go-rserpool/rserpool/tlv"
	"github.com/go-rserpool/rserpool/transport"
	"github.com/go-rserpool/rserpool/transport/memnet"
)

const handle = "counter"

// rig is one PE serving the counter over memnet, and the raw transport a
// test pool user dials it with.
type rig struct {
	t      *testing.T
	ctx    context.Context
	client *memnet.Node
	srv    *asap.SessionServer
	sealer *cookie.Sealer
	svc    *countersvc.Server

	mu       sync.Mutex
	restored []int
	refused  []error
}

func newRig(t *testing.T, svc *countersvc.Server) *rig {
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	t.Cleanup(cancel)
	n := memnet.New(1)
	t.Cleanup(func() { n.Close() })
	sealer, err := cookie.New(cookie.Config{Keys: []cookie.Key{{ID: 1, Secret: []byte("the counter pool's shared secret!")}}, Context: []byte(handle)})
	if err != nil {
		t.Fatal(err)
	}
	node := n.NewNode()
	srv, err := asap.NewSessionServer(asap.SessionServerConfig{
		PE:         asap.PEConfig{PEID: 42, PoolHandle: []byte(handle), Registrars: []transport.Addr{node.Addr(transport.PortASAP)}},
		ListenAddr: node.Addr(7000),
	}, node)
	if err != nil {
		t.Fatal(err)
	}
	r := &rig{t: t, ctx: ctx, client: n.NewNode(), srv: srv, sealer: sealer, svc: svc}
	svc.Sealer, svc.PE = sealer, 42
	svc.Restored = func(_ *asap.PESession, n int, meta cookie.Meta) {
		if meta.KeyID != 1 {
			t.Errorf("restored from a cookie of key %d, want 1", meta.KeyID)
		}
		r.mu.Lock()
		r.restored = append(r.restored, n)
		r.mu.Unlock()
	}
	svc.Refused = func(_ *asap.PESession, err error) {
		r.mu.Lock()
		r.refused = append(r.refused, err)
		r.mu.Unlock()
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			s, err := srv.Accept(context.Background())
			if err != nil {
				return
			}
			wg.Add(1)
			go func() { defer wg.Done(); svc.Serve(ctx, s) }()
		}
	}()
	t.Cleanup(func() { srv.Close(); wg.Wait() })
	return r
}

// session is a raw pool user's association with the PE: the cookies and
// business cards it got.
type session struct {
	r      *rig
	c      transport.Conn
	cookie []byte
	cards  [][]tlv.PoolElement
}

// dial opens a session, echoing echo first unless it is nil.
func (r *rig) dial(echo []byte) *session {
	r.t.Helper()
	c, err := r.client.Dial(r.ctx, r.srv.Addr())
	if err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(func() { c.Abort() })
	if echo != nil {
		b, err := tlv.Marshal(&tlv.CookieEcho{Cookie: echo})
		if err != nil {
			r.t.Fatal(err)
		}
		if err := c.Send(r.ctx, transport.Message{PPID: transport.PPIDASAP, Data: b}); err != nil {
			r.t.Fatal(err)
		}
	}
	return &session{r: r, c: c}
}

// send sends data; recv returns the next data message, keeping the
// cookies and cards that come before it.
func (s *session) send(data []byte) error {
	return s.c.Send(s.r.ctx, transport.Message{Data: data})
}

func (s *session) recv(ctx context.Context) ([]byte, error) {
	for {
		m, err := s.c.Recv(ctx)
		if err != nil {
			return nil, err
		}
		if m.PPID != transport.PPIDASAP {
			return m.Data, nil
		}
		msg, err := tlv.ParseASAP(m.Data)
		if err != nil {
			return nil, err
		}
		switch msg := msg.(type) {
		case *tlv.CookieMessage:
			s.cookie = msg.Cookie
		case *tlv.BusinessCard:
			s.cards = append(s.cards, msg.PEs)
		default:
			return nil, fmt.Errorf("unexpected %T", msg)
		}
	}
}

// inc sends request seq and wants counter want in the answer, and the
// cookie, sent before it, holding it.
func (s *session) inc(seq, want int) {
	s.r.t.Helper()
	if err := s.send(countersvc.Request(seq)); err != nil {
		s.r.t.Fatal(err)
	}
	s.cookie = nil
	a, err := s.recv(s.r.ctx)
	if err != nil {
		s.r.t.Fatalf("request %d: %v", seq, err)
	}
	n, pe, err := countersvc.ParseAnswer(a)
	if err != nil || n != want || pe != 42 {
		s.r.t.Fatalf("request %d: answer %q (%v), want counter=%d pe=42", seq, a, err, want)
	}
	if s.cookie == nil {
		s.r.t.Fatalf("request %d: answered with no cookie before it", seq)
	}
	st, err := s.r.sealer.Open(s.cookie)
	if err != nil {
		s.r.t.Fatalf("request %d: cookie: %v", seq, err)
	}
	if c, q, err := countersvc.ParseState(st); err != nil || c != want || q != seq {
		s.r.t.Fatalf("request %d: cookie holds %q (%v), want counter=%d seq=%d", seq, st, err, want, seq)
	}
}

// TestServe: requests count, a request sent again counts once, the state
// is in the cookie sent before each answer, a session that echoes the
// cookie goes on from it, a bad request is answered with an error and
// counts nothing, and a business card comes first.
func TestServe(t *testing.T) { synctest.Test(t, testServe) }

func testServe(t *testing.T) {
	var card []tlv.PoolElement
	for _, id := range []uint32{7, 8} {
		ut, err := asap.TransportParam(transport.Addr{AddrPort: netip.AddrPortFrom(netip.MustParseAddr("10.0.0.9"), uint16(id))}, tlv.TransportUseDataPlusControl)
		if err != nil {
			t.Fatal(err)
		}
		card = append(card, tlv.PoolElement{ID: id, UserTransport: ut, Policy: policy.Encode(policy.RoundRobin, policy.Values{}), RegistrationLife: 30000})
	}
	r := newRig(t, &countersvc.Server{Card: func() []tlv.PoolElement { return card }})
	s := r.dial(nil)
	s.inc(1, 1)
	s.inc(2, 2)
	s.inc(2, 2) // sent again: not counted twice
	if len(s.cards) != 1 || len(s.cards[0]) != 2 || s.cards[0][0].ID != 7 || s.cards[0][1].ID != 8 {
		t.Errorf("business cards %v, want one naming PEs 7 and 8", s.cards)
	}
	if err := s.send([]byte("add one")); err != nil {
		t.Fatal(err)
	}
	if a, err := s.recv(r.ctx); err != nil || !bytes.HasPrefix(a, []byte("error: ")) {
		t.Errorf("bad request answered %q, %v; want an error answer", a, err)
	}
	s.inc(3, 3)

	// The next session echoes the cookie: it goes on from 3.
	s2 := r.dial(s.cookie)
	s2.inc(4, 4)
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.restored) != 1 || r.restored[0] != 3 || len(r.refused) != 0 {
		t.Errorf("restored %v, refused %v; want restored [3] and nothing refused", r.restored, r.refused)
	}
}

// TestServeRefusesForgedCookie: a cookie whose counter was rewritten does
// not open; the session is aborted and nothing answered.
func TestServeRefusesForgedCookie(t *testing.T) { synctest.Test(t, testServeRefusesForgedCookie) }

func testServeRefusesForgedCookie(t *testing.T) {
	r := newRig(t, &countersvc.Server{})
	s := r.dial(nil)
	s.inc(1, 1)
	forged := bytes.Replace(s.cookie, []byte("counter=1 "), []byte("counter=9 "), 1)
	if bytes.Equal(forged, s.cookie) {
		t.Fatalf("the cookie does not hold the counter in plain: %q", s.cookie)
	}
	rogue := r.dial(forged)
	rogue.send(countersvc.Request(2)) // may find the association gone
	if a, err := rogue.recv(r.ctx); !errors.Is(err, transport.ErrAssociationLost) && !errors.Is(err, transport.ErrPeerClosed) {
		t.Errorf("forged cookie: got %q, %v; want the association aborted", a, err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.refused) != 1 || !errors.Is(r.refused[0], cookie.ErrTampered) || len(r.restored) != 0 {
		t.Errorf("refused %v, restored %v; want one refusal with cookie.ErrTampered", r.refused, r.restored)
	}
}

// TestServeCheck: Ignore reads a request and answers nothing (the next
// one is answered); Abandon answers nothing and leaves the association
// open.
func TestServeCheck(t *testing.T) { synctest.Test(t, testServeCheck) }

func testServeCheck(t *testing.T) {
	verdicts := map[int]countersvc.Verdict{2: countersvc.Ignore, 4: countersvc.Abandon}
	r := newRig(t, &countersvc.Server{Check: func(seq int) countersvc.Verdict { return verdicts[seq] }})
	s := r.dial(nil)
	s.inc(1, 1)
	if err := s.send(countersvc.Request(2)); err != nil {
		t.Fatal(err)
	}
	s.inc(3, 2) // request 2 was not counted
	if err := s.send(countersvc.Request(4)); err != nil {
		t.Fatal(err)
	}
	// Nothing comes, and the association stays up: the wait ends by its
	// own deadline (virtual time: it passes once everything is blocked).
	ctx, cancel := context.WithTimeout(r.ctx, time.Second)
	defer cancel()
	if a, err := s.recv(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("abandoned request: got %q, %v; want nothing, the association open", a, err)
	}
}
