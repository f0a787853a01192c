// Command registrar runs an RSerPool registrar (an ENRP server, RFC 5353,
// serving ASAP, RFC 5352) over user-space SCTP: pool elements register
// with it, pool users resolve pool handles with it. With -announce it also
// multicasts ASAP_SERVER_ANNOUNCEs on the loopback interface (RFC 5352
// §3.6), so that endpoints on this host can find it without its address.
// It prints every registration, update and removal (with its reason) as
// the registrar reports them, and stops on SIGINT. With -http it also
// serves a status page (package enrp/status) at /, its JSON at /json, and
// the registrar's counts as the expvar variable "registrar" at
// /debug/vars; off by default.
//
//	go run ./examples/registrar -listen 127.0.0.1:9899 -announce -http 127.0.0.1:8080
package main

import (
	"context"
	"expvar"
	"flag"
	"fmt"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/go-rserpool/rserpool/enrp"
	"github.com/go-rserpool/rserpool/enrp/status"
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
	httpAddr := flag.String("http", "", "serve the status page, its JSON (/json) and expvar (/debug/vars) at this address, e.g. 127.0.0.1:8080; off when empty")
	verbose := flag.Bool("v", false, "log debug messages")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *listen, *announce, *group, *kaInterval, *kaTimeout, *httpAddr, *verbose); err != nil {
		log.Fatal(err)
	}
}

func run(ctx context.Context, listen string, announce bool, group string, kaInterval, kaTimeout time.Duration, httpAddr string, verbose bool) error {
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

	// Print each change to the handlespace as the registrar reports it;
	// with -http the status page records it on the way.
	printed := (<-chan enrp.Event)(events)
	if httpAddr != "" {
		l, err := net.Listen("tcp", httpAddr)
		if err != nil {
			reg.Close()
			<-ran
			return fmt.Errorf("-http: %w", err)
		}
		fwd := make(chan enrp.Event, cap(events))
		stopHTTP := serveStatus(ctx, l, reg, events, fwd)
		defer stopHTTP()
		printed = fwd
	}
	for {
		select {
		case err := <-ran:
			return err
		case ev := <-printed:
			log.Print(ev)
		}
	}
}

// serveStatus serves reg's status page on l: the page at /, its JSON at
// /json, expvar at /debug/vars (reg's counts as "registrar"). The page
// records the events from in and passes them on to out. The returned func
// stops the server and the forwarding and waits for both.
func serveStatus(ctx context.Context, l net.Listener, reg *enrp.Registrar, in <-chan enrp.Event, out chan<- enrp.Event) func() {
	page := status.New(reg, status.Options{})
	status.Publish("registrar", reg)
	mux := http.NewServeMux()
	mux.Handle("/", page)
	mux.Handle("/debug/vars", expvar.Handler())
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	fctx, cancel := context.WithCancel(ctx)
	served, forwarded := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(served)
		if err := srv.Serve(l); err != nil && err != http.ErrServerClosed {
			log.Printf("status page: %v", err)
		}
	}()
	go func() {
		defer close(forwarded)
		page.Forward(fctx, in, out)
	}()
	log.Printf("status page at http://%v/ (JSON at /json, expvar at /debug/vars)", l.Addr())
	return func() {
		cancel()
		srv.Close()
		<-served
		<-forwarded
	}
}
