package tlv_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"net/netip"
	"strings"
	"testing"

	"github.com/go-rserpool/rserpool/internal/policyjson"
	"github.com/go-rserpool/rserpool/policy"
	"github.com/go-rserpool/rserpool/tlv"
)

func TestFormatID(t *testing.T) {
	eq(t, "0x0000002a", tlv.FormatID(42))
	eq(t, "0x00000000", tlv.FormatID(0))
	eq(t, "0xffffffff", tlv.FormatID(0xffffffff))
	eq(t, "0xdeadbeef", tlv.PEIdentifier(0xdeadbeef).String())
	eq(t, "0x00000007", tlv.ServerID(7).String())
}

func TestParseID(t *testing.T) {
	for s, want := range map[string]uint32{
		"0x0000002a": 42, "0x2a": 42, "0X2A": 42, "42": 42, "0": 0,
		"0xffffffff": 0xffffffff, "4294967295": 0xffffffff,
	} {
		got, err := tlv.ParseID(s)
		noErr(t, err, s)
		eq(t, want, got, s)
	}
	for _, s := range []string{"", "0x", "0x123456789", "4294967296", "-1", "+1", "abc", "0x2g", " 42", "0x_2a", "1_000"} {
		_, err := tlv.ParseID(s)
		isErr(t, err, tlv.ErrBadText, "%q", s)
	}
}

func TestPoolHandleText(t *testing.T) {
	for _, c := range []struct {
		h    tlv.PoolHandle
		want string
	}{
		{tlv.PoolHandle("echo"), "echo"},
		{tlv.PoolHandle("web pool-1"), "web pool-1"},
		{tlv.PoolHandle("héllo"), "héllo"},
		{tlv.PoolHandle{}, ""},
		{tlv.PoolHandle{0x00, 0x01, 0xff}, "0x0001ff"},
		{tlv.PoolHandle("tab\there"), "0x7461620968657265"}, // control character
		{tlv.PoolHandle{0xc3}, "0xc3"},                      // invalid UTF-8
		{tlv.PoolHandle("0xab"), "0x30786162"},              // text that reads as hex
	} {
		eq(t, c.want, c.h.String())
		b, err := c.h.MarshalText()
		noErr(t, err)
		eq(t, c.want, string(b))
		back, err := tlv.ParsePoolHandle(c.want)
		noErr(t, err)
		truth(t, back.Equal(c.h), "%q read back as %q", c.want, []byte(back))
	}
	_, err := tlv.ParsePoolHandle("0xabc")
	isErr(t, err, tlv.ErrBadText)

	// In JSON, as a map key too: a string, not base64 ("ZWNobw==").
	b, err := json.Marshal(map[string]tlv.PoolHandle{"h": tlv.PoolHandle("echo")})
	noErr(t, err)
	jsonEq(t, `{"h":"echo"}`, string(b))
	var back struct{ H tlv.PoolHandle }
	noErr(t, json.Unmarshal([]byte(`{"H":"0x0001"}`), &back))
	eq(t, tlv.PoolHandle{0, 1}, back.H)
}

func TestEnumText(t *testing.T) {
	for _, c := range []struct {
		v    interface{ MarshalText() ([]byte, error) }
		want string
	}{
		{tlv.ParamSCTPTransport, "SCTP Transport"},
		{tlv.ParamType(0x7001), "0x7001"},
		{tlv.TransportUseDataOnly, "data only"},
		{tlv.TransportUseDataPlusControl, "data plus control"},
		{tlv.TransportUse(2), "0x0002"},
		{tlv.CauseUnknownPoolHandle, "Unknown Pool Handle"},
		{tlv.CauseCode(0x20), "0x0020"},
		{tlv.ASAPRegistration, "ASAP_REGISTRATION"},
		{tlv.ENRPPresence, "ENRP_PRESENCE"},
	} {
		b, err := c.v.MarshalText()
		noErr(t, err)
		eq(t, c.want, string(b))
	}
	var pt tlv.ParamType
	noErr(t, pt.UnmarshalText([]byte("UDP Transport")))
	eq(t, tlv.ParamUDPTransport, pt)
	noErr(t, pt.UnmarshalText([]byte("0x7001")))
	eq(t, tlv.ParamType(0x7001), pt)
	isErr(t, pt.UnmarshalText([]byte("SCTP")), tlv.ErrBadText)
	var u tlv.TransportUse
	noErr(t, u.UnmarshalText([]byte("data plus control")))
	eq(t, tlv.TransportUseDataPlusControl, u)
	var cc tlv.CauseCode
	noErr(t, cc.UnmarshalText([]byte("Lack of Resources")))
	eq(t, tlv.CauseLackOfResources, cc)
	isErr(t, cc.UnmarshalText([]byte("0x12345")), tlv.ErrBadText)
}

