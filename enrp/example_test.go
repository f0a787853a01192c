package enrp_test

import (
	"context"
	"fmt"
	"net/netip"

	"github.com/go-rserpool/rserpool/enrp"
	"github.com/go-rserpool/rserpool/policy"
	"github.com/go-rserpool/rserpool/tlv"
	"github.com/go-rserpool/rserpool/transport"
	"github.com/go-rserpool/rserpool/transport/memnet"
)

// exchange sends one ASAP message on c and returns the answer.
func exchange(ctx context.Context, c transport.Conn, m tlv.ASAPMessage) (tlv.ASAPMessage, error) {
	b, err := tlv.Marshal(m)
	if err != nil {
		return nil, err
	}
	if err := c.Send(ctx, transport.Message{PPID: transport.PPIDASAP, Data: b}); err != nil {
		return nil, err
	}
	in, err := c.Recv(ctx)
	if err != nil {
		return nil, err
	}
	return tlv.ParseASAP(in.Data)
}

// Start a registrar on an in-memory network, register a pool element with
// a hand-built ASAP_REGISTRATION (RFC 5352 §3.2), and resolve the pool
// handle as a pool user would (§3.5).
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
	peNode := net.NewNode()
	pe, err := peNode.Dial(ctx, r.Addr())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer pe.Close()
	resp, err := exchange(ctx, pe, &tlv.Registration{
		PoolHandle: tlv.PoolHandle("echo"),
		PE: tlv.PoolElement{
			ID:               42,
			RegistrationLife: 60000, // ms
			UserTransport:    tlv.NewSCTPTransport(7000, tlv.TransportUseDataOnly, peNode.IP()),
			Policy:           policy.Encode(policy.RoundRobin, policy.Values{}),
		},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	rr := resp.(*tlv.RegistrationResponse)
	fmt.Printf("registration of PE %d: rejected=%v\n", rr.PEID, rr.Reject)

	// A pool user resolves the handle.
	pu, err := net.NewNode().Dial(ctx, r.Addr())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer pu.Close()
	resp, err = exchange(ctx, pu, &tlv.HandleResolution{PoolHandle: tlv.PoolHandle("echo")})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, p := range resp.(*tlv.HandleResolutionResponse).PEs {
		fmt.Printf("pool %q: PE %d at %v\n", "echo", p.ID, p.UserTransport.AddrPorts()[0])
	}
	fmt.Println("stats:", r.Stats().Pools, "pool,", r.Stats().PEs, "PE")
	// Output:
	// registration of PE 42: rejected=false
	// pool "echo": PE 42 at 10.0.0.2:7000
	// stats: 1 pool, 1 PE
}

// The read-only view of the handlespace, for a host's status page.
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

	peNode := net.NewNode()
	pe, _ := peNode.Dial(ctx, r.Addr())
	defer pe.Close()
	for id := uint32(1); id <= 2; id++ {
		exchange(ctx, pe, &tlv.Registration{
			PoolHandle: tlv.PoolHandle("db"),
			PE: tlv.PoolElement{
				ID: id, RegistrationLife: 60000,
				UserTransport: tlv.NewSCTPTransport(uint16(5000+id), tlv.TransportUseDataOnly, netip.MustParseAddr("0.0.0.0")),
				Policy:        policy.Encode(policy.LeastUsed, policy.Values{Load: id * 1000}),
			},
		})
	}
	pools, _ := r.Pools(ctx)
	for _, p := range pools {
		fmt.Printf("pool %s: policy %v, %d PEs\n", p.Handle, p.Policy, p.PEs)
	}
	pes, _ := r.PoolElements(ctx, []byte("db"))
	for _, p := range pes {
		fmt.Printf("PE %d home %#x at %v, owned=%v\n", p.PE.ID, p.PE.HomeServerID, p.PE.UserTransport.AddrPorts()[0], p.Owned)
	}
	// Output:
	// pool db: policy LeastUsed, 2 PEs
	// PE 1 home 0x1234 at 10.0.0.2:5001, owned=true
	// PE 2 home 0x1234 at 10.0.0.2:5002, owned=true
}

// Follow the PEs of a registrar with Config.Events: a registration and a
// deregistration (RFC 5352 §3.2, §3.4), each told with its PE, kind and,
// for a removal, the reason.
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

	peNode := net.NewNode()
	pe, err := peNode.Dial(ctx, r.Addr())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer pe.Close()
	for _, m := range []tlv.ASAPMessage{
		&tlv.Registration{PoolHandle: tlv.PoolHandle("echo"), PE: tlv.PoolElement{
			ID: 42, RegistrationLife: 60000,
			UserTransport: tlv.NewSCTPTransport(7000, tlv.TransportUseDataOnly, peNode.IP()),
			Policy:        policy.Encode(policy.RoundRobin, policy.Values{}),
		}},
		&tlv.Deregistration{PoolHandle: tlv.PoolHandle("echo"), PEID: 42},
	} {
		if _, err := exchange(ctx, pe, m); err != nil {
			fmt.Println(err)
			return
		}
		// The event is on the channel before the answer leaves.
		ev := <-events
		fmt.Println(ev)
		if ev.Kind == enrp.EventRegistered {
			fmt.Printf("  home %v: %v\n", ev.PE.HomeServerID == r.ServerID(), ev.PE.UserTransport.Addrs)
		}
	}
	// Output:
	// PE 0x0000002a of pool "echo" registered
	//   home true: [10.0.0.2]
	// PE 0x0000002a of pool "echo" removed: deregistered
}
