package testpki

import (
	"crypto/x509"
	"errors"
	"testing"
)

func TestLeafVerifiesAgainstItsCAOnly(t *testing.T) {
	ca, other := NewCA(t, "ca"), NewCA(t, "other")
	leaf := ca.Leaf(t, "pe.test").Leaf
	opts := x509.VerifyOptions{Roots: ca.Pool(), DNSName: "pe.test", KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	if _, err := leaf.Verify(opts); err != nil {
		t.Errorf("leaf against its CA: %v", err)
	}
	opts.Roots = other.Pool()
	var ua x509.UnknownAuthorityError
	if _, err := leaf.Verify(opts); !errors.As(err, &ua) {
		t.Errorf("leaf against another CA: %v, want an unknown authority", err)
	}
	expired := ca.Leaf(t, "old.test", Expired()).Leaf
	var inv x509.CertificateInvalidError
	if _, err := expired.Verify(x509.VerifyOptions{Roots: ca.Pool()}); !errors.As(err, &inv) || inv.Reason != x509.Expired {
		t.Errorf("expired leaf: %v, want expired", err)
	}
	if l := ca.Leaf(t, "cn-only", NoSAN()).Leaf; len(l.DNSNames) != 0 || l.Subject.CommonName != "cn-only" {
		t.Errorf("NoSAN leaf: SANs %v, CN %q", l.DNSNames, l.Subject.CommonName)
	}
	if l := ca.Leaf(t, "x", DNSNames("a.test", "b.test")).Leaf; len(l.DNSNames) != 2 || l.DNSNames[0] != "a.test" {
		t.Errorf("DNSNames leaf: %v", l.DNSNames)
	}
}
