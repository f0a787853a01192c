// Command registrar runs an RSerPool registrar (an ENRP server, RFC 5353,
// serving ASAP, RFC 5352) over user-space SCTP: pool elements register
// with it, pool users resolve pool handles with it. With -announce it also
// multicasts ASAP_SERVER_ANNOUNCEs on the loopback interface (RFC 5352
// §3.6), so that endpoints on this host can find it without its address.
// It prints every registration, update and removal (with its reason) as
// the registrar reports them, and stops on SIGINT.
//
//	go run ./examples/registrar -listen 127.0.0.1:9899 -announce
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/go-rserpool/rserpool/enrp"
	"github.com/go-rserpool/rserpool/transport"
	"github.com/go-rserpool/rserpool/transport/multicast"
	"github.com/go-rserpool/rserpool/transport/sctp"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:9899", "ASAP listen address (SCTP over UDP)")
	announce := flag.Bool("announce", false, "multicast ASAP Server Announces on the loopback interface")
	group := flag.String("group", multicast.DefaultASAPGroup.String(), "announce multicast group and port")
	kaInterval := flag.Duration("keepalive", enrp.DefaultKeepAliveInterval, "keep-alive interval for registered PEs")
	kaTimeout := flag.Duration("keepalive-timeout", enrp.DefaultKeepAliveTimeout, "keep-alive timeout before a PE is removed")
	verbose := flag.Bool("v", false, "log debug messages")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *listen, *announce, *group, *kaInterval, *kaTimeout, *verbose); err != nil {
		log.Fatal(err)
	}
}

func run(ctx context.Context, listen string, announce bool, group string, kaInterval, kaTimeout time.Duration, verbose bool) error {
	at, err := transport.ParseAddr(listen)
	if err != nil {
		return err
	}
	events := make(chan enrp.Event, 256)
	cfg := enrp.Config{
		Events:     events,
		Transport:  sctp.New(sctp.Config{}),
		ListenAddr: at,
		ASAP:       enrp.ASAPConfig{KeepAliveInterval: kaInterval, KeepAliveTimeout: kaTimeout},
	}
	if verbose {
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	if announce {
		g, err := netip.ParseAddrPort(group)
		if err != nil {
			return fmt.Errorf("-group: %w", err)
		}
		lo, err := multicast.LoopbackInterface() // never another interface
		if err != nil {
			return err
		}
		a, err := multicast.Listen(ctx, multicast.Config{Group: g, Interface: lo, TTL: 1, Loopback: true})
		if err != nil {
			return err
		}
		defer a.Close()
		cfg.Announcer = a
	}
	reg, err := enrp.New(cfg)
	if err != nil {
		return err
	}
	defer reg.Close()
	log.Printf("registrar %08x listening at %v (announce on lo: %v)", reg.ServerID(), reg.Addr(), announce)

	ran := make(chan error, 1)
	go func() { ran <- reg.Run(ctx) }()

	// Print each change to the handlespace as the registrar reports it.
	for {
		select {
		case err := <-ran:
			return err
		case ev := <-events:
			log.Print(ev)
		}
	}
}
