package dtlsflags

import (
	"crypto/x509"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-rserpool/rserpool/asap"
	"github.com/go-rserpool/rserpool/enrp"
	"github.com/go-rserpool/rserpool/internal/testpki"
	"github.com/go-rserpool/rserpool/transport"
	"github.com/go-rserpool/rserpool/transport/sctp"
)

// The flags parse into Files; complete ones load into a DTLSConfig with
// the certificate, the CA pool and the server name; no flag is plain SCTP.
func TestConfig(t *testing.T) {
	dir := t.TempDir()
	ca := testpki.NewCA(t, "flags CA")
	certFile, keyFile := testpki.WritePEM(t, dir, "host", ca.Leaf(t, "host.example"))
	caFile := ca.WritePEM(t, dir, "ca")

	var f Files
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	f.Register(fs, true)
	if err := fs.Parse([]string{"-tls-cert", certFile, "-tls-key", keyFile, "-tls-ca", caFile, "-tls-server-name", "reg.example"}); err != nil {
		t.Fatal(err)
	}
	called := false
	d, err := f.Config(func(error) { called = true })
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Certificates) != 1 || d.Certificates[0].Leaf.DNSNames[0] != "host.example" || d.RootCAs == nil || d.ServerName != "reg.example" || d.OnHandshakeFailure == nil {
		t.Fatalf("config %+v", d)
	}
	d.OnHandshakeFailure(nil)
	if !called {
		t.Fatal("OnHandshakeFailure not the one given")
	}
	if _, err := d.Certificates[0].Leaf.Verify(x509Opts(d)); err != nil {
		t.Fatalf("the leaf does not verify against -tls-ca: %v", err)
	}
	if d, err := (Files{}).Config(nil); d != nil || err != nil {
		t.Fatalf("no flags: %+v, %v; want plain SCTP", d, err)
	}
	// Without -tls-ca: the host's roots (RootCAs nil) only when
	// -tls-system-roots asks for them.
	if d, err := (Files{Cert: certFile, Key: keyFile, SystemRoots: true}).Config(nil); err != nil || d.RootCAs != nil || !d.SystemRoots {
		t.Fatalf("-tls-system-roots without -tls-ca: %+v, %v", d, err)
	}
}

// Every misconfiguration is an error at start that names the flag.
func TestConfigErrors(t *testing.T) {
	dir := t.TempDir()
	ca := testpki.NewCA(t, "flags CA")
	certFile, keyFile := testpki.WritePEM(t, dir, "host", ca.Leaf(t, "host.example"))
	_, otherKey := testpki.WritePEM(t, dir, "other", ca.Leaf(t, "other.example"))
	expCert, expKey := testpki.WritePEM(t, dir, "expired", ca.Leaf(t, "old.example", testpki.Expired()))
	caFile := ca.WritePEM(t, dir, "ca")
	notPEM := filepath.Join(dir, "junk.pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		f    Files
		want string
	}{
		{Files{Cert: certFile}, "-tls-cert without -tls-key"},
		{Files{Key: keyFile}, "-tls-key without -tls-cert"},
		{Files{CA: caFile}, "need -tls-cert and -tls-key"},
		{Files{ServerName: "x"}, "need -tls-cert and -tls-key"},
		{Files{Cert: certFile, Key: otherKey, CA: caFile}, "private key does not match"},
		{Files{Cert: filepath.Join(dir, "missing.pem"), Key: keyFile, CA: caFile}, "no such file"},
		{Files{Cert: certFile, Key: keyFile, CA: notPEM}, "no PEM certificate"},
		{Files{Cert: certFile, Key: keyFile, CA: filepath.Join(dir, "missing.pem")}, "-tls-ca"},
		{Files{Cert: expCert, Key: expKey, CA: caFile}, "-tls-cert"},
		{Files{Cert: certFile, Key: keyFile}, "-tls-cert needs -tls-ca"},
		{Files{SystemRoots: true}, "need -tls-cert and -tls-key"},
	} {
		d, err := c.f.Config(nil)
		if d != nil || !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %+v, %v; want an error saying %q", c.f, d, err, c.want)
		}
	}
	// An expired certificate is the transport's refusal, kept in the chain.
	if _, err := (Files{Cert: expCert, Key: expKey, CA: caFile}).Config(nil); !errors.Is(err, sctp.ErrDTLSConfig) {
		t.Errorf("expired: %v, want sctp.ErrDTLSConfig", err)
	}
}

// Rules "pool=pattern" add up per pool; a malformed one is refused.
func TestParseACL(t *testing.T) {
	acl, err := ParseACL("allow-pe", []string{"echo=*.pe.example", "echo=pe-0.example", "kv=*.kv.example"})
	if err != nil {
		t.Fatal(err)
	}
	if got := acl.Pools["echo"]; len(got) != 2 || got[0] != "*.pe.example" || got[1] != "pe-0.example" || len(acl.Pools["kv"]) != 1 || acl.Closed {
		t.Fatalf("ACL %+v", acl)
	}
	if acl, err := ParseACL("allow-pe", nil); err != nil || acl.Pools != nil {
		t.Fatalf("no rules: %+v, %v; want the open ACL", acl, err)
	}
	for _, bad := range []string{"echo", "=x", "echo=", "echo=[a"} {
		if _, err := ParseACL("allow-pu", []string{bad}); !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "-allow-pu") {
			t.Errorf("%q: %v, want an error naming -allow-pu", bad, err)
		}
	}
	if _, err := ParseACL("allow-pu", []string{"echo=[a"}); !errors.Is(err, enrp.ErrInvalidConfig) {
		t.Errorf("malformed pattern: %v, want enrp.ErrInvalidConfig", err)
	}
}

func x509Opts(d *sctp.DTLSConfig) x509.VerifyOptions {
	return x509.VerifyOptions{Roots: d.RootCAs, DNSName: "host.example"}
}

// -registrar-name: patterns, comma separated, into asap.RegistrarNames;
// none is no hook; a bad pattern, or the flag without DTLS, is an error.
func TestRegistrar(t *testing.T) {
	var f Files
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	f.Register(fs, false)
	f.RegisterRegistrarName(fs)
	if err := fs.Parse([]string{"-tls-cert", "c.pem", "-tls-key", "k.pem", "-registrar-name", "reg-*.reg.example, reg.other"}); err != nil {
		t.Fatal(err)
	}
	auth, err := f.Registrar()
	if err != nil || auth == nil {
		t.Fatalf("Registrar: %v, %v", auth, err)
	}
	for name, ok := range map[string]bool{"reg-1.reg.example": true, "reg.other": true, "pe-1.pe.example": false} {
		if err := auth(transport.Identity{Name: name}, true); (err == nil) != ok || (!ok && !errors.Is(err, asap.ErrRegistrarName)) {
			t.Errorf("%s: %v, want allowed %v", name, err, ok)
		}
	}
	if err := auth(transport.Identity{}, false); !errors.Is(err, asap.ErrRegistrarUnauthenticated) {
		t.Errorf("unauthenticated: %v", err)
	}
	if auth, err := (Files{}).Registrar(); auth != nil || err != nil {
		t.Errorf("no flag: %v, %v; want no hook", auth, err)
	}
	for _, bad := range []Files{
		{Cert: "c.pem", RegistrarName: "reg-*,"},
		{Cert: "c.pem", RegistrarName: "[x"},
		{RegistrarName: "reg-*"},
	} {
		if _, err := bad.Registrar(); !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "-registrar-name") {
			t.Errorf("%+v: %v, want an error naming -registrar-name", bad, err)
		}
	}
}
