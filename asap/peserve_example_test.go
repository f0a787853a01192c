package asap_test

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/go-rserpool/rserpool/asap"
	"github.com/go-rserpool/rserpool/asap/cookie"
	"github.com/go-rserpool/rserpool/enrp"
	"github.com/go-rserpool/rserpool/transport"
	"github.com/go-rserpool/rserpool/transport/memnet"
)

// Two pool elements serve a counter as sessions (RFC 5352 §3.9-3.11),
// and a pool user uses it with PoolUser.Connect. After each request the PE
// sends the new count in a sealed cookie (ASAP_COOKIE), then the answer; a
// session that begins with an ASAP_COOKIE_ECHO starts from the count in
// it. When the session's PE shuts down (Close: deregister, then close its
// sessions) the session fails over to the other PE, echoes the latest
// cookie first, and the count carries on. Everything runs on an in-memory
// network.
func ExampleSessionServer() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	net := memnet.New(1)
	defer net.Close()
	regNode := net.NewNode()
	reg, err := enrp.New(enrp.Config{Transport: regNode, ListenAddr: regNode.Addr(transport.PortASAP)})
	if err != nil {
		fmt.Println(err)
		return
	}
	go reg.Run(ctx)
	defer reg.Close()

	// The pool elements: listen, register, accept sessions.
	sealer, err := cookie.New(cookie.Config{Keys: []cookie.Key{{ID: 1, Secret: bytes.Repeat([]byte{1}, 32)}}, MaxAge: time.Minute})
	if err != nil {
		fmt.Println(err)
		return
	}
	servers := map[uint32]*asap.SessionServer{}
	for range 2 {
		node := net.NewNode()
		srv, err := asap.NewSessionServer(asap.SessionServerConfig{
			PE:         asap.PEConfig{PoolHandle: []byte("counter"), Registrars: []transport.Addr{reg.Addr()}},
			ListenAddr: node.Addr(7000),
		}, node)
		if err != nil {
			fmt.Println(err)
			return
		}
		defer srv.Close() // deregisters, then closes every session
		if err := srv.Register(ctx); err != nil {
			fmt.Println(err)
			return
		}
		servers[srv.PoolElement().ID()] = srv
		go func() {
			for {
				s, err := srv.Accept(ctx)
				if err != nil {
					return
				}
				go serveCounter(ctx, s, sealer)
			}
		}()
	}

	// The pool user: a session with the pool, and requests on it.
	pu, err := asap.NewPoolUser(asap.PUConfig{Registrars: []transport.Addr{reg.Addr()}}, net.NewNode())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer pu.Close()
	events := make(chan asap.SessionEvent, 8)
	s, err := pu.Connect(ctx, []byte("counter"), asap.SessionConfig{Events: events})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer s.Close()
	request := func() {
		m, err := s.Request(ctx, transport.Message{Data: []byte("incr")})
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Println("count", string(m.Data))
	}
	request()
	request()

	first, _ := s.PE()
	servers[first.ID].Close() // the session's PE leaves
	for e := range events {
		if fe, ok := e.(asap.FailoverEvent); ok {
			fmt.Printf("failover: %v, cookie echoed: %v, reported: %v\n", fe.Reason, fe.CookieEchoed, s.Stats().Unreachable > 0)
			break
		}
	}
	request() // the other PE, from the echoed cookie
	// Output:
	// count 1
	// count 2
	// failover: closed by PE, cookie echoed: true, reported: false
	// count 3
}

// serveCounter is the PE's service: one counter per session, restored
// from the cookie the pool user echoed, saved in a new cookie after each
// request.
func serveCounter(ctx context.Context, s *asap.PESession, sealer *cookie.Sealer) {
	defer s.Close()
	n := 0
	if echo := s.CookieEcho(); echo != nil {
		state, err := sealer.Open(echo)
		if err != nil {
			return // tampered, foreign or expired: refuse the session
		}
		n, _ = strconv.Atoi(string(state))
	}
	for {
		m, err := s.Recv(ctx)
		if err != nil {
			return
		}
		n++
		// The cookie first, then the answer (both on stream 0): when the
		// answer arrives, the pool user holds the state that includes it,
		// and a crash between the two loses nothing the user was told.
		sealed, err := sealer.Seal([]byte(strconv.Itoa(n)))
		if err == nil {
			s.SendCookie(ctx, sealed)
		}
		s.Send(ctx, transport.Message{PPID: m.PPID, Stream: 0, Data: []byte(strconv.Itoa(n))})
	}
}
