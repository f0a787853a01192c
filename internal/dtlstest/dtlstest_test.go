package dtlstest_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/go-rserpool/rserpool/asap"
	"github.com/go-rserpool/rserpool/enrp"
	"github.com/go-rserpool/rserpool/internal/dtlstest"
	"github.com/go-rserpool/rserpool/internal/leakcheck"
	"github.com/go-rserpool/rserpool/internal/testpki"
	"github.com/go-rserpool/rserpool/tlv"
	"github.com/go-rserpool/rserpool/transport"
)

// The registrar is reached over DTLS by a transport of the same CA and
// applies its policy; the PEM files load as the flags would load them.
func TestRegistrarTransportPEM(t *testing.T) {
	if testing.Short() {
		t.Skip("real SCTP over DTLS on loopback")
	}
	leakcheck.Check(t)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	ca := testpki.NewCA(t, "dtlstest CA")
	r := dtlstest.Registrar(t, ca, "reg-1.reg.example", enrp.NamePolicy{Resolve: enrp.PoolACL{Pools: map[string][]string{"echo": {"*.pu.example"}}}})
	resolve := func(name string) error {
		pu, err := asap.NewPoolUser(asap.PUConfig{Registrars: []transport.Addr{r.Addr()}}, dtlstest.Transport(t, ca, name))
		if err != nil {
			t.Fatal(err)
		}
		defer pu.Close()
		_, err = pu.Resolve(ctx, []byte("echo"))
		return err
	}
	if err := resolve("app.pu.example"); !errors.Is(err, asap.ErrUnknownPool) {
		t.Errorf("allowed PU: %v, want the registrar's answer that the pool is unknown", err)
	}
	var re *asap.RejectError
	if err := resolve("app.other.example"); !errors.As(err, &re) || re.Code() != tlv.CauseRejectedSecurity {
		t.Errorf("PU the policy does not allow: %v, want 0xa", err)
	}

	caFile, files := dtlstest.PEM(t, ca, t.TempDir())
	f := files("pe-1.pe.example")
	if f.CA != caFile || f.Cert == "" || f.Key == "" {
		t.Fatalf("files %+v", f)
	}
	d, err := f.Config(nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Certificates) != 1 || d.Certificates[0].Leaf == nil || d.Certificates[0].Leaf.Subject.CommonName != "pe-1.pe.example" {
		t.Errorf("the flags load %+v, want the certificate of pe-1.pe.example", d.Certificates)
	}
}
