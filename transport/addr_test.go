package transport

import (
	"net/netip"
	"testing"
)

func TestAddrStringParse(t *testing.T) {
	for _, a := range []Addr{
		{KindSCTPUDP, netip.MustParseAddrPort("192.0.2.1:9899")},
		{KindSCTP, netip.MustParseAddrPort("[2001:db8::1]:3863")},
		{KindMem, netip.MustParseAddrPort("10.0.0.1:49152")},
	} {
		got, err := ParseAddr(a.String())
		if err != nil || got != a {
			t.Errorf("ParseAddr(%q) = %v, %v; want %v", a.String(), got, err, a)
		}
		if !a.IsValid() || a.Network() != a.Kind.String() {
			t.Errorf("%v: IsValid %v, Network %q", a, a.IsValid(), a.Network())
		}
	}
	if a, err := ParseAddr("[::1]:9899"); err != nil || a.Kind != KindSCTPUDP {
		t.Errorf("ParseAddr without kind = %v, %v; want KindSCTPUDP", a, err)
	}
	for _, bad := range []string{"", "mem:", "sctp:1.2.3.4", "udp:1.2.3.4:1"} {
		if _, err := ParseAddr(bad); err == nil {
			t.Errorf("ParseAddr(%q) succeeded", bad)
		}
	}
	if (Addr{}).IsValid() {
		t.Error("zero Addr is valid")
	}
}
