package tlv

import (
	"encoding/hex"
	"net/netip"
	"strings"
	"testing"
)

// hx decodes hex with spaces and "|" separators, for byte sequences written
// field by field from the RFC diagrams.
func hx(s string) []byte {
	s = strings.NewReplacer(" ", "", "|", "", "\n", "", "\t", "").Replace(s)
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

// Fragments, each built from the RFC 5354 diagram of its parameter.
const (
	// §3.9 Pool Handle "pool": type 0x0009, length 8.
	gPHPool = "0009 0008 | 706f6f6c"
	// §3.9 Pool Handle "abc": length 7 (padding not counted), 1 pad byte.
	gPHabc = "0009 0007 | 616263 00"
	// §3.1 IPv4 Address 10.0.0.1.
	gV4 = "0001 0008 | 0a000001"
	// §3.2 IPv6 Address 2001:db8::1.
	gV6 = "0002 0014 | 20010db8 00000000 00000000 00000001"
	// §3.4 SCTP Transport, port 0x1234, use 1 (data plus control), IPv4.
	gSCTPv4 = "0004 0010 | 1234 0001 |" + gV4
	// §3.4 SCTP Transport, port 3863 (0x0f17), use 0, IPv4 + IPv6.
	gSCTPv46 = "0004 0024 | 0f17 0000 |" + gV4 + gV6
	// §3.8 Pool Member Selection Policy, type 1 (Round Robin, RFC 5356).
	gPolicyRR = "0008 0008 | 00000001"
	// §3.10 Pool Element: PE ID 0x2a, home 0, life 30000 ms, user
	// transport, policy. 4+12+16+8 = 40 = 0x28.
	gPE = "000a 0028 | 0000002a | 00000000 | 00007530 |" + gSCTPv4 + gPolicyRR
	// Pool Element with an ASAP transport (ENRP form): 40+36 = 76 = 0x4c.
	gPEASAP = "000a 004c | 0000002a | 11111111 | 00007530 |" + gSCTPv4 + gPolicyRR + gSCTPv46
	// §3.14 PE Identifier 0x2a.
	gPEID = "000e 0008 | 0000002a"
	// §3.12 Operation Error with one cause, Unknown Pool Handle (0x9).
	gOpErr = "000c 0008 | 0009 0004"
	// §3.13 Cookie "cookie!" (7 bytes): length 11, 1 pad byte.
	gCookie = "000d 000b | 636f6f6b 696521 00"
	// §3.11 Server Information: server ID 0x01020304, SCTP transport.
	gServerInfo = "000b 0018 | 01020304 |" + gSCTPv4
)

var (
	a4 = netip.MustParseAddr("10.0.0.1")
	a6 = netip.MustParseAddr("2001:db8::1")
)

func sctpV4() Transport {
	return Transport{Type: ParamSCTPTransport, Port: 0x1234, Use: TransportUseDataPlusControl, Addrs: []netip.Addr{a4}}
}

func sctpV46() Transport {
	return Transport{Type: ParamSCTPTransport, Port: 3863, Use: TransportUseDataOnly, Addrs: []netip.Addr{a4, a6}}
}

func goldenPE() PoolElement {
	return PoolElement{ID: 0x2a, RegistrationLife: 30000, UserTransport: sctpV4(), Policy: Policy{Type: 1, Value: []byte{}}}
}

func goldenPEASAP() PoolElement {
	pe := goldenPE()
	pe.HomeServerID = 0x11111111
	pe.ASAPTransport = sctpV46()
	return pe
}

type goldenCase struct {
	name string
	rfc  string // section whose diagram the bytes follow
	wire string
	want any
}

// roundTrip checks parse → struct → AppendTo gives the same bytes and Len.
func checkEncode(t *testing.T, want []byte, m interface {
	Len() int
	AppendTo([]byte) []byte
}) {
	t.Helper()
	mustEqual(t, len(want), m.Len(), "Len")
	got := m.AppendTo(make([]byte, 0, len(want)))
	mustEqual(t, hex.EncodeToString(want), hex.EncodeToString(got))
}

func TestGoldenParams(t *testing.T) {
	cases := []goldenCase{
		{"IPv4", "RFC 5354 §3.1", gV4, Address{Addr: a4}},
		{"IPv6", "RFC 5354 §3.2", gV6, Address{Addr: a6}},
		{"DCCP", "RFC 5354 §3.3", "0003 0014 | 0050 0000 | 00000007 |" + gV4,
			Transport{Type: ParamDCCPTransport, Port: 80, ServiceCode: 7, Addrs: []netip.Addr{a4}}},
		{"SCTP", "RFC 5354 §3.4", gSCTPv46, sctpV46()},
		{"TCP", "RFC 5354 §3.5", "0005 0010 | 0050 0001 |" + gV4,
			Transport{Type: ParamTCPTransport, Port: 80, Use: TransportUseDataPlusControl, Addrs: []netip.Addr{a4}}},
		{"UDP", "RFC 5354 §3.6", "0006 001c | 0035 0000 |" + gV6,
			Transport{Type: ParamUDPTransport, Port: 53, Addrs: []netip.Addr{a6}}},
		{"UDPLite", "RFC 5354 §3.7", "0007 0010 | 0035 0000 |" + gV4,
			Transport{Type: ParamUDPLiteTransport, Port: 53, Addrs: []netip.Addr{a4}}},
		{"Policy", "RFC 5354 §3.8 / RFC 5356 §4.1", gPolicyRR, Policy{Type: 1, Value: []byte{}}},
		{"PolicyWeighted", "RFC 5354 §3.8 / RFC 5356 §4.2", "0008 000c | 00000003 | 00000005",
			Policy{Type: 3, Value: []byte{0, 0, 0, 5}}},
		{"PoolHandle", "RFC 5354 §3.9", gPHabc, PoolHandle("abc")},
		{"PoolElement", "RFC 5354 §3.10", gPE, goldenPE()},
		{"PoolElementASAP", "RFC 5354 §3.10", gPEASAP, goldenPEASAP()},
		{"ServerInformation", "RFC 5354 §3.11", gServerInfo, ServerInfo{ServerID: 0x01020304, Transport: sctpV4()}},
		{"OperationError", "RFC 5354 §3.12", gOpErr, OperationError{Causes: []Cause{{Code: CauseUnknownPoolHandle, Info: []byte{}}}}},
		{"OperationErrorTwoCauses", "RFC 5354 §3.12", "000c 0014 | 0003 000b | 00010006 abcd 00 00 | 0006 0004",
			OperationError{Causes: []Cause{
				{Code: CauseInvalidValues, Info: hx("00010006 abcd 00")},
				{Code: CauseLackOfResources, Info: []byte{}},
			}}},
		{"Cookie", "RFC 5354 §3.13", gCookie, CookieParam("cookie!")},
		{"PEIdentifier", "RFC 5354 §3.14", gPEID, PEIdentifier(0x2a)},
		{"PEChecksum", "RFC 5354 §3.15", "000f 0006 | beef 0000", PEChecksum(0xbeef)},
		{"HandleResolutionOption", "draft-dreibholz-rserpool-asap-hropt §3", "803f 0008 | 00000010", HandleResolutionOption(16)},
		{"UnknownSkip", "RFC 5354 §2 (action 10)", "8123 0006 | 4142 0000", RawParam{Type: 0x8123, Value: []byte("AB")}},
		{"UnknownSkipReport", "RFC 5354 §2 (action 11)", "c123 0004", RawParam{Type: 0xc123, Value: []byte{}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := hx(c.wire)
			got, n, err := ParseParam(b)
			mustNoErr(t, err, c.rfc)
			mustEqual(t, len(b), n)
			mustEqual(t, c.want, got, c.rfc)
			checkEncode(t, b, got)
			// The struct built by hand encodes to the same bytes.
			checkEncode(t, b, c.want.(Param))
		})
	}
}

func TestGoldenASAP(t *testing.T) {
	opErr := &OperationError{Causes: []Cause{{Code: CauseUnknownPoolHandle, Info: []byte{}}}}
	policy := &Policy{Type: 1, Value: []byte{}}
	cases := []goldenCase{
		{"Registration", "RFC 5352 §2.2.1", "01 00 0034 |" + gPHPool + gPE,
			&Registration{PoolHandle: PoolHandle("pool"), PE: goldenPE()}},
		{"Deregistration", "RFC 5352 §2.2.2", "02 00 0014 |" + gPHPool + gPEID,
			&Deregistration{PoolHandle: PoolHandle("pool"), PEID: 0x2a}},
		{"RegistrationResponse", "RFC 5352 §2.2.3", "03 00 0014 |" + gPHPool + gPEID,
			&RegistrationResponse{PoolHandle: PoolHandle("pool"), PEID: 0x2a}},
		{"RegistrationResponseReject", "RFC 5352 §2.2.3 (R bit)", "03 01 001c |" + gPHPool + gPEID + gOpErr,
			&RegistrationResponse{Reject: true, PoolHandle: PoolHandle("pool"), PEID: 0x2a, Error: opErr}},
		{"DeregistrationResponse", "RFC 5352 §2.2.4", "04 00 001c |" + gPHPool + gPEID + gOpErr,
			&DeregistrationResponse{PoolHandle: PoolHandle("pool"), PEID: 0x2a, Error: opErr}},
		{"HandleResolution", "RFC 5352 §2.2.5", "05 00 000c |" + gPHabc,
			&HandleResolution{PoolHandle: PoolHandle("abc")}},
		{"HandleResolutionHROPT", "RFC 5352 §2.2.5 + draft-dreibholz-rserpool-asap-hropt", "05 00 0014 |" + gPHabc + "803f 0008 ffffffff",
			&HandleResolution{PoolHandle: PoolHandle("abc"), HasItems: true, Items: HROPTAsManyAsPossible}},
		{"HandleResolutionResponse", "RFC 5352 §2.2.6", "06 00 003c |" + gPHPool + gPolicyRR + gPE,
			&HandleResolutionResponse{PoolHandle: PoolHandle("pool"), Policy: policy, PEs: []PoolElement{goldenPE()}}},
		{"HandleResolutionResponseError", "RFC 5352 §2.2.6", "06 00 0014 |" + gPHPool + gOpErr,
			&HandleResolutionResponse{PoolHandle: PoolHandle("pool"), Error: opErr}},
		{"EndpointKeepAlive", "RFC 5352 §2.2.7 (H bit, Server Identifier)", "07 01 0010 | 01020304 |" + gPHPool,
			&EndpointKeepAlive{Home: true, ServerID: 0x01020304, PoolHandle: PoolHandle("pool")}},
		{"EndpointKeepAlivePEID", "RFC 5352 §2.2.7 + RSPLIB PE Identifier", "07 00 0018 | 01020304 |" + gPHPool + gPEID,
			&EndpointKeepAlive{ServerID: 0x01020304, PoolHandle: PoolHandle("pool"), HasPEID: true, PEID: 0x2a}},
		{"EndpointKeepAliveAck", "RFC 5352 §2.2.8", "08 00 0014 |" + gPHPool + gPEID,
			&EndpointKeepAliveAck{PoolHandle: PoolHandle("pool"), PEID: 0x2a}},
		{"EndpointUnreachable", "RFC 5352 §2.2.9", "09 00 0014 |" + gPHPool + gPEID,
			&EndpointUnreachable{PoolHandle: PoolHandle("pool"), PEID: 0x2a}},
		{"ServerAnnounce", "RFC 5352 §2.2.10", "0a 00 0028 | 01020304 |" + gSCTPv4 + "0006 0010 | 0f17 0000 |" + gV4,
			&ServerAnnounce{ServerID: 0x01020304, Transports: []Transport{sctpV4(),
				{Type: ParamUDPTransport, Port: 3863, Addrs: []netip.Addr{a4}}}}},
		{"ServerAnnounceEmpty", "RFC 5352 §2.2.10", "0a 00 0008 | 01020304",
			&ServerAnnounce{ServerID: 0x01020304}},
		{"Cookie", "RFC 5352 §2.2.11", "0b 00 0010 |" + gCookie,
			&CookieMessage{Cookie: []byte("cookie!")}},
		{"CookieEcho", "RFC 5352 §2.2.12", "0c 00 0010 |" + gCookie,
			&CookieEcho{Cookie: []byte("cookie!")}},
		{"BusinessCard", "RFC 5352 §2.2.13", "0d 00 003c |" + gPHPool + gPolicyRR + gPE,
			&BusinessCard{PoolHandle: PoolHandle("pool"), Policy: policy, PEs: []PoolElement{goldenPE()}}},
		{"Error", "RFC 5352 §2.2.14", "0e 00 000c |" + gOpErr,
			&ASAPError{Error: *opErr}},
		{"RegistrationUnknownSkip", "RFC 5352 §2.2.1 + RFC 5354 §2 (unknown kept in place)",
			"01 00 003c |" + gPHPool + "c001 0005 | 7a 000000" + gPE,
			&Registration{PoolHandle: PoolHandle("pool"), PE: goldenPE(),
				Unknown: []RawParam{{Type: 0xc001, Value: []byte("z"), Index: 1}}}},
	}
	runGoldenMessages(t, cases, ParseASAP, func(m ASAPMessage, b byte) (any, any) { return m.ASAPType(), ASAPType(b) })
}

func TestGoldenENRP(t *testing.T) {
	const ids = "01020304 | 0a0b0c0d |"
	h := ENRPHeader{SenderID: 0x01020304, ReceiverID: 0x0a0b0c0d}
	si := ServerInfo{ServerID: 0x01020304, Transport: sctpV4()}
	cases := []goldenCase{
		{"Presence", "RFC 5353 §2.1 (R bit)", "01 01 002c |" + ids + "000f 0006 beef 0000 |" + gServerInfo,
			&Presence{ENRPHeader: h, ReplyRequired: true, Checksum: 0xbeef, Info: &si}},
		{"PresenceNoInfo", "RFC 5353 §2.1", "01 00 0014 |" + ids + "000f 0006 beef 0000",
			&Presence{ENRPHeader: h, Checksum: 0xbeef}},
		{"HandleTableRequest", "RFC 5353 §2.2 (W bit)", "02 01 000c |" + ids,
			&HandleTableRequest{ENRPHeader: h, OwnChildrenOnly: true}},
		{"HandleTableResponse", "RFC 5353 §2.3 (M bit)", "03 02 0100 |" + ids + gPHPool + gPEASAP + gPEASAP + gPHabc + gPEASAP,
			&HandleTableResponse{ENRPHeader: h, MoreToSend: true, Pools: []PoolEntry{
				{PoolHandle: PoolHandle("pool"), PEs: []PoolElement{goldenPEASAP(), goldenPEASAP()}},
				{PoolHandle: PoolHandle("abc"), PEs: []PoolElement{goldenPEASAP()}},
			}}},
		{"HandleTableResponseReject", "RFC 5353 §2.3 (R bit)", "03 01 000c |" + ids,
			&HandleTableResponse{ENRPHeader: h, Reject: true}},
		{"HandleUpdate", "RFC 5353 §2.4", "04 00 0064 |" + ids + "0001 0000 |" + gPHPool + gPEASAP,
			&HandleUpdate{ENRPHeader: h, Action: UpdateDelPE, PoolHandle: PoolHandle("pool"), PE: goldenPEASAP()}},
		{"ListRequest", "RFC 5353 §2.5", "05 00 000c |" + ids, &ListRequest{ENRPHeader: h}},
		{"ListResponse", "RFC 5353 §2.6", "06 00 003c |" + ids + gServerInfo + gServerInfo,
			&ListResponse{ENRPHeader: h, Servers: []ServerInfo{si, si}}},
		{"ListResponseReject", "RFC 5353 §2.6 (R bit)", "06 01 000c |" + ids,
			&ListResponse{ENRPHeader: h, Reject: true}},
		{"InitTakeover", "RFC 5353 §2.7", "07 00 0010 |" + ids + "deadbeef",
			&InitTakeover{ENRPHeader: h, TargetID: 0xdeadbeef}},
		{"InitTakeoverAck", "RFC 5353 §2.8", "08 00 0010 |" + ids + "deadbeef",
			&InitTakeoverAck{ENRPHeader: h, TargetID: 0xdeadbeef}},
		{"TakeoverServer", "RFC 5353 §2.9", "09 00 0010 |" + ids + "deadbeef",
			&TakeoverServer{ENRPHeader: h, TargetID: 0xdeadbeef}},
		{"Error", "RFC 5353 §2.10", "0a 00 0014 |" + ids + gOpErr,
			&ENRPError{ENRPHeader: h, Error: OperationError{Causes: []Cause{{Code: CauseUnknownPoolHandle, Info: []byte{}}}}}},
	}
	runGoldenMessages(t, cases, ParseENRP, func(m ENRPMessage, b byte) (any, any) { return m.ENRPType(), ENRPType(b) })
}

// runGoldenMessages parses each case's bytes, compares the result with the
// struct built by hand, re-encodes both and compares the bytes, and checks
// that the message's type (typeOf: the struct's type and the type byte on
// the wire) matches the first byte.
func runGoldenMessages[M Message](t *testing.T, cases []goldenCase, parse func([]byte) (M, error), typeOf func(m M, b byte) (any, any)) {
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := hx(c.wire)
			m, err := parse(b)
			mustNoErr(t, err, c.rfc)
			mustEqual(t, c.want, m, c.rfc)
			checkEncode(t, b, m)
			checkEncode(t, b, c.want.(Message))
			want, got := typeOf(c.want.(M), b[0])
			mustEqual(t, want, got)
		})
	}
}
