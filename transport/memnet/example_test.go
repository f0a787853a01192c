package memnet_test

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/go-rserpool/rserpool/asap"
	"github.com/go-rserpool/rserpool/enrp"
	"github.com/go-rserpool/rserpool/tlv"
	"github.com/go-rserpool/rserpool/transport"
	"github.com/go-rserpool/rserpool/transport/memnet"
)

// echoService is a host's own pool element: code that takes a
// transport.Transport, so that production passes sctp.New(...) and the
// host's unit test passes a memnet node.
type echoService struct {
	pe   *asap.PoolElement
	ln   transport.Listener
	done sync.WaitGroup
}

func startEcho(ctx context.Context, tr transport.Transport, at transport.Addr, registrar transport.Addr) (*echoService, error) {
	ln, err := tr.Listen(at)
	if err != nil {
		return nil, err
	}
	ut, err := asap.TransportParam(ln.Addr(), tlv.TransportUseDataOnly)
	if err != nil {
		ln.Close()
		return nil, err
	}
	pe, err := asap.NewPoolElement(asap.PEConfig{
		PoolHandle: []byte("echo"), UserTransport: ut, PEID: 0x2a,
		Registrars: []transport.Addr{registrar},
	}, tr)
	if err != nil {
		ln.Close()
		return nil, err
	}
	s := &echoService{pe: pe, ln: ln}
	s.done.Go(func() {
		for {
			c, err := ln.Accept(context.Background())
			if err != nil {
				return // the listener closed
			}
			s.done.Go(func() {
				defer c.Close()
				for {
					m, err := c.Recv(context.Background())
					if err != nil {
						return
					}
					if c.Send(context.Background(), m) != nil {
						return
					}
				}
			})
		}
	})
	if err := pe.Register(ctx); err != nil {
		s.Stop(ctx)
		return nil, err
	}
	return s, nil
}

// Stop deregisters the PE, then stops serving.
func (s *echoService) Stop(ctx context.Context) error {
	err := s.pe.Deregister(ctx)
	if errors.Is(err, asap.ErrNotRegistered) {
		err = nil
	}
	s.pe.Close()
	s.ln.Close()
	s.done.Wait()
	return err
}

// A host's unit test of its own pool element: a registrar and the PE on
// an in-memory network, a pool user checking what the PE answers, and the
// registrar's events checking the PE's registration and deregistration.
// Nothing sleeps: each step waits for its result.
func Example() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	net := memnet.New(1) // the seed drives loss and jitter, none here
	defer net.Close()

	events := make(chan enrp.Event, 8)
	regNode := net.NewNode() // 10.0.0.1
	reg, err := enrp.New(enrp.Config{Transport: regNode, ListenAddr: regNode.Addr(transport.PortASAP), Events: events})
	if err != nil {
		fmt.Println(err)
		return
	}
	go reg.Run(ctx)
	defer reg.Close()

	peNode := net.NewNode() // 10.0.0.2
	svc, err := startEcho(ctx, peNode, peNode.Addr(7000), reg.Addr())
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(<-events) // on the channel before Register returned

	pu, err := asap.NewPoolUser(asap.PUConfig{Registrars: []transport.Addr{reg.Addr()}}, net.NewNode())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer pu.Close()
	conn, pe, err := pu.Dial(ctx, []byte("echo"))
	if err != nil {
		fmt.Println(err)
		return
	}
	conn.Send(ctx, transport.Message{Data: []byte("ping")})
	m, err := conn.Recv(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("%q from %v (PE %v)\n", m.Data, conn.RemoteAddr(), tlv.PEIdentifier(pe.ID))
	conn.Close()

	if err := svc.Stop(ctx); err != nil {
		fmt.Println(err)
	}
	fmt.Println(<-events)
	fmt.Println("PEs left:", reg.Stats().PEs)
	// Output:
	// PE 0x0000002a of pool "echo" registered
	// "ping" from mem:10.0.0.2:7000 (PE 0x0000002a)
	// PE 0x0000002a of pool "echo" removed: deregistered
	// PEs left: 0
}
