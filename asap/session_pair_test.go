package asap_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"testing/synctest"

	"github.com/go-rserpool/rserpool/asap"
	"github.com/go-rserpool/rserpool/transport"
)

// pairPE is what pairServe serves.
type pairPE struct {
	mu   sync.Mutex
	open []*asap.PESession
}

// crash aborts every session (as a PE process that dies), leaving the PE
// registered.
func (p *pairPE) crash() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, s := range p.open {
		s.Abort()
	}
}

// sessions returns the sessions accepted so far.
func (p *pairPE) sessions() []*asap.PESession {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.open)
}

// pairServe runs srv's sessions until the test ends: each request is
// answered with "pe=<ID> <request>"; after the answer the session is
// closed gracefully when closeAfter is set.
func pairServe(t *testing.T, srv *asap.SessionServer, closeAfter bool) *pairPE {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); <-done })
	p := &pairPE{}
	go func() {
		defer close(done)
		for {
			s, err := srv.Accept(ctx)
			if err != nil {
				return
			}
			p.mu.Lock()
			p.open = append(p.open, s)
			p.mu.Unlock()
			go func() {
				defer s.Close()
				for {
					m, err := s.Recv(ctx)
					if err != nil {
						return
					}
					if s.Send(ctx, transport.Message{Data: fmt.Appendf(nil, "pe=%d %s", srv.PoolElement().ID(), m.Data)}) != nil || closeAfter {
						return
					}
				}
			}()
		}
	}()
	return p
}

// pairPU is a pool user of the rig's registrar, closed when the test ends.
func (r *peRig) pairPU(t *testing.T) *asap.PoolUser {
	t.Helper()
	pu, err := asap.NewPoolUser(asap.PUConfig{Registrars: []transport.Addr{r.reg.Addr()}}, r.net.NewNode())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pu.Close() })
	return pu
}

// failovers drains the FailoverEvents queued on ch.
func failovers(ch <-chan asap.SessionEvent) []asap.FailoverEvent {
	var l []asap.FailoverEvent
	for {
		select {
		case e := <-ch:
			if fe, ok := e.(asap.FailoverEvent); ok {
				l = append(l, fe)
			}
		default:
			return l
		}
	}
}

// A PE that ends its sessions gracefully (SHUTDOWN, transport.ErrPeerClosed)
// is alive: the session moves to another PE without reporting it
// unreachable (RFC 5352 §3.5 is for a PE that cannot be reached), and the
// registrar counts no report. The same holds for SessionServer.Close,
// which deregisters and then closes its sessions. A PE that crashes
// (ABORT) is still reported.
func TestSessionPEClosesGracefullyNotReported(t *testing.T) {
	peTest(t, func(t *testing.T, r *peRig) {
		srvs := []*asap.SessionServer{r.server(nil), r.server(nil)}
		for _, srv := range srvs {
			if err := srv.Register(t.Context()); err != nil {
				t.Fatal(err)
			}
			pairServe(t, srv, true)
		}
		pu := r.pairPU(t)
		events := make(chan asap.SessionEvent, 64)
		s, err := pu.Connect(t.Context(), []byte("kv"), asap.SessionConfig{Events: events})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		for i := range 4 {
			if _, err := s.Request(t.Context(), transport.Message{Data: fmt.Appendf(nil, "q%d", i)}); err != nil {
				t.Fatalf("request %d: %v", i, err)
			}
			synctest.Wait() // the PE's close reaches the session
		}
		if _, err := s.Request(t.Context(), transport.Message{Data: []byte("last")}); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		fes := failovers(events)
		if len(fes) < 4 {
			t.Fatalf("%d failovers after 5 requests on PEs that close each session, want at least 4", len(fes))
		}
		for _, fe := range fes {
			if fe.Reason != asap.ReasonPeerClosed || fe.Err != nil {
				t.Errorf("failover %+v, want reason %v without error", fe, asap.ReasonPeerClosed)
			}
		}
		reports := func() int {
			n := 0
			for _, srv := range srvs {
				pes, err := r.reg.PoolElements(t.Context(), []byte("kv"))
				if err != nil {
					t.Fatal(err)
				}
				for _, pe := range pes {
					if pe.PE.ID == srv.PoolElement().ID() {
						n += pe.UnreachableReports
					}
				}
			}
			return n
		}
		if st, n := s.Stats().Unreachable, reports(); st != 0 || n != 0 || pu.Stats().Unreachable != 0 {
			t.Errorf("healthy PEs that close sessions: session reported %d, pool user %d, registrar counted %d; want 0",
				st, pu.Stats().Unreachable, n)
		}

		// SessionServer.Close: deregister, then close every session.
		s2, err := pu.Connect(t.Context(), []byte("kv"), asap.SessionConfig{Events: events})
		if err != nil {
			t.Fatal(err)
		}
		defer s2.Close()
		srv3 := r.server(nil)
		if err := srv3.Register(t.Context()); err != nil {
			t.Fatal(err)
		}
		pe3 := pairServe(t, srv3, false)
		before := pu.Stats().Unreachable
		for _, srv := range srvs {
			srv.Close()
		}
		synctest.Wait()
		if _, err := s2.Request(t.Context(), transport.Message{Data: []byte("after close")}); err != nil {
			t.Fatal(err)
		}
		if pe, ok := s2.PE(); !ok || pe.ID != srv3.PoolElement().ID() {
			t.Fatalf("session on PE %v (up %v), want the remaining PE %v", pe.ID, ok, srv3.PoolElement().ID())
		}
		if n := pu.Stats().Unreachable - before; n != 0 {
			t.Errorf("SessionServer.Close made the pool user report %d times, want 0", n)
		}

		// A crash (every association aborted) is reported.
		srv4 := r.server(nil)
		if err := srv4.Register(t.Context()); err != nil {
			t.Fatal(err)
		}
		pairServe(t, srv4, false)
		failovers(events)
		before = s2.Stats().Unreachable
		pe3.crash()
		synctest.Wait()
		if _, err := s2.Request(t.Context(), transport.Message{Data: []byte("after crash")}); err != nil {
			t.Fatal(err)
		}
		fes = failovers(events)
		if len(fes) != 1 || fes[0].Reason != asap.ReasonAssociationLost {
			t.Errorf("failovers after a crash: %+v, want one for a lost association", fes)
		}
		if n := s2.Stats().Unreachable - before; n != 1 {
			t.Errorf("a crashed PE reported %d times by the session, want 1", n)
		}
	})
}

