// Package testpki makes X.509 certificate authorities and leaf certificates
// for tests: generated in the test with crypto/x509 and kept in memory, so
// that no private key is ever committed. Every certificate uses ECDSA P-256
// keys and is valid from an hour ago until a day from now unless an option
// says otherwise.
//
//	ca := testpki.NewCA(t, "pool operator")
//	reg := ca.Leaf(t, "registrar-1.example")  // DNS SAN and CN
//	pe := ca.Leaf(t, "pe-7.example")
//	// reg and pe are tls.Certificates; ca.Pool() verifies both.
//	rogue := testpki.NewCA(t, "rogue").Leaf(t, "registrar-1.example")
package testpki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"testing"
	"time"
)

// CA is a certificate authority for tests.
type CA struct {
	Cert *x509.Certificate
	Key  crypto.Signer
	pool *x509.CertPool
}

// NewCA returns a new self-signed CA whose subject common name is name.
func NewCA(t testing.TB, name string) *CA {
	t.Helper()
	key := newKey(t)
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial(t),
		Subject:               pkix.Name{CommonName: name, Organization: []string{"go-rserpool tests"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatalf("testpki: create CA %q: %v", name, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("testpki: parse CA %q: %v", name, err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &CA{Cert: cert, Key: key, pool: pool}
}

// Pool returns a pool holding only this CA, for RootCAs and ClientCAs.
func (ca *CA) Pool() *x509.CertPool { return ca.pool }

// LeafOption changes a leaf certificate's template before it is signed.
type LeafOption func(*x509.Certificate)

// Expired makes the leaf's validity end an hour ago.
func Expired() LeafOption {
	return func(c *x509.Certificate) {
		c.NotBefore = time.Now().Add(-48 * time.Hour)
		c.NotAfter = time.Now().Add(-time.Hour)
	}
}

// NoSAN leaves out the DNS SAN, so that only the subject common name names
// the leaf.
func NoSAN() LeafOption {
	return func(c *x509.Certificate) { c.DNSNames = nil }
}

// DNSNames sets the leaf's DNS SANs (the first one names it).
func DNSNames(names ...string) LeafOption {
	return func(c *x509.Certificate) { c.DNSNames = names }
}

// Leaf returns a certificate for name (as its subject common name and its
// DNS SAN) signed by ca, with its private key and its chain (the leaf; the
// CA is the trust anchor and is not sent). It serves as a server and as a
// client certificate.
func (ca *CA) Leaf(t testing.TB, name string, opts ...LeafOption) tls.Certificate {
	t.Helper()
	key := newKey(t)
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial(t),
		Subject:      pkix.Name{CommonName: name},
		DNSNames:     []string{name},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	for _, o := range opts {
		o(tmpl)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, key.Public(), ca.Key)
	if err != nil {
		t.Fatalf("testpki: create leaf %q: %v", name, err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("testpki: parse leaf %q: %v", name, err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("testpki: generate key: %v", err)
	}
	return key
}

func serial(t testing.TB) *big.Int {
	t.Helper()
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 126))
	if err != nil {
		t.Fatalf("testpki: serial: %v", err)
	}
	return n
}
