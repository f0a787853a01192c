package main

import (
	"bytes"
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
	"github.com/go-rserpool/rserpool/tlv"
	"github.com/go-rserpool/rserpool/transport"
)

// -tls-cert, -tls-key, -tls-ca: the pool user resolves at a DTLS
// registrar and is answered by a DTLS PE; a name the registrar's Resolve
// rule does not allow ends run at once with the 0xa refusal; a registrar
// whose name -registrar-name does not allow is refused by the PU.
func TestRunDTLS(t *testing.T) {
	leakcheck.Check(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ca := testpki.NewCA(t, "pu-client test CA")

	r := dtlstest.Registrar(t, ca, "reg-1.reg.example", enrp.NamePolicy{Resolve: enrp.PoolACL{Pools: map[string][]string{"echo": {"*.pu.example"}}}})

	peTr := dtlstest.Transport(t, ca, "pe-1.pe.example")
	ln, err := peTr.Listen(dtlstest.Loopback)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ut, err := asap.TransportParam(ln.Addr(), tlv.TransportUseDataOnly)
	if err != nil {
		t.Fatal(err)
	}
	pe, err := asap.NewPoolElement(asap.PEConfig{PoolHandle: []byte("echo"), UserTransport: ut, Registrars: []transport.Addr{r.Addr()}, MaxAccepted: -1}, peTr)
	if err != nil {
		t.Fatal(err)
	}
	defer pe.Close()
	sctx, stopServe := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() { served <- echo.Serve(sctx, ln, "pe-1") }()
	defer func() { stopServe(); <-served }()
	if err := pe.Register(ctx); err != nil {
		t.Fatal(err)
	}

	caFile, files := dtlstest.PEM(t, ca, t.TempDir())
	var out bytes.Buffer
	sec := files("app.pu.example")
	sec.RegistrarName = "reg-*.reg.example"
	if err := run(ctx, &out, r.Addr().String(), "echo", 3, 0, 5*time.Second, false, false, sec); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	if n := strings.Count(out.String(), "answered by pe-1"); n != 3 || !strings.Contains(out.String(), "1 PE(s) resolved") {
		t.Fatalf("%d answers from pe-1, want 3:\n%s", n, out.String())
	}

	out.Reset()
	err = run(ctx, &out, r.Addr().String(), "echo", 3, 0, 5*time.Second, false, false, files("scanner.other.example"))
	var re *asap.RejectError
	if !errors.As(err, &re) || re.Code() != tlv.CauseRejectedSecurity || !strings.Contains(err.Error(), "Rejected due to security considerations") || out.Len() != 0 {
		t.Fatalf("PU the registrar does not allow: %v (printed %q), want the 0xa refusal and nothing printed", err, out.String())
	}
	if s := r.Stats().ASAP; s.ResolutionsRefused != 1 {
		t.Errorf("registrar refused %d resolutions, want 1", s.ResolutionsRefused)
	}
	// -registrar-name the registrar's certificate does not match: refused
	// before any resolution reaches it.
	out.Reset()
	sec.RegistrarName = "*.pe.example"
	err = run(ctx, &out, r.Addr().String(), "echo", 1, 0, time.Second, false, false, sec)
	if !errors.Is(err, asap.ErrNoRegistrar) || !errors.Is(err, asap.ErrRegistrarRefused) || !strings.Contains(err.Error(), "reg-1.reg.example") || out.Len() != 0 {
		t.Fatalf("-registrar-name *.pe.example: %v (printed %q), want the registrar refused by name", err, out.String())
	}
	if s := r.Stats().ASAP; s.ResolutionsRefused != 1 || s.Resolutions != 2 {
		t.Errorf("registrar answered %d resolutions (%d refused), want 2 (1): none from the PU that refused it", s.Resolutions, s.ResolutionsRefused)
	}
	if err := run(ctx, &out, r.Addr().String(), "echo", 1, 0, time.Second, false, false, dtlsflags.Files{CA: caFile}); !errors.Is(err, dtlsflags.ErrConfig) {
		t.Fatalf("-tls-ca without -tls-cert: %v", err)
	}
}