func TestTransportString(t *testing.T) {
	lo, v6 := netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("::1")
	eq(t, "sctp 127.0.0.1:9000 [::1]:9000 (data plus control)",
		tlv.NewSCTPTransport(9000, tlv.TransportUseDataPlusControl, lo, v6).String())
	eq(t, "udp 127.0.0.1:53", tlv.NewUDPTransport(53, lo).String())
	eq(t, "dccp 127.0.0.1:5 service 7", tlv.NewDCCPTransport(5, 7, lo).String())
	eq(t, "tcp port 80", tlv.Transport{Type: tlv.ParamTCPTransport, Port: 80}.String())
	eq(t, "none", tlv.Transport{}.String())
}

// samplePE is a Pool Element as a registrar stores it: home server,
// policy with a load, ASAP transport.
func samplePE() tlv.PoolElement {
	lo := netip.MustParseAddr("127.0.0.1")
	return tlv.PoolElement{
		ID:               42,
		HomeServerID:     0xbeef,
		RegistrationLife: 30000,
		UserTransport:    tlv.NewSCTPTransport(9000, tlv.TransportUseDataOnly, lo, netip.MustParseAddr("::1")),
		Policy:           policy.Encode(policy.LeastUsedDegradation, policy.Values{Load: 0x40000000, LoadDegradation: policy.FromFraction(0.1)}),
		ASAPTransport:    tlv.NewSCTPTransport(9001, tlv.TransportUseDataOnly, lo),
	}
}

const samplePEJSON = `{"ID":"0x0000002a","HomeServerID":"0x0000beef","RegistrationLife":30000,` +
	`"UserTransport":{"Type":"SCTP Transport","Port":9000,"Use":"data only","Addrs":["127.0.0.1","::1"]},` +
	`"Policy":{"Type":"LeastUsedDegradation","Load":0.25,"LoadDegradation":0.1},` +
	`"ASAPTransport":{"Type":"SCTP Transport","Port":9001,"Use":"data only","Addrs":["127.0.0.1"]}}`

// TestPoolElementJSON: what a status page shows of a PE. Before: ID 42,
// HomeServerID 48879, Policy {"Type":1073741826,"Value":"QAAAABmZmZo="},
// Transport Type 4, Use 0.
func TestPoolElementJSON(t *testing.T) {
	pe := samplePE()
	b, err := json.Marshal(pe)
	noErr(t, err)
	eq(t, samplePEJSON, string(b))

	var back tlv.PoolElement
	noErr(t, json.Unmarshal(b, &back))
	eq(t, pe.AppendTo(nil), back.AppendTo(nil), "wire form after a JSON round trip")

	// A parsed PE (unknown parameters, no ASAP transport) round-trips too.
	pe.ASAPTransport = tlv.Transport{}
	pe.Unknown = []tlv.RawParam{{Type: 0x7001, Value: []byte{1, 2}, Index: 3}}
	b, err = json.Marshal(pe)
	noErr(t, err)
	hasNot(t, string(b), "ASAPTransport")
	has(t, string(b), `"Unknown":[{"Type":"0x7001","Value":"0x0102","Index":3}]`)
	back = tlv.PoolElement{}
	noErr(t, json.Unmarshal(b, &back))
	eq(t, pe, back)
}

func TestServerInfoJSON(t *testing.T) {
	si := tlv.ServerInfo{ServerID: 0x2a, Transport: tlv.NewSCTPTransport(9901, tlv.TransportUseDataOnly, netip.MustParseAddr("127.0.0.1"))}
	b, err := json.Marshal(si)
	noErr(t, err)
	eq(t, `{"ServerID":"0x0000002a","Transport":{"Type":"SCTP Transport","Port":9901,"Use":"data only","Addrs":["127.0.0.1"]}}`, string(b))
	var back tlv.ServerInfo
	noErr(t, json.Unmarshal(b, &back))
	eq(t, si, back)
}

func TestCauseJSON(t *testing.T) {
	b, err := json.Marshal([]tlv.Cause{{Code: tlv.CauseUnknownPoolHandle}, {Code: 0x1, Info: []byte{0, 9}}})
	noErr(t, err)
	eq(t, `[{"Code":"Unknown Pool Handle"},{"Code":"Unrecognized Parameter","Info":"0x0009"}]`, string(b))
	var back []tlv.Cause
	noErr(t, json.Unmarshal(b, &back))
	eq(t, tlv.CauseUnrecognizedParameter, back[1].Code)
	eq(t, []byte{0, 9}, back[1].Info)
}