// Over an authenticating transport (memnet's test identities here, SCTP
// over DTLS in production) each side of a session sees who the other is
// (transport.PeerIdentifier): the PE its pool user, to authorise it or to
// bind a cookie to it (RFC 5355 §4), and the session the PE it is on now,
// following it over a failover.
func TestSessionPeerIdentity(t *testing.T) {
	peTest(t, func(t *testing.T, r *peRig) {
		name := map[uint32]string{}
		served := map[uint32]*pairPE{}
		for _, n := range []string{"pe1.example", "pe2.example"} {
			nd := r.net.NewNode()
			nd.SetIdentity(transport.Identity{Name: n})
			srv, err := asap.NewSessionServer(asap.SessionServerConfig{
				PE:         asap.PEConfig{PoolHandle: []byte("kv"), Registrars: []transport.Addr{r.reg.Addr()}},
				ListenAddr: nd.Addr(7000),
			}, nd)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { srv.Close() })
			if err := srv.Register(t.Context()); err != nil {
				t.Fatal(err)
			}
			name[srv.PoolElement().ID()] = n
			served[srv.PoolElement().ID()] = pairServe(t, srv, false)
		}
		puNode := r.net.NewNode()
		puNode.SetIdentity(transport.Identity{Name: "pu.example"})
		pu, err := asap.NewPoolUser(asap.PUConfig{Registrars: []transport.Addr{r.reg.Addr()}}, puNode)
		if err != nil {
			t.Fatal(err)
		}
		defer pu.Close()
		s, err := pu.Connect(t.Context(), []byte("kv"), asap.SessionConfig{})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		var _ transport.PeerIdentifier = s
		if _, err := s.Request(t.Context(), transport.Message{Data: []byte("who")}); err != nil {
			t.Fatal(err)
		}
		first, _ := s.PE()
		if id, ok := s.PeerIdentity(); !ok || id.Name != name[first.ID] {
			t.Fatalf("Session.PeerIdentity on PE %v = %v, %v; want %s", first.ID, id, ok, name[first.ID])
		}
		ps := served[first.ID].sessions()
		var _ transport.PeerIdentifier = ps[0]
		if id, ok := ps[0].PeerIdentity(); len(ps) != 1 || !ok || id.Name != "pu.example" {
			t.Fatalf("PESession.PeerIdentity = %v, %v; want pu.example", id, ok)
		}
		served[first.ID].crash()
		synctest.Wait()
		if _, err := s.Request(t.Context(), transport.Message{Data: []byte("who now")}); err != nil {
			t.Fatal(err)
		}
		now, ok := s.PE()
		if !ok || now.ID == first.ID {
			t.Fatalf("after the crash on PE %v (up %v)", now.ID, ok)
		}
		if id, ok := s.PeerIdentity(); !ok || id.Name != name[now.ID] {
			t.Errorf("Session.PeerIdentity after the failover = %v, %v; want %s", id, ok, name[now.ID])
		}
		s.Close()
		if id, ok := s.PeerIdentity(); ok {
			t.Errorf("Session.PeerIdentity after Close = %v, true", id)
		}
	})
}

