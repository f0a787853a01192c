package status

import (
	"net/netip"
	"testing"

	"github.com/go-rserpool/rserpool/policy"
	"github.com/go-rserpool/rserpool/tlv"
)

// The page's formats: printable handles as text, others in hex;
// identifiers as 0x%08x; fractions of 0xffffffff as numbers from 0 to 1.
func TestFormats(t *testing.T) {
	for in, want := range map[string]string{
		"echo": "echo", "Grüße": "Grüße", "a b": "a b", "": "0x",
		"\x00": "0x00", "tab\there": "0x7461620968657265", "\xff": "0xff", "bell\a": "0x62656c6c07",
	} {
		if got := handleText([]byte(in)); got != want {
			t.Errorf("handleText(%q) = %q, want %q", in, got, want)
		}
	}
	if got := hexID(42); got != "0x0000002a" {
		t.Errorf("hexID(42) = %q", got)
	}
	if got := fraction(policy.MaxLoad); got != 1 {
		t.Errorf("fraction(MaxLoad) = %v", got)
	}
	if got := percent(fraction(policy.MaxLoad / 2)); got != "50.0 %" {
		t.Errorf("percent of half = %q", got)
	}
	name, vals, load := policyOf(policy.Encode(policy.LeastUsedDegradation, policy.Values{Load: policy.MaxLoad / 4, LoadDegradation: policy.MaxLoad / 10}))
	if name != policy.LeastUsedDegradation.String() || load == nil || *load < 0.2499 || *load > 0.2501 || vals["load_degradation"] < 0.0999 || vals["load_degradation"] > 0.1001 || len(vals) != 2 {
		t.Errorf("policyOf = %q, %v, %v", name, vals, load)
	}
	name, vals, load = policyOf(tlv.Policy{Type: 0xdeadbeef})
	if name != "unknown policy 0xdeadbeef" || vals != nil || load != nil {
		t.Errorf("policyOf(unknown) = %q, %v, %v", name, vals, load)
	}
	tr := transportOf(tlv.NewSCTPTransport(7000, tlv.TransportUseDataPlusControl, netip.MustParseAddr("::1"), netip.MustParseAddr("127.0.0.1")))
	if tr.Protocol != "SCTP" || tr.Use != "data and control" || len(tr.Addrs) != 2 || tr.Addrs[0] != "[::1]:7000" || tr.Addrs[1] != "127.0.0.1:7000" {
		t.Errorf("transportOf = %+v", tr)
	}
	if transportOf(tlv.Transport{}) != nil {
		t.Error("transportOf(absent) not nil")
	}
}
