package tlv

import (
	"net/netip"
)

// benchPE returns a PE with an SCTP user transport holding an IPv4 and an
// IPv6 address, as a dual-stack PE registers.
func benchPE(i int, asap bool) PoolElement {
	pe := PoolElement{
		ID:               uint32(0x1000 + i),
		HomeServerID:     0x55,
		RegistrationLife: 30000,
		UserTransport: Transport{Type: ParamSCTPTransport, Port: 7000, Use: TransportUseDataPlusControl,
			Addrs: []netip.Addr{netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}), netip.MustParseAddr("2001:db8::7")}},
		Policy: Policy{Type: 1, Value: []byte{}},
	}
	if asap {
		pe.ASAPTransport = Transport{Type: ParamSCTPTransport, Port: 7001, Addrs: []netip.Addr{netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)})}}
	}
	return pe
}

func hrr(n int) *HandleResolutionResponse {
	m := &HandleResolutionResponse{PoolHandle: PoolHandle("EchoPool"), Policy: &Policy{Type: 1, Value: []byte{}}}
	for i := 0; i < n; i++ {
		m.PEs = append(m.PEs, benchPE(i, false))
	}
	return m
}

func registration() *Registration {
	return &Registration{PoolHandle: PoolHandle("EchoPool"), PE: benchPE(1, false)}
}

func tableResponse(n int) *HandleTableResponse {
	m := &HandleTableResponse{ENRPHeader: ENRPHeader{SenderID: 1, ReceiverID: 2}, MoreToSend: true}
	var pes []PoolElement
	for i := 0; i < n; i++ {
		pes = append(pes, benchPE(i, true))
	}
	m.Pools = []PoolEntry{{PoolHandle: PoolHandle("EchoPool"), PEs: pes}}
	return m
}

// sampleMessages is one of each kind, used as fuzz seeds and benchmarks.
func sampleASAP() map[string]ASAPMessage {
	return map[string]ASAPMessage{
		"Registration":                registration(),
		"HandleResolution":            &HandleResolution{PoolHandle: PoolHandle("EchoPool"), HasItems: true, Items: 3},
		"HandleResolutionResponse/1":  hrr(1),
		"HandleResolutionResponse/16": hrr(16),
		"EndpointKeepAlive":           &EndpointKeepAlive{Home: true, ServerID: 0x55, PoolHandle: PoolHandle("EchoPool"), HasPEID: true, PEID: 0x1001},
		"ServerAnnounce":              &ServerAnnounce{ServerID: 9, Transports: []Transport{NewSCTPTransport(3863, 0, netip.MustParseAddr("10.1.1.1"))}},
		"BusinessCard":                &BusinessCard{PoolHandle: PoolHandle("EchoPool"), PEs: []PoolElement{benchPE(1, false)}},
		"RegistrationResponse":        &RegistrationResponse{Reject: true, PoolHandle: PoolHandle("p"), PEID: 1, Error: NewOperationError(CauseInvalidValues, []byte{0, 9, 0, 4})},
		"CookieEcho":                  &CookieEcho{Cookie: []byte("cookie")},
		"ASAPError":                   &ASAPError{Error: *NewOperationError(CauseUnrecognizedMessage, []byte{0xf, 0, 0, 4})},
	}
}

func sampleENRP() map[string]ENRPMessage {
	si := ServerInfo{ServerID: 3, Transport: NewSCTPTransport(9901, 0, netip.MustParseAddr("10.2.2.2"), netip.MustParseAddr("fd00::2"))}
	return map[string]ENRPMessage{
		"Presence":                &Presence{ENRPHeader: ENRPHeader{SenderID: 1}, ReplyRequired: true, Checksum: 0x1234, Info: &si},
		"HandleUpdate":            &HandleUpdate{ENRPHeader: ENRPHeader{SenderID: 1, ReceiverID: 2}, PoolHandle: PoolHandle("EchoPool"), PE: benchPE(1, true)},
		"HandleTableResponse/128": tableResponse(128),
		"ListResponse":            &ListResponse{ENRPHeader: ENRPHeader{SenderID: 1, ReceiverID: 2}, Servers: []ServerInfo{si, si}},
		"InitTakeover":            &InitTakeover{ENRPHeader: ENRPHeader{SenderID: 1}, TargetID: 7},
		"ENRPError":               &ENRPError{ENRPHeader: ENRPHeader{SenderID: 1}, Error: *NewOperationError(CauseLackOfResources, nil)},
	}
}
