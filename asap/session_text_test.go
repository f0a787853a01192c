package asap

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/go-rserpool/rserpool/tlv"
	"github.com/go-rserpool/rserpool/transport"
)

// The session events print as one line each, without cookie bytes, so
// that a host can log what it gets from SessionConfig.Events with %v.
func TestSessionEventStrings(t *testing.T) {
	for _, tc := range []struct {
		ev   SessionEvent
		want string
	}{
		{FailoverEvent{Pool: tlv.PoolHandle("kv"), Old: tlv.PoolElement{ID: 1}, New: tlv.PoolElement{ID: 2},
			Reason: ReasonAssociationLost, Cause: transport.ErrAssociationLost, Duration: 120 * time.Millisecond,
			Tried: 1, CookieEchoed: true, Retried: 1},
			"failover of pool kv from PE 0x00000001 (association lost: transport: association lost) to PE 0x00000002 in 120ms, 1 tried, cookie echoed, 1 request sent again"},
		{FailoverEvent{Pool: tlv.PoolHandle("kv"), Old: tlv.PoolElement{ID: 1}, Reason: ReasonPeerClosed,
			Err: ErrNoPoolElement, Duration: time.Second, Tried: 2},
			"failover of pool kv from PE 0x00000001 (closed by PE) found no PE after 1s, 2 tried: " + ErrNoPoolElement.Error()},
		{SessionCookieReceived{PE: 3, Cookie: []byte("secret state")}, "cookie of 12 bytes from PE 0x00000003"},
		{SessionCardReceived{PE: 3, PEs: []tlv.PoolElement{{ID: 5}, {ID: 4}}}, "business card from PE 0x00000003: 0x00000005, 0x00000004"},
	} {
		if got := fmt.Sprint(tc.ev); got != tc.want {
			t.Errorf("%T:\n got %s\nwant %s", tc.ev, got, tc.want)
		}
	}
	if s := fmt.Sprint(SessionCookieReceived{Cookie: []byte("secret state")}); strings.Contains(s, "secret") {
		t.Errorf("cookie bytes printed: %s", s)
	}
}
