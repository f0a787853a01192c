// Command pu-client is a pool user (RFC 5352 §3.5): it resolves a pool
// handle at a registrar, sends N echo requests to pool elements chosen by
// the pool's policy, and prints who answered. A PE that fails is reported
// unreachable and the request goes to the next one.
//
//	go run ./examples/pu-client -registrar 127.0.0.1:9899 -pool echo -n 10
//
// With -tls-cert and -tls-key (PEM files) and -tls-ca (the pool's CA) it
// runs SCTP over DTLS (RFC 8261) to the registrar and to the PEs: it
// resolves only at a registrar, and talks only to PEs, whose certificate
// the CA signed. The registrar, -allow-pu, decides whether its name may
// resolve the pool; a refusal ends it at once with "Rejected due to
// security considerations". There is no -tls-server-name: the PEs it
// dials have names of their own. Since the CA signs the PEs' certificates
// too, -registrar-name (name patterns) says which certificates may act as
// its registrar; a refused one is a failed dial of the server hunt.
//
//	go run ./examples/pu-client -pool echo -tls-cert pu.pem -tls-key pu-key.pem -tls-ca ca.pem -registrar-name 'reg-*.reg.example'
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
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
	"github.com/go-rserpool/rserpool/transport"
	"github.com/go-rserpool/rserpool/transport/multicast"
	"github.com/go-rserpool/rserpool/transport/sctp"
)

func main() {
	registrars := flag.String("registrar", "127.0.0.1:9899", "registrar address(es), comma separated (SCTP over UDP)")
	pool := flag.String("pool", "echo", "pool handle to use")
	n := flag.Int("n", 5, "number of requests")
	every := flag.Duration("every", 0, "pause between requests")
	timeout := flag.Duration("timeout", 2*time.Second, "how long to wait for one PE's answer before failing over")
	announce := flag.Bool("announce", false, "also find registrars by their ASAP Server Announces on the loopback interface")
	verbose := flag.Bool("v", false, "log ASAP debug messages")
	var sec dtlsflags.Files
	sec.Register(flag.CommandLine, false)
	sec.RegisterRegistrarName(flag.CommandLine)
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Stdout, *registrars, *pool, *n, *every, *timeout, *announce, *verbose, sec); err != nil {
		log.Fatal(err)
	}
}

func run(ctx context.Context, out io.Writer, registrars, pool string, n int, every, timeout time.Duration, announce, verbose bool, sec dtlsflags.Files) error {
	var regs []transport.Addr
	for _, f := range strings.Split(registrars, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		a, err := transport.ParseAddr(f)
		if err != nil {
			return err
		}
		regs = append(regs, a)
	}
	dtls, err := sec.Config(nil)
	if err != nil {
		return err
	}
	authReg, err := sec.Registrar()
	if err != nil {
		return err
	}
	cfg := asap.PUConfig{Registrars: regs, AuthorizeRegistrar: authReg}
	if verbose {
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	var opts []asap.Option
	if announce {
		lo, err := multicast.LoopbackInterface() // never another interface
		if err != nil {
			return err
		}
		a, err := multicast.Listen(ctx, multicast.Config{Group: multicast.DefaultASAPGroup, Interface: lo, TTL: 1, Loopback: true})
		if err != nil {
			return err
		}
		opts = append(opts, asap.WithAnnouncer(a)) // the pool user closes it
	}
	pu, err := asap.NewPoolUser(cfg, sctp.New(sctp.Config{DTLS: dtls}), opts...)
	if err != nil {
		return err
	}
	defer pu.Close()

	handle := []byte(pool)
	pes, err := pu.Resolve(ctx, handle)
	if err != nil {
		return fmt.Errorf("resolve pool %q: %w", pool, err)
	}
	fmt.Fprintf(out, "pool %q: %d PE(s) resolved\n", pool, len(pes))
	for _, pe := range pes {
		at, _ := asap.AddrOf(pe.UserTransport, transport.KindSCTPUDP)
		fmt.Fprintf(out, "  PE %08x at %v\n", pe.ID, at)
	}

	for i := 1; i <= n; i++ {
		a, err := echo.Call(ctx, pu, handle, fmt.Sprintf("request %d", i), timeout)
		for _, id := range a.Failed {
			fmt.Fprintf(out, "request %d: PE %08x failed, reported unreachable, failing over\n", i, id)
		}
		if err != nil {
			return fmt.Errorf("request %d: %w", i, err)
		}
		fmt.Fprintf(out, "request %d answered by %s (PE %08x)\n", i, a.From, a.PE)
		if every > 0 && i < n {
			select {
			case <-time.After(every):
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
	return nil
}
