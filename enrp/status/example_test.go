package status_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"

	"github.com/go-rserpool/rserpool/asap"
	"github.com/go-rserpool/rserpool/enrp"
	"github.com/go-rserpool/rserpool/enrp/status"
	"github.com/go-rserpool/rserpool/policy"
	"github.com/go-rserpool/rserpool/tlv"
	"github.com/go-rserpool/rserpool/transport"
	"github.com/go-rserpool/rserpool/transport/memnet"
)

// Mount a registrar's status page in the host's mux, with the registrar's
// events fanned into it, and read its JSON after a PE registered.
func Example() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	n := memnet.New(1)
	defer n.Close()
	nd := n.NewNode()
	events := make(chan enrp.Event, 256)
	reg, err := enrp.New(enrp.Config{ServerID: 0x1234, Transport: nd, ListenAddr: nd.Addr(transport.PortASAP), Events: events})
	if err != nil {
		fmt.Println(err)
		return
	}
	go reg.Run(ctx)
	defer reg.Close()

	page := status.New(reg, status.Options{})
	go page.Forward(ctx, events, nil) // stops with ctx
	mux := http.NewServeMux()
	mux.Handle("/rserpool/", page) // HTML at /rserpool/, JSON at /rserpool/json

	// A PE of pool "echo" on 10.0.0.2, at 25 % load.
	peNode := n.NewNode()
	ut, _ := asap.TransportParam(peNode.Addr(7000), tlv.TransportUseDataOnly)
	pe, err := asap.NewPoolElement(asap.PEConfig{
		PoolHandle: []byte("echo"), UserTransport: ut, PEID: 42,
		Policy: policy.LeastUsed, PolicyValues: policy.Values{Load: policy.MaxLoad / 4},
		Registrars: []transport.Addr{reg.Addr()},
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

	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/rserpool/json", nil))
	var p status.Page
	if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("registrar", p.ServerID)
	for _, pool := range p.Pools {
		for _, e := range pool.PEs {
			fmt.Printf("pool %s: PE %s, home %s, load %.2f, at %v\n", pool.Handle, e.ID, e.Home, *e.Load, e.UserTransport.Addrs)
		}
	}
	// Output:
	// registrar 0x00001234
	// pool echo: PE 0x0000002a, home 0x00001234, load 0.25, at [10.0.0.2:7000]
}
