package main

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/go-rserpool/rserpool/asap"
	"github.com/go-rserpool/rserpool/enrp"
	"github.com/go-rserpool/rserpool/internal/dtlsflags"
	"github.com/go-rserpool/rserpool/internal/dtlstest"
	"github.com/go-rserpool/rserpool/internal/echo"
	"github.com/go-rserpool/rserpool/internal/leakcheck"
	"github.com/go-rserpool/rserpool/internal/testpki"
	"github.com/go-rserpool/rserpool/transport"
	"github.com/go-rserpool/rserpool/transport/sctp"
)

// -tls-cert, -tls-key, -tls-ca, -tls-server-name: the PE registers at a
// DTLS registrar and serves a DTLS pool user; on SIGINT (ctx) it
// deregisters. A name the registrar does not allow ends run with the
// 0xa refusal; a registrar without the server name is refused by the PE,
// and so is one whose name -registrar-name does not allow.
func TestRunDTLS(t *testing.T) {
	leakcheck.Check(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ca := testpki.NewCA(t, "echo-pe test CA")
	// A registrar that lets only *.pe.example register in "echo".
	r := dtlstest.Registrar(t, ca, "reg-1.reg.example", enrp.NamePolicy{Register: enrp.PoolACL{Pools: map[string][]string{"echo": {"*.pe.example"}}}})
	_, files := dtlstest.PEM(t, ca, t.TempDir())

	sec := files("pe-1.pe.example")
	sec.ServerName = "reg-1.reg.example"
	sec.RegistrarName = "reg-*.reg.example"
	pctx, stop := context.WithCancel(ctx)
	ran, registered := make(chan error, 1), make(chan *asap.PoolElement, 1)
	go func() {
		ran <- run(pctx, r.Addr().String(), "echo", "127.0.0.1:0", "pe-t", false, false, sec, func(pe *asap.PoolElement) { registered <- pe })
	}()
	var pe *asap.PoolElement
	select {
	case pe = <-registered:
	case err := <-ran:
		t.Fatalf("run: %v", err)
	}
	pu, err := asap.NewPoolUser(asap.PUConfig{Registrars: []transport.Addr{r.Addr()}}, dtlstest.Transport(t, ca, "app.pu.example"))
	if err != nil {
		t.Fatal(err)
	}
	a, err := echo.Call(ctx, pu, []byte("echo"), "over DTLS", 5*time.Second)
	pu.Close()
	if err != nil || a.From != "pe-t" || a.Text != "over DTLS" || a.PE != pe.ID() {
		t.Fatalf("echo: %+v, %v", a, err)
	}
	stop()
	if err := <-ran; err != nil {
		t.Fatalf("run: %v", err)
	}
	if pes, err := r.PoolElements(ctx, []byte("echo")); err != nil || len(pes) != 0 {
		t.Fatalf("after SIGINT the pool holds %d PEs (%v), want the PE deregistered", len(pes), err)
	}

	err = run(ctx, r.Addr().String(), "echo", "127.0.0.1:0", "pe-x", false, false, files("pe-2.other.example"), nil)
	var re *asap.RejectError
	if !errors.As(err, &re) || !strings.Contains(err.Error(), "Rejected due to security considerations") {
		t.Fatalf("PE the registrar does not allow: %v, want the 0xa refusal", err)
	}
	wrong := files("pe-3.pe.example")
	wrong.ServerName = "elsewhere.reg.example"
	var he *sctp.HandshakeError
	rctx, rcancel := context.WithTimeout(ctx, 10*time.Second) // 3 server hunts with back-off
	defer rcancel()
	if err := run(rctx, r.Addr().String(), "echo", "127.0.0.1:0", "pe-y", false, false, wrong, nil); !errors.Is(err, asap.ErrNoRegistrar) || !errors.As(err, &he) || he.RefusedBy != sctp.SideLocal {
		t.Fatalf("registrar without -tls-server-name: %v, want no registrar after this side refused it", err)
	}
	// -registrar-name the registrar's certificate does not match: the PE
	// refuses it before registering.
	byName := files("pe-4.pe.example")
	byName.RegistrarName = "*.pe.example"
	before := r.Stats().ASAP.Registrations
	nctx, ncancel := context.WithTimeout(ctx, 10*time.Second) // 3 server hunts with back-off
	defer ncancel()
	if err := run(nctx, r.Addr().String(), "echo", "127.0.0.1:0", "pe-w", false, false, byName, nil); !errors.Is(err, asap.ErrNoRegistrar) || !errors.Is(err, asap.ErrRegistrarRefused) {
		t.Fatalf("-registrar-name *.pe.example: %v, want no registrar after this side refused it by name", err)
	}
	if n := r.Stats().ASAP.Registrations; n != before {
		t.Errorf("the refused registrar got %d registrations", n-before)
	}
	if err := run(ctx, r.Addr().String(), "echo", "127.0.0.1:0", "pe-z", false, false, dtlsflags.Files{Cert: sec.Cert}, nil); !errors.Is(err, dtlsflags.ErrConfig) {
		t.Fatalf("-tls-cert without -tls-key: %v", err)
	}
}
