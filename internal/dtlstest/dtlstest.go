// Package dtlstest holds what the tests of the example programs over SCTP
// over DTLS (RFC 8261) share: transports presenting certificates of a
// test CA (internal/testpki), the PEM files the programs' -tls-* flags
// name, and a DTLS registrar on loopback with a name policy (RFC 5355
// §4).
package dtlstest

import (
	"crypto/tls"
	"net/netip"
	"testing"
	"time"

	"github.com/go-rserpool/rserpool/enrp"
	"github.com/go-rserpool/rserpool/internal/dtlsflags"
	"github.com/go-rserpool/rserpool/internal/regtest"
	"github.com/go-rserpool/rserpool/internal/testpki"
	"github.com/go-rserpool/rserpool/transport"
	"github.com/go-rserpool/rserpool/transport/sctp"
)

// Loopback is 127.0.0.1 with a free port, for SCTP over UDP.
var Loopback = transport.Addr{Kind: transport.KindSCTPUDP, AddrPort: netip.MustParseAddrPort("127.0.0.1:0")}

// Transport is an SCTP over DTLS transport that presents a certificate for
// name from ca and trusts ca alone, with a ShutdownTimeout of a second.
func Transport(t testing.TB, ca *testpki.CA, name string) *sctp.Transport {
	t.Helper()
	return sctp.New(sctp.Config{ShutdownTimeout: time.Second, DTLS: &sctp.DTLSConfig{
		Certificates: []tls.Certificate{ca.Leaf(t, name)}, RootCAs: ca.Pool()}})
}

// PEM writes ca's certificate into dir (caFile), and returns files, which
// writes a certificate for name from ca and its key there and returns the
// flags naming them and the CA.
func PEM(t testing.TB, ca *testpki.CA, dir string) (caFile string, files func(name string) dtlsflags.Files) {
	t.Helper()
	caFile = ca.WritePEM(t, dir, "ca")
	return caFile, func(name string) dtlsflags.Files {
		c, k := testpki.WritePEM(t, dir, name, ca.Leaf(t, name))
		return dtlsflags.Files{Cert: c, Key: k, CA: caFile}
	}
}

// Registrar runs a registrar on Loopback over Transport(ca, name), with
// np applied to its configuration, until the test ends.
func Registrar(t testing.TB, ca *testpki.CA, name string, np enrp.NamePolicy) *enrp.Registrar {
	t.Helper()
	cfg := enrp.Config{Transport: Transport(t, ca, name), ListenAddr: Loopback}
	if err := np.Apply(&cfg); err != nil {
		t.Fatal(err)
	}
	return regtest.Start(t, cfg)
}
