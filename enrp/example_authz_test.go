package enrp_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/go-rserpool/rserpool/asap"
	"github.com/go-rserpool/rserpool/enrp"
	"github.com/go-rserpool/rserpool/policy"
	"github.com/go-rserpool/rserpool/transport"
	"github.com/go-rserpool/rserpool/transport/memnet"
)

// Authorize pool elements and pool users by the identities their
// associations verified (RFC 5355, RFC 5352 §6): only hosts of
// pe.example.org may register in "echo", only those of pu.example.org may
// resolve it. memnet's test identities stand in for the certificates a
// secured transport (SCTP over DTLS) verifies; the code is the same.
func ExampleNamePolicy() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	net := memnet.New(1)
	defer net.Close()
	node := func(name string) *memnet.Node {
		nd := net.NewNode()
		nd.SetIdentity(transport.Identity{Name: name})
		return nd
	}

	regNode := node("reg.example.org")
	cfg := enrp.Config{Transport: regNode, ListenAddr: regNode.Addr(transport.PortASAP)}
	p := enrp.NamePolicy{
		Register: enrp.PoolACL{Pools: map[string][]string{"echo": {"*.pe.example.org"}}},
		Resolve:  enrp.PoolACL{Pools: map[string][]string{"echo": {"*.pu.example.org"}}},
	}
	if err := p.Apply(&cfg); err != nil {
		fmt.Println(err)
		return
	}
	r, err := enrp.New(cfg)
	if err != nil {
		fmt.Println(err)
		return
	}
	go r.Run(ctx)
	defer r.Close()

	for i, name := range []string{"a.pe.example.org", "rogue.example.com"} {
		pe, ln, err := startPE(ctx, node(name), r.Addr(), "echo", uint32(i+1), 7000, policy.RoundRobin, policy.Values{})
		if err != nil {
			fmt.Printf("PE %s: %v\n", name, err)
			continue
		}
		defer ln.Close()
		defer pe.Close()
		fmt.Printf("PE %s: registered\n", name)
	}
	for _, name := range []string{"app.pu.example.org", "rogue.example.com"} {
		pu, err := asap.NewPoolUser(asap.PUConfig{Registrars: []transport.Addr{r.Addr()}}, node(name))
		if err != nil {
			fmt.Println(err)
			return
		}
		defer pu.Close()
		pes, err := pu.Resolve(ctx, []byte("echo"))
		var re *asap.RejectError
		switch {
		case errors.As(err, &re):
			fmt.Printf("PU %s: refused, cause %#x\n", name, uint16(re.Code()))
		case err != nil:
			fmt.Printf("PU %s: %v\n", name, err)
		default:
			fmt.Printf("PU %s: %d PE\n", name, len(pes))
		}
	}
	// Output:
	// PE a.pe.example.org: registered
	// PE rogue.example.com: asap: ASAP_REGISTRATION refused by registrar: Rejected due to security considerations
	// PU app.pu.example.org: 1 PE
	// PU rogue.example.com: refused, cause 0xa
}