// A PE that sends the cookie before the answer it covers (as
// PESession.SendCookie says) leaves the session holding the state of
// every answered request: Session.Cookie right after Session.Request is
// never stale.
func TestSessionCookieBeforeAnswerIsCurrent(t *testing.T) {
	peTest(t, func(t *testing.T, r *peRig) {
		srv := r.server(nil)
		if err := srv.Register(t.Context()); err != nil {
			t.Fatal(err)
		}
		go func() {
			for {
				ps, err := srv.Accept(t.Context())
				if err != nil {
					return
				}
				go func() {
					defer ps.Close()
					for n := 1; ; n++ {
						if _, err := ps.Recv(t.Context()); err != nil {
							return
						}
						state := fmt.Appendf(nil, "n=%d", n)
						if ps.SendCookie(t.Context(), state) != nil || ps.Send(t.Context(), transport.Message{Data: state}) != nil {
							return
						}
					}
				}()
			}
		}()
		events := make(chan asap.SessionEvent, 1)
		s, err := r.pairPU(t).Connect(t.Context(), []byte("kv"), asap.SessionConfig{Events: events})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		// The event's cookie is the host's to change: the session's copy
		// stays as it was.
		if _, err := s.Request(t.Context(), transport.Message{Data: []byte("inc")}); err != nil {
			t.Fatal(err)
		}
		ev := (<-events).(asap.SessionCookieReceived)
		copy(ev.Cookie, "XXX")
		if got := string(s.Cookie()); got != "n=1" {
			t.Fatalf("Session.Cookie after the host changed the event's cookie = %q, want n=1", got)
		}
		stale := 0
		for range 200 {
			m, err := s.Request(t.Context(), transport.Message{Data: []byte("inc")})
			if err != nil {
				t.Fatal(err)
			}
			if string(s.Cookie()) != string(m.Data) {
				stale++
			}
		}
		if stale != 0 {
			t.Errorf("%d of 200 answers came with a stale Session.Cookie, want 0", stale)
		}
	})
}

// Session.Close shuts the PE's association down gracefully (the PE sees
// transport.ErrPeerClosed); Session.Abort drops it at once (ABORT, RFC
// 9260 §9.1: the PE sees transport.ErrAssociationLost). Both end the
// session; neither reports the PE.
func TestSessionCloseAndAbort(t *testing.T) {
	peTest(t, func(t *testing.T, r *peRig) {
		srv := r.server(nil)
		if err := srv.Register(t.Context()); err != nil {
			t.Fatal(err)
		}
		pu := r.pairPU(t)
		for _, tc := range []struct {
			name string
			end  func(*asap.Session) error
			want error
		}{
			{"Close", (*asap.Session).Close, transport.ErrPeerClosed},
			{"Abort", (*asap.Session).Abort, transport.ErrAssociationLost},
		} {
			s, err := pu.Connect(t.Context(), []byte("kv"), asap.SessionConfig{})
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Send(t.Context(), transport.Message{Data: []byte("hi")}); err != nil {
				t.Fatal(err)
			}
			ps := accept(t, srv)
			recv(t, ps)
			if err := tc.end(s); err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			if _, err := ps.Recv(t.Context()); !errors.Is(err, tc.want) {
				t.Errorf("%s: the PE's Recv = %v, want %v", tc.name, err, tc.want)
			}
			if err := s.Send(t.Context(), transport.Message{Data: []byte("x")}); !errors.Is(err, asap.ErrClosed) {
				t.Errorf("%s: Send after = %v, want ErrClosed", tc.name, err)
			}
			if err := tc.end(s); err != nil {
				t.Errorf("%s twice: %v", tc.name, err)
			}
		}
		if n := pu.Stats().Unreachable; n != 0 {
			t.Errorf("%d reports, want 0", n)
		}
	})
}
