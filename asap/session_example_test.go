package asap_test

import (
	"context"
	"fmt"
	"strconv"
	"sync"

	"github.com/go-rserpool/rserpool/asap"
	"github.com/go-rserpool/rserpool/enrp"
	"github.com/go-rserpool/rserpool/tlv"
	"github.com/go-rserpool/rserpool/transport"
	"github.com/go-rserpool/rserpool/transport/memnet"
)

// counterPE is a stateful service written with the bare transport: each
// "inc" adds one to a counter that lives only in the cookie the PE sends
// before its answer (ASAP_COOKIE on PPID 11, RFC 5352 §3.9); a
// COOKIE_ECHO restores it (§3.10).
func counterPE(ctx context.Context, ln transport.Listener, wg *sync.WaitGroup, conns chan<- transport.Conn) {
	defer wg.Done()
	for {
		c, err := ln.Accept(ctx)
		if err != nil {
			return
		}
		conns <- c
		wg.Add(1)
		go func() {
			defer wg.Done()
			n := 0
			for {
				m, err := c.Recv(ctx)
				if err != nil {
					return
				}
				if m.PPID == transport.PPIDASAP {
					if msg, err := tlv.ParseASAP(m.Data); err == nil {
						if e, ok := msg.(*tlv.CookieEcho); ok {
							n, _ = strconv.Atoi(string(e.Cookie))
						}
					}
					continue
				}
				n++
				ck, _ := tlv.Marshal(&tlv.CookieMessage{Cookie: strconv.AppendInt(nil, int64(n), 10)})
				c.Send(ctx, transport.Message{PPID: transport.PPIDASAP, Data: ck})
				c.Send(ctx, transport.Message{Data: strconv.AppendInt(nil, int64(n), 10)})
			}
		}()
	}
}

// A pool user's session with pool "counter" (RFC 5352 §3.9-3.11): two PEs
// register with an embedded registrar; the session's PE keeps the
// session's state in a cookie; when that PE crashes the session fails
// over, echoes the latest cookie to the other PE, and the next request
// carries on from the state the cookie holds. Everything runs on an
// in-memory network.
func ExamplePoolUser_Connect() {
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

	// Two PEs: a listener with the counter service each, advertised as
	// "data plus control" (RFC 5354 §3.4): cookies travel beside the data.
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	type server struct {
		ln    transport.Listener
		pe    *asap.PoolElement
		conns chan transport.Conn
	}
	servers := map[uint32]*server{}
	for _, id := range []uint32{1, 2} {
		node := net.NewNode()
		ln, err := node.Listen(node.Addr(7000))
		if err != nil {
			fmt.Println(err)
			return
		}
		ut, _ := asap.TransportParam(ln.Addr(), tlv.TransportUseDataPlusControl)
		pe, err := asap.NewPoolElement(asap.PEConfig{PoolHandle: []byte("counter"), UserTransport: ut, PEID: id,
			Registrars: []transport.Addr{reg.Addr()}}, node)
		if err != nil {
			fmt.Println(err)
			return
		}
		defer pe.Close()
		if err := pe.Register(ctx); err != nil {
			fmt.Println(err)
			return
		}
		srv := &server{ln: ln, pe: pe, conns: make(chan transport.Conn, 8)}
		servers[id] = srv
		wg.Add(1)
		go counterPE(ctx, ln, &wg, srv.conns)
		defer ln.Close()
	}

	pu, err := asap.NewPoolUser(asap.PUConfig{Registrars: []transport.Addr{reg.Addr()}}, net.NewNode())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer pu.Close()
	events := make(chan asap.SessionEvent, 16)
	s, err := pu.Connect(ctx, []byte("counter"), asap.SessionConfig{Events: events})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer s.Close()

	request := func() {
		m, err := s.Request(ctx, transport.Message{Data: []byte("inc")})
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Printf("counter: %s, cookie: %s\n", m.Data, s.Cookie())
	}
	request()
	request()

	// The session's PE crashes: its listener closes, its associations abort.
	first, _ := s.PE()
	srv := servers[first.ID]
	srv.ln.Close()
	srv.pe.Close()
	for len(srv.conns) > 0 {
		(<-srv.conns).Abort()
	}

	for e := range events {
		if fe, ok := e.(asap.FailoverEvent); ok {
			fmt.Printf("failover: %v, to the other PE: %v, cookie echoed: %v\n", fe.Reason, fe.New.ID != first.ID, fe.CookieEchoed)
			break
		}
	}
	request() // answered by the other PE, from the echoed cookie
	fmt.Println("failovers:", s.Stats().Failovers)
	// Output:
	// counter: 1, cookie: 1
	// counter: 2, cookie: 2
	// failover: association lost, to the other PE: true, cookie echoed: true
	// counter: 3, cookie: 3
	// failovers: 1
}
