package multicast_test

import (
	"context"
	"fmt"
	"log"
	"net/netip"

	"github.com/go-rserpool/rserpool/transport/multicast"
)

// A registrar announces itself on the loopback interface and a pool
// element, listening on the same group, hears the announce. Port 0 picks a
// free port; a real deployment uses multicast.DefaultASAPGroup (port 3863)
// or a group of its own. The example has no Output line because not every
// machine can do multicast on lo; the package tests check the behaviour and
// skip where it cannot.
func Example() {
	ctx := context.Background()
	lo, err := multicast.LoopbackInterface()
	if err != nil {
		log.Fatal(err)
	}
	cfg := multicast.Config{
		Group:     netip.MustParseAddrPort("239.255.42.50:0"),
		Interface: lo,
		TTL:       1,
		Loopback:  true,
	}
	registrar, err := multicast.Listen(ctx, cfg)
	if err != nil {
		log.Fatal(err)
	}
	defer registrar.Close()

	cfg.Group = registrar.Group() // the port the registrar got
	pe, err := multicast.Listen(ctx, cfg)
	if err != nil {
		log.Fatal(err)
	}
	defer pe.Close()

	// ASAP_SERVER_ANNOUNCE, Server ID 1, no transport parameters
	// (RFC 5352 §2.2.10).
	announce := []byte{0x0a, 0x00, 0x00, 0x08, 0x00, 0x00, 0x00, 0x01}
	if err := registrar.Send(ctx, announce); err != nil {
		log.Fatal(err)
	}
	b, from, err := pe.Recv(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("% x from %v\n", b, from.AddrPort.Addr())
}
