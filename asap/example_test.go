package asap_test

import (
	"context"
	"fmt"

	"github.com/go-rserpool/rserpool/asap"
	"github.com/go-rserpool/rserpool/enrp"
	"github.com/go-rserpool/rserpool/policy"
	"github.com/go-rserpool/rserpool/tlv"
	"github.com/go-rserpool/rserpool/transport"
	"github.com/go-rserpool/rserpool/transport/memnet"
)

// A pool element registers in pool "echo" with an embedded registrar
// (RFC 5352 §3.1), a pool user resolves the handle (§3.5) and dials the
// PE it selects. Everything runs on an in-memory network; with
// transport/sctp the code is the same.
func Example() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	net := memnet.New(1)
	defer net.Close()

	// The registrar, on 10.0.0.1.
	regNode := net.NewNode()
	reg, err := enrp.New(enrp.Config{Transport: regNode, ListenAddr: regNode.Addr(transport.PortASAP)})
	if err != nil {
		fmt.Println(err)
		return
	}
	go reg.Run(ctx)
	defer reg.Close()

	// The pool element, on 10.0.0.2: a listener for its users, and a PE
	// that advertises it.
	peNode := net.NewNode()
	ln, err := peNode.Listen(peNode.Addr(7000))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer ln.Close()
	ut, err := asap.TransportParam(ln.Addr(), tlv.TransportUseDataOnly)
	if err != nil {
		fmt.Println(err)
		return
	}
	pe, err := asap.NewPoolElement(asap.PEConfig{
		PoolHandle:    []byte("echo"),
		UserTransport: ut,
		Policy:        policy.LeastUsed,
		PolicyValues:  policy.Values{Load: policy.FromFraction(0.25)},
		PEID:          0x2a, // 0 picks a random one
		Registrars:    []transport.Addr{reg.Addr()},
	}, peNode)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer pe.Close()
	if err := pe.Register(ctx); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("registered:", pe.Registered())

	// The PE's service: answer one message.
	served := make(chan error, 1)
	go func() {
		c, err := ln.Accept(ctx)
		if err != nil {
			served <- err
			return
		}
		defer c.Close()
		m, err := c.Recv(ctx)
		if err == nil {
			m.Data = append([]byte("echo: "), m.Data...)
			err = c.Send(ctx, m)
		}
		served <- err
	}()

	// The pool user, on 10.0.0.3.
	pu, err := asap.NewPoolUser(asap.PUConfig{Registrars: []transport.Addr{reg.Addr()}}, net.NewNode())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer pu.Close()
	pes, err := pu.Resolve(ctx, []byte("echo"))
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, e := range pes {
		fmt.Printf("PE %v at %v\n", tlv.PEIdentifier(e.ID), e.UserTransport)
	}

	conn, elem, err := pu.Dial(ctx, []byte("echo")) // fails over past PEs that do not answer
	if err != nil {
		fmt.Println(err)
		return
	}
	defer conn.Close()
	// Application data; PPID 0 is "unspecified" (RFC 9260 §3.3.1).
	if err := conn.Send(ctx, transport.Message{PPID: 0, Data: []byte("hello")}); err != nil {
		fmt.Println(err)
		return
	}
	m, err := conn.Recv(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("PE %v answered %q\n", tlv.PEIdentifier(elem.ID), m.Data)
	if err := <-served; err != nil {
		fmt.Println(err)
	}

	if err := pe.Deregister(ctx); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("registered:", pe.Registered())
	// Output:
	// registered: true
	// PE 0x0000002a at sctp 10.0.0.2:7000
	// PE 0x0000002a answered "echo: hello"
	// registered: false
}
