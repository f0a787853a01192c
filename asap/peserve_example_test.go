package asap_test

import (
	"bytes"
	"context"
	"fmt"
	"strconv"

	"github.com/go-rserpool/rserpool/asap"
	"github.com/go-rserpool/rserpool/asap/cookie"
	"github.com/go-rserpool/rserpool/enrp"
	"github.com/go-rserpool/rserpool/tlv"
	"github.com/go-rserpool/rserpool/transport"
	"github.com/go-rserpool/rserpool/transport/memnet"
)

// A pool element serves a counter as sessions (RFC 5352 §3.9-3.11): after
// each request it sends the pool user the new count in a sealed cookie
// (ASAP_COOKIE), and a session that begins with an ASAP_COOKIE_ECHO
// starts from the count in it. The pool user here is written by hand: it
// keeps the latest cookie and echoes it first when it connects again, as
// a pool user does after a failover.
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

	// The pool element: listen, register, accept sessions.
	sealer, err := cookie.New(cookie.Config{Keys: []cookie.Key{{ID: 1, Secret: bytes.Repeat([]byte{1}, 32)}}})
	if err != nil {
		fmt.Println(err)
		return
	}
	peNode := net.NewNode()
	srv, err := asap.NewSessionServer(asap.SessionServerConfig{
		PE:         asap.PEConfig{PoolHandle: []byte("counter"), Registrars: []transport.Addr{reg.Addr()}},
		ListenAddr: peNode.Addr(7000),
	}, peNode)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer srv.Close() // deregisters, then closes every session
	if err := srv.Register(ctx); err != nil {
		fmt.Println(err)
		return
	}
	go func() {
		for {
			s, err := srv.Accept(ctx)
			if err != nil {
				return
			}
			go serveCounter(ctx, s, sealer)
		}
	}()

	// The pool user: resolve, connect, two requests; then again with
	// the cookie it kept.
	pu, err := asap.NewPoolUser(asap.PUConfig{Registrars: []transport.Addr{reg.Addr()}}, net.NewNode())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer pu.Close()
	var kept []byte
	for round := 1; round <= 2; round++ {
		conn, _, err := pu.Dial(ctx, []byte("counter"))
		if err != nil {
			fmt.Println(err)
			return
		}
		if kept != nil {
			echo, _ := tlv.Marshal(&tlv.CookieEcho{Cookie: kept})
			conn.Send(ctx, transport.Message{PPID: transport.PPIDASAP, Data: echo})
		}
		for range 2 {
			conn.Send(ctx, transport.Message{Data: []byte("incr")})
			for { // the cookie on PPID 11, then the answer it covers
				m, err := conn.Recv(ctx)
				if err != nil {
					fmt.Println(err)
					return
				}
				if m.PPID != transport.PPIDASAP {
					fmt.Printf("connection %d: count %s\n", round, m.Data)
					break
				}
				msg, err := tlv.ParseASAP(m.Data)
				if c, ok := msg.(*tlv.CookieMessage); err == nil && ok {
					kept = bytes.Clone(c.Cookie)
				}
			}
		}
		conn.Close()
	}
	// Output:
	// connection 1: count 1
	// connection 1: count 2
	// connection 2: count 3
	// connection 2: count 4
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