// TestPolicyJSONRaw: a policy package policy cannot read (unknown type,
// wrong length) keeps its code and bytes.
func TestPolicyJSONRaw(t *testing.T) {
	for _, p := range []tlv.Policy{
		{Type: 0x4000000f, Value: []byte{1, 2, 3, 4}},
		{Type: uint32(policy.LeastUsed), Value: []byte{1, 2}}, // bad length
		{Type: 0x4000000f},
	} {
		b, err := json.Marshal(p)
		noErr(t, err)
		has(t, string(b), `"Type":"0x`)
		var back tlv.Policy
		noErr(t, json.Unmarshal(b, &back), string(b))
		eq(t, p.AppendTo(nil), back.AppendTo(nil), string(b))
	}
	b, _ := json.Marshal(tlv.Policy{Type: 0x4000000f, Value: []byte{1, 2, 3, 4}})
	eq(t, `{"Type":"0x4000000f","Value":"0x01020304"}`, string(b))
}

// TestPolicyJSONWithoutPolicy: a program that links tlv without policy
// still gets the raw form, and reads it back.
func TestPolicyJSONWithoutPolicy(t *testing.T) {
	m, u := policyjson.Marshal, policyjson.Unmarshal
	policyjson.Marshal, policyjson.Unmarshal = nil, nil
	defer func() { policyjson.Marshal, policyjson.Unmarshal = m, u }()

	p := policy.Encode(policy.LeastUsed, policy.Values{Load: 0x40000000})
	b, err := json.Marshal(p)
	noErr(t, err)
	eq(t, `{"Type":"0x40000001","Value":"0x40000000"}`, string(b))
	var back tlv.Policy
	noErr(t, json.Unmarshal(b, &back))
	eq(t, p, back)
	err = json.Unmarshal([]byte(`{"Type":"LeastUsed","Load":0.25}`), &back)
	isErr(t, err, tlv.ErrBadText)
}

// TestLogAttrs: identifiers and handles passed to slog as typed values
// print in the module's forms with both standard handlers.
func TestLogAttrs(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{ReplaceAttr: dropTime}))
	log.Info("x", "pool", tlv.PoolHandle("echo"), "raw", tlv.PoolHandle{1, 2}, "pe", tlv.PEIdentifier(42), "server", tlv.ServerID(0xbeef))
	eq(t, "level=INFO msg=x pool=echo raw=0x0102 pe=0x0000002a server=0x0000beef\n", buf.String())
	buf.Reset()
	log = slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{ReplaceAttr: dropTime}))
	log.Info("x", "pool", tlv.PoolHandle("echo"), "pe", tlv.PEIdentifier(42))
	eq(t, `{"level":"INFO","msg":"x","pool":"echo","pe":"0x0000002a"}`+"\n", buf.String())
}

func dropTime(_ []string, a slog.Attr) slog.Attr {
	if a.Key == slog.TimeKey {
		return slog.Attr{}
	}
	return a
}

func FuzzPoolHandleText(f *testing.F) {
	for _, s := range []string{"echo", "", "0x", "0x00ff", "0xabc", "\xff", "a\x00b"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		// Any handle reads back from its text form.
		h := tlv.PoolHandle(b)
		back, err := tlv.ParsePoolHandle(h.String())
		if err != nil || !back.Equal(h) {
			t.Fatalf("%q: String %q read back as %q, %v", b, h.String(), []byte(back), err)
		}
		// Any text either fails cleanly or gives a handle whose text reads
		// back to the same handle.
		var u tlv.PoolHandle
		if err := u.UnmarshalText(b); err != nil {
			if !errors.Is(err, tlv.ErrBadText) {
				t.Fatalf("%q: %v", b, err)
			}
			return
		}
		again, err := tlv.ParsePoolHandle(u.String())
		if err != nil || !again.Equal(u) {
			t.Fatalf("%q: not stable: %q", b, u.String())
		}
	})
}

func FuzzParseID(f *testing.F) {
	for _, s := range []string{"0x0000002a", "42", "0x", "", "0xffffffff", "99999999999"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var id tlv.PEIdentifier
		if err := id.UnmarshalText([]byte(s)); err != nil {
			return
		}
		if strings.HasPrefix(s, "0x") || strings.HasPrefix(s, "0X") {
			if !strings.EqualFold(strings.TrimLeft(s[2:], "0"), strings.TrimLeft(id.String()[2:], "0")) {
				t.Fatalf("%q read as %v", s, id)
			}
		}
		var back tlv.PEIdentifier
		if err := back.UnmarshalText([]byte(id.String())); err != nil || back != id {
			t.Fatalf("%v read back as %v, %v", id, back, err)
		}
	})
}
