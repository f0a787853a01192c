// Command echo-pe is a pool element (RFC 5352 §3.1) that echoes each
// request prefixed with its name. It listens for pool users over
// user-space SCTP, registers that address in a pool at a registrar,
// answers the registrar's keep-alives, and deregisters on SIGINT.
//
//	go run ./examples/registrar &
//	go run ./examples/echo-pe -pool echo -name pe-1
//	go run ./examples/pu-client -pool echo -n 5
//
// With -tls-cert and -tls-key (PEM files) and -tls-ca (the pool's CA) it
// runs SCTP over DTLS (RFC 8261) both to the registrar and to its pool
// users: it registers only at a registrar whose certificate the CA signed
// (and, with -tls-server-name, that carries that name), and serves only
// pool users whose certificate the CA signed. The registrar, -allow-pe,
// decides whether its name may register in the pool. The CA signs every
// PE's certificate too: -registrar-name (name patterns) says which of
// them may act as its registrar, for the registrars it dials and for
// those that open associations to it to take it over (a refused one is
// logged and aborted before any ASAP message).
//
//	go run ./examples/echo-pe -pool echo -tls-cert pe.pem -tls-key pe-key.pem -tls-ca ca.pem -registrar-name 'reg-*.reg.example'
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/go-rserpool/rserpool/asap"
	"github.com/go-rserpool/rserpool/internal/dtlsflags"
	"github.com/go-rserpool/rserpool/internal/echo"
	"github.com/go-rserpool/rserpool/tlv"
	"github.com/go-rserpool/rserpool/transport"
	"github.com/go-rserpool/rserpool/transport/multicast"
	"github.com/go-rserpool/rserpool/transport/sctp"
)

func main() {
	registrars := flag.String("registrar", "127.0.0.1:9899", "registrar address(es), comma separated (SCTP over UDP)")
	pool := flag.String("pool", "echo", "pool handle to register in")
	listen := flag.String("listen", "127.0.0.1:0", "address pool users reach this PE at (SCTP over UDP)")
	name := flag.String("name", "", "name put in front of each answer (default: the PE ID)")
	announce := flag.Bool("announce", false, "also find registrars by their ASAP Server Announces on the loopback interface")
	verbose := flag.Bool("v", false, "log ASAP debug messages")
	var sec dtlsflags.Files
	sec.Register(flag.CommandLine, true)
	sec.RegisterRegistrarName(flag.CommandLine)
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *registrars, *pool, *listen, *name, *announce, *verbose, sec, nil); err != nil {
		log.Fatal(err)
	}
}

// run runs the PE until ctx ends; registered, if not nil, is called with
// the PE once it registered (tests).
func run(ctx context.Context, registrars, pool, listen, name string, announce, verbose bool, sec dtlsflags.Files, registered func(*asap.PoolElement)) error {
	regs, err := parseAddrs(registrars)
	if err != nil {
		return err
	}
	at, err := transport.ParseAddr(listen)
	if err != nil {
		return err
	}
	dtls, err := sec.Config(func(err error) { log.Printf("echo-pe: pool user refused: %v", err) })
	if err != nil {
		return err
	}
	authReg, err := sec.Registrar()
	if err != nil {
		return err
	}
	tr := sctp.New(sctp.Config{DTLS: dtls})

	// The listener pool users reach; its address goes into the registration.
	ln, err := tr.Listen(at)
	if err != nil {
		return err
	}
	defer ln.Close()
	user, err := asap.TransportParam(ln.Addr(), tlv.TransportUseDataOnly)
	if err != nil {
		return err
	}

	events := make(chan asap.PEEvent, 16)
	cfg := asap.PEConfig{PoolHandle: []byte(pool), UserTransport: user, Registrars: regs, AuthorizeRegistrar: authReg, Events: events}
	if verbose {
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	opts, err := announces(ctx, announce)
	if err != nil {
		return err
	}
	pe, err := asap.NewPoolElement(cfg, tr, opts...)
	if err != nil {
		return err
	}
	defer pe.Close()
	if name == "" {
		name = fmt.Sprintf("pe-%08x", pe.ID())
	}

	served := make(chan error, 1)
	go func() { served <- echo.Serve(ctx, ln, name) }()
	// Log the registrars -registrar-name refused, until run returns.
	lctx, stopLog := context.WithCancel(context.Background())
	logged := make(chan struct{})
	go func() {
		defer close(logged)
		for {
			select {
			case ev := <-events:
				if ev.Kind == asap.PEEventRegistrarRefused {
					log.Printf("%s: %v", name, ev)
				}
			case <-lctx.Done():
				return
			}
		}
	}()
	defer func() { stopLog(); <-logged }()

	if err := pe.Register(ctx); err != nil {
		return fmt.Errorf("register in pool %q: %w", pool, err)
	}
	log.Printf("%s: registered in pool %q as PE %08x, serving at %v (DTLS: %v)", name, pool, pe.ID(), ln.Addr(), dtls != nil)
	if registered != nil {
		registered(pe)
	}

	select {
	case <-ctx.Done():
	case err := <-served:
		return err
	}

	// SIGINT: leave the pool cleanly, then stop serving.
	dctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := pe.Deregister(dctx); err != nil {
		log.Printf("%s: deregister: %v", name, err)
	} else {
		log.Printf("%s: deregistered", name)
	}
	ln.Close()
	if err := <-served; err != nil && !errors.Is(err, transport.ErrClosed) {
		return err
	}
	return nil
}

// parseAddrs reads a comma-separated list of transport addresses.
func parseAddrs(s string) ([]transport.Addr, error) {
	var out []transport.Addr
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		a, err := transport.ParseAddr(f)
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, nil
}

// announces returns the option that makes an endpoint listen for
// registrars' announces on lo (RFC 5352 §3.6), if asked to.
func announces(ctx context.Context, on bool) ([]asap.Option, error) {
	if !on {
		return nil, nil
	}
	lo, err := multicast.LoopbackInterface() // never another interface
	if err != nil {
		return nil, err
	}
	a, err := multicast.Listen(ctx, multicast.Config{Group: multicast.DefaultASAPGroup, Interface: lo, TTL: 1, Loopback: true})
	if err != nil {
		return nil, err
	}
	return []asap.Option{asap.WithAnnouncer(a)}, nil // the endpoint closes it
}
