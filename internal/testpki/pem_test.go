package testpki

import (
	"crypto/tls"
	"crypto/x509"
	"os"
	"testing"
)

// The PEM files load with tls.LoadX509KeyPair, and the leaf verifies
// against the CA file alone; the key file is private to the owner.
func TestWritePEM(t *testing.T) {
	dir := t.TempDir()
	ca := NewCA(t, "pem CA")
	certFile, keyFile := WritePEM(t, dir, "leaf", ca.Leaf(t, "leaf.example"))
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(ca.WritePEM(t, dir, "ca"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		t.Fatal("no certificate in the CA file")
	}
	if _, err := cert.Leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: "leaf.example"}); err != nil {
		t.Fatalf("leaf from the files: %v", err)
	}
	if st, err := os.Stat(keyFile); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v (%v), want 0600", st.Mode(), err)
	}
}
