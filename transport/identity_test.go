package transport

import (
	"crypto/x509"
	"testing"
)

// Identity.Matches: a path.Match glob, case-insensitive, against Name and
// the leaf's DNS SANs; '*' does not cross '/'; an empty or malformed
// pattern matches nothing, and ValidPattern says why.
func TestIdentityMatches(t *testing.T) {
	leaf := &x509.Certificate{DNSNames: []string{"pe-1.pool.example", "ALT.Example"}}
	withSAN := Identity{Name: "pe-1.pool.example", Certificates: []*x509.Certificate{leaf}}
	for _, c := range []struct {
		id      Identity
		pattern string
		want    bool
	}{
		{Identity{Name: "reg-1.reg.example"}, "reg-*.reg.example", true},
		{Identity{Name: "REG-1.reg.example"}, "reg-*.REG.example", true},
		{Identity{Name: "a.b.pool.example"}, "*.pool.example", true},
		{Identity{Name: "reg-1.reg.example.evil"}, "reg-*.reg.example", false},
		{Identity{Name: "a/b.pool.example"}, "*.pool.example", false},
		{withSAN, "alt.example", true},
		{withSAN, "*.other", false},
		{Identity{}, "*", false},
		{Identity{Name: "x"}, "", false},
		{Identity{Name: "["}, "[", false},
	} {
		if got := c.id.Matches(c.pattern); got != c.want {
			t.Errorf("%v.Matches(%q) = %v, want %v", c.id, c.pattern, got, c.want)
		}
	}
	if ValidPattern("*.example") != nil || ValidPattern("") == nil || ValidPattern("[") == nil {
		t.Errorf("ValidPattern: %v, %v, %v", ValidPattern("*.example"), ValidPattern(""), ValidPattern("["))
	}
}
