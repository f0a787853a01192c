package enrp

import (
	"encoding/json"
	"net/netip"
	"testing"
	"time"

	"github.com/go-rserpool/rserpool/policy"
	"github.com/go-rserpool/rserpool/tlv"
	"github.com/go-rserpool/rserpool/transport"
)

// TestViewJSON: json.Marshal of what Pools, PoolElements and Events give a
// host reads as people read it. Before: Handle "ZWNobw==", Policy
// 1073741825, Transport 4, PE ID 42, Load 1073741824, Kind 3, Reason 3,
// Remote {"Kind":2,"AddrPort":"10.0.0.9:5000"}.
func TestViewJSON(t *testing.T) {
	at := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	pe := tlv.PoolElement{
		ID: 42, HomeServerID: 0x1234abcd, RegistrationLife: 30000,
		UserTransport: tlv.NewSCTPTransport(7, tlv.TransportUseDataOnly, netip.MustParseAddr("10.0.0.9")),
		Policy:        policy.Encode(policy.LeastUsed, policy.Values{Load: 0x40000000}),
	}
	for _, c := range []struct {
		v    any
		want string
	}{
		{PoolInfo{Handle: tlv.PoolHandle("echo"), Policy: policy.LeastUsed, Transport: tlv.ParamSCTPTransport, Use: tlv.TransportUseDataOnly, PEs: 1},
			`{"Handle":"echo","Policy":"LeastUsed","Transport":"SCTP Transport","Use":"data only","PEs":1}`},
		{PoolElementInfo{PE: pe, LastUpdate: at, Expiry: at.Add(30 * time.Second), Owned: true,
			Remote: transport.Addr{Kind: transport.KindMem, AddrPort: netip.MustParseAddrPort("10.0.0.9:5000")}},
			`{"PE":{"ID":"0x0000002a","HomeServerID":"0x1234abcd","RegistrationLife":30000,` +
				`"UserTransport":{"Type":"SCTP Transport","Port":7,"Use":"data only","Addrs":["10.0.0.9"]},` +
				`"Policy":{"Type":"LeastUsed","Load":0.25}},` +
				`"LastUpdate":"2026-12-01T10:00:00Z","Expiry":"2026-12-01T10:00:30Z","UnreachableReports":0,` +
				`"Owned":true,"Remote":"mem:10.0.0.9:5000"}`},
		{Event{Kind: EventRemoved, Time: at, PoolHandle: tlv.PoolHandle("echo"), PEID: 42, Reason: RemovedKeepAliveTimeout},
			`{"Kind":"removed","Time":"2026-12-01T10:00:00Z","PoolHandle":"echo","PEID":"0x0000002a","Reason":"keep-alive timeout"}`},
		{Event{Kind: EventRegistered, Time: at, PoolHandle: tlv.PoolHandle{0, 1}, PEID: 42, PE: pe},
			`{"Kind":"registered","Time":"2026-12-01T10:00:00Z","PoolHandle":"0x0001","PEID":"0x0000002a","PE":{"ID":"0x0000002a",` +
				`"HomeServerID":"0x1234abcd","RegistrationLife":30000,"UserTransport":{"Type":"SCTP Transport","Port":7,"Use":"data only",` +
				`"Addrs":["10.0.0.9"]},"Policy":{"Type":"LeastUsed","Load":0.25}}}`},
	} {
		b, err := json.Marshal(c.v)
		if err != nil {
			t.Fatal(err)
		}
		if string(b) != c.want {
			t.Errorf("%T:\ngot  %s\nwant %s", c.v, b, c.want)
		}
	}
	// What a host reads back.
	var back PoolElementInfo
	b, _ := json.Marshal(PoolElementInfo{PE: pe, Remote: transport.Addr{Kind: transport.KindMem, AddrPort: netip.MustParseAddrPort("10.0.0.9:5000")}})
	if err := json.Unmarshal(b, &back); err != nil || back.PE.ID != 42 || string(back.PE.AppendTo(nil)) != string(pe.AppendTo(nil)) || back.Remote.AddrPort.Port() != 5000 {
		t.Errorf("read back %+v, %v", back, err)
	}
	var k EventKind
	if err := k.UnmarshalText([]byte("updated")); err != nil || k != EventUpdated {
		t.Errorf("EventKind %v, %v", k, err)
	}
	if err := k.UnmarshalText([]byte("gone")); err == nil {
		t.Error("unknown kind accepted")
	}
}
