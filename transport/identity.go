package transport

import (
	"crypto/x509"
	"encoding/hex"
	"errors"
	"path"
	"strings"
)

// Identity is the authenticated identity of an association's peer: what a
// secured transport verified during its handshake (RFC 5355 §4 asks for
// mutual authentication of every ASAP and ENRP association). The layers
// above use it to authorise the peer: a registrar checks a PE's identity
// before it lets it register in a pool, a PU's before it resolves, an ENRP
// peer's before it syncs.
type Identity struct {
	// Certificates is the peer's certificate chain as it verified, leaf
	// first. It is empty for identities that do not come from X.509 (test
	// identities attached in memnet carry only Name).
	Certificates []*x509.Certificate
	// Name names the peer for logs and simple policies: the leaf
	// certificate's first DNS SAN, else its subject common name, else a
	// label the transport chose.
	Name string
}

// IsZero reports whether id carries no identity.
func (id Identity) IsZero() bool { return id.Name == "" && len(id.Certificates) == 0 }

// Matches reports whether id matches pattern, a path.Match glob ('*'
// matches any run of characters but '/', so "*.pool.example.org" matches
// "a.pool.example.org" and "a.b.pool.example.org"; '?' and '[...]' as in
// path.Match), compared case-insensitively (DNS names are, RFC 4343):
// against Name and against every DNS SAN of the leaf certificate. Name
// falls back to the leaf's subject common name when it has no DNS SAN,
// so a certificate without SANs matches by its common name. An empty or
// malformed pattern ([ValidPattern]) matches nothing.
func (id Identity) Matches(pattern string) bool {
	if pattern == "" {
		return false
	}
	pattern = strings.ToLower(pattern)
	match := func(name string) bool {
		ok, err := path.Match(pattern, strings.ToLower(name))
		return name != "" && err == nil && ok
	}
	if match(id.Name) {
		return true
	}
	if leaf := id.Leaf(); leaf != nil {
		for _, n := range leaf.DNSNames {
			if match(n) {
				return true
			}
		}
	}
	return false
}

// ValidPattern reports why pattern cannot be used with
// [Identity.Matches] (empty, or malformed for path.Match), or nil.
func ValidPattern(pattern string) error {
	if pattern == "" {
		return errEmptyPattern
	}
	if _, err := path.Match(pattern, ""); err != nil {
		return err
	}
	return nil
}

var errEmptyPattern = errors.New("empty identity pattern")

// Leaf returns the peer's own certificate, or nil.
func (id Identity) Leaf() *x509.Certificate {
	if len(id.Certificates) == 0 {
		return nil
	}
	return id.Certificates[0]
}

// String returns Name, or the leaf's subject, for logs.
func (id Identity) String() string {
	if id.Name != "" {
		return id.Name
	}
	if l := id.Leaf(); l != nil {
		if s := l.Subject.String(); s != "" {
			return s
		}
		return "serial:" + hex.EncodeToString(l.SerialNumber.Bytes())
	}
	return "(none)"
}

// PeerIdentifier is implemented by a [Conn] whose transport authenticates
// its peer (SCTP over DTLS in transport/sctp; memnet with test identities).
// It is an optional capability: plain SCTP and memnet without identities do
// not implement it, or return false.
type PeerIdentifier interface {
	// PeerIdentity returns the peer's verified identity, and false when
	// the association is not authenticated.
	PeerIdentity() (Identity, bool)
}

// PeerIdentityOf returns c's verified peer identity, and false when c is
// not authenticated.
func PeerIdentityOf(c Conn) (Identity, bool) {
	if p, ok := c.(PeerIdentifier); ok {
		return p.PeerIdentity()
	}
	return Identity{}, false
}
