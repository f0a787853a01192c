package transport

import (
	"encoding/json"
	"net/netip"
	"testing"
)

// TestAddrJSON: an Addr is one string in JSON (before:
// {"Kind":2,"AddrPort":"10.0.0.1:1"}), and reads back.
func TestAddrJSON(t *testing.T) {
	in := struct{ A, Zero Addr }{A: Addr{KindMem, netip.MustParseAddrPort("10.0.0.1:1")}}
	b, err := json.Marshal(in)
	if err != nil || string(b) != `{"A":"mem:10.0.0.1:1","Zero":""}` {
		t.Fatalf("%s, %v", b, err)
	}
	var back struct{ A, Zero Addr }
	if err := json.Unmarshal(b, &back); err != nil || back != in {
		t.Fatalf("read back %v, %v", back, err)
	}
	if err := json.Unmarshal([]byte(`{"A":"udp:1.2.3.4:1"}`), &back); err == nil {
		t.Error("bad address accepted")
	}
}
