package enrp_test

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

// startPE starts a pool element of pool handle on node: a listener for its
// users on port, advertised in its registration with the registrar at reg.
// It returns once the registrar has accepted the registration.
func startPE(ctx context.Context, node *memnet.Node, reg transport.Addr, handle string, id uint32, port uint16, p policy.Type, v policy.Values) (*asap.PoolElement, transport.Listener, error) {
	ln, err := node.Listen(node.Addr(port))
	if err != nil {
		return nil, nil, err
	}
	ut, err := asap.TransportParam(ln.Addr(), tlv.TransportUseDataOnly)
	if err != nil {
		ln.Close()
		return nil, nil, err
	}
	pe, err := asap.NewPoolElement(asap.PEConfig{
		PoolHandle:    []byte(handle),
		UserTransport: ut,
		Policy:        p,
		PolicyValues:  v,
		PEID:          id,
		Registrars:    []transport.Addr{reg},
	}, node)
	if err != nil {
		ln.Close()
		return nil, nil, err
	}
	if err := pe.Register(ctx); err != nil {
		pe.Close()
		ln.Close()
		return nil, nil, err
	}
	return pe, ln, nil
}

// Embed a registrar in a program: start it on an in-memory network (with
// transport/sctp the code is the same), let a pool element register with
// it (RFC 5352 §3.1) and a pool user resolve the pool handle (§3.5), both
// with package asap.
func Example() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	net := memnet.New(1)
	defer net.Close()

	regNode := net.NewNode() // 10.0.0.1
	r, err := enrp.New(enrp.Config{Transport: regNode, ListenAddr: regNode.Addr(transport.PortASAP)})
	if err != nil {
		fmt.Println(err)
		return
	}
	go r.Run(ctx)
	defer r.Close()

	// A pool element on 10.0.0.2 serving on port 7000.
	pe, ln, err := startPE(ctx, net.NewNode(), r.Addr(), "echo", 0x2a, 7000, policy.RoundRobin, policy.Values{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer ln.Close()
	defer pe.Close()
	fmt.Println("registered:", pe.Registered())

	// A pool user on 10.0.0.3 resolves the handle.
	pu, err := asap.NewPoolUser(asap.PUConfig{Registrars: []transport.Addr{r.Addr()}}, net.NewNode())
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
	for _, p := range pes {
		fmt.Printf("pool %q: PE %v at %v\n", "echo", tlv.PEIdentifier(p.ID), p.UserTransport)
	}
	st := r.Stats()
	fmt.Println("stats:", st.Pools, "pool,", st.PEs, "PE")
	// Output:
	// registered: true
	// pool "echo": PE 0x0000002a at sctp 10.0.0.2:7000
	// stats: 1 pool, 1 PE
}

// The read-only view of the handlespace, for a host's status page: the
// pools with their policies, and each pool's PEs with their home registrar.
func ExampleRegistrar_PoolElements() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	net := memnet.New(1)
	defer net.Close()
	regNode := net.NewNode()
	r, err := enrp.New(enrp.Config{Transport: regNode, ListenAddr: regNode.Addr(transport.PortASAP), ServerID: 0x1234})
	if err != nil {
		fmt.Println(err)
		return
	}
	go r.Run(ctx)
	defer r.Close()

	// Two PEs of pool "db" on 10.0.0.2, with loads of 10% and 20%.
	peNode := net.NewNode()
	for id := uint32(1); id <= 2; id++ {
		pe, ln, err := startPE(ctx, peNode, r.Addr(), "db", id, uint16(5000+id), policy.LeastUsed,
			policy.Values{Load: policy.FromFraction(float64(id) / 10)})
		if err != nil {
			fmt.Println(err)
			return
		}
		defer ln.Close()
		defer pe.Close()
	}

	pools, err := r.Pools(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, p := range pools {
		fmt.Printf("pool %s: policy %v, %d PEs\n", p.Handle, p.Policy, p.PEs)
	}
	pes, err := r.PoolElements(ctx, []byte("db"))
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, p := range pes {
		fmt.Printf("PE %v home %v at %v, owned=%v\n",
			tlv.PEIdentifier(p.PE.ID), tlv.ServerID(p.PE.HomeServerID), p.PE.UserTransport, p.Owned)
	}
	// Output:
	// pool db: policy LeastUsed, 2 PEs
	// PE 0x00000001 home 0x00001234 at sctp 10.0.0.2:5001, owned=true
	// PE 0x00000002 home 0x00001234 at sctp 10.0.0.2:5002, owned=true
}

// Follow the PEs of a registrar with Config.Events: a pool element
// registers and deregisters (RFC 5352 §3.1, §3.3), and each change is told
// with its PE, kind and, for a removal, the reason.
func ExampleConfig_events() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	net := memnet.New(1)
	defer net.Close()

	events := make(chan enrp.Event, 16) // the registrar never waits for it
	regNode := net.NewNode()
	r, err := enrp.New(enrp.Config{Transport: regNode, ListenAddr: regNode.Addr(transport.PortASAP), Events: events})
	if err != nil {
		fmt.Println(err)
		return
	}
	go r.Run(ctx)
	defer r.Close()

	pe, ln, err := startPE(ctx, net.NewNode(), r.Addr(), "echo", 0x2a, 7000, policy.RoundRobin, policy.Values{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer ln.Close()
	defer pe.Close()
	// The registrar puts the event on the channel before its answer
	// leaves, so it is there when Register returns.
	ev := <-events
	fmt.Println(ev)
	fmt.Printf("  home %v: %v\n", ev.PE.HomeServerID == r.ServerID(), ev.PE.UserTransport)

	if err := pe.Deregister(ctx); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(<-events)
	// Output:
	// PE 0x0000002a of pool "echo" registered
	//   home true: sctp 10.0.0.2:7000
	// PE 0x0000002a of pool "echo" removed: deregistered
}
