package tlv

import "testing"

// codePoint is one row of a code point table: the constant, the value and
// name the registry gives it.
type codePoint[T interface {
	~uint8 | ~uint16
	String() string
}] struct {
	got  T
	want uint16
	name string
}

// checkCodePoints checks value and String of each constant; digits is the
// hex width of the code.
func checkCodePoints[T interface {
	~uint8 | ~uint16
	String() string
}](t *testing.T, digits int, cases []codePoint[T]) {
	t.Helper()
	for _, c := range cases {
		if uint16(c.got) != c.want || c.got.String() != c.name {
			t.Errorf("%s: got 0x%0*x %q, want 0x%0*x", c.name, digits, uint16(c.got), c.got.String(), digits, c.want)
		}
	}
}

// TestIANACodePoints checks the code points against the IANA "Reliable
// Server Pooling (RSerPool) Parameters" registry (RFC 5352 §7, RFC 5353 §7,
// RFC 5354 §5). The values here are typed in from the registry, not derived
// from the constants.
func TestIANACodePoints(t *testing.T) {
	checkCodePoints(t, 2, []codePoint[ASAPType]{
		{ASAPRegistration, 0x01, "ASAP_REGISTRATION"},
		{ASAPDeregistration, 0x02, "ASAP_DEREGISTRATION"},
		{ASAPRegistrationResponse, 0x03, "ASAP_REGISTRATION_RESPONSE"},
		{ASAPDeregistrationResponse, 0x04, "ASAP_DEREGISTRATION_RESPONSE"},
		{ASAPHandleResolution, 0x05, "ASAP_HANDLE_RESOLUTION"},
		{ASAPHandleResolutionResponse, 0x06, "ASAP_HANDLE_RESOLUTION_RESPONSE"},
		{ASAPEndpointKeepAlive, 0x07, "ASAP_ENDPOINT_KEEP_ALIVE"},
		{ASAPEndpointKeepAliveAck, 0x08, "ASAP_ENDPOINT_KEEP_ALIVE_ACK"},
		{ASAPEndpointUnreachable, 0x09, "ASAP_ENDPOINT_UNREACHABLE"},
		{ASAPServerAnnounce, 0x0a, "ASAP_SERVER_ANNOUNCE"},
		{ASAPCookie, 0x0b, "ASAP_COOKIE"},
		{ASAPCookieEcho, 0x0c, "ASAP_COOKIE_ECHO"},
		{ASAPBusinessCard, 0x0d, "ASAP_BUSINESS_CARD"},
		{ASAPErrorType, 0x0e, "ASAP_ERROR"},
	})
	// ENRP: the registry lists ENRP_ERROR as 0x10; RFC 5353, RSPLIB and
	// Wireshark use 0x0a, which is what we send.
	checkCodePoints(t, 2, []codePoint[ENRPType]{
		{ENRPPresence, 0x01, "ENRP_PRESENCE"},
		{ENRPHandleTableRequest, 0x02, "ENRP_HANDLE_TABLE_REQUEST"},
		{ENRPHandleTableResponse, 0x03, "ENRP_HANDLE_TABLE_RESPONSE"},
		{ENRPHandleUpdate, 0x04, "ENRP_HANDLE_UPDATE"},
		{ENRPListRequest, 0x05, "ENRP_LIST_REQUEST"},
		{ENRPListResponse, 0x06, "ENRP_LIST_RESPONSE"},
		{ENRPInitTakeover, 0x07, "ENRP_INIT_TAKEOVER"},
		{ENRPInitTakeoverAck, 0x08, "ENRP_INIT_TAKEOVER_ACK"},
		{ENRPTakeoverServer, 0x09, "ENRP_TAKEOVER_SERVER"},
		{ENRPErrorType, 0x0a, "ENRP_ERROR"},
	})
	checkCodePoints(t, 4, []codePoint[ParamType]{
		{ParamIPv4Address, 0x0001, "IPv4 Address"},
		{ParamIPv6Address, 0x0002, "IPv6 Address"},
		{ParamDCCPTransport, 0x0003, "DCCP Transport"},
		{ParamSCTPTransport, 0x0004, "SCTP Transport"},
		{ParamTCPTransport, 0x0005, "TCP Transport"},
		{ParamUDPTransport, 0x0006, "UDP Transport"},
		{ParamUDPLiteTransport, 0x0007, "UDP-Lite Transport"},
		{ParamPolicy, 0x0008, "Pool Member Selection Policy"},
		{ParamPoolHandle, 0x0009, "Pool Handle"},
		{ParamPoolElement, 0x000a, "Pool Element"},
		{ParamServerInformation, 0x000b, "Server Information"},
		{ParamOperationError, 0x000c, "Operation Error"},
		{ParamCookie, 0x000d, "Cookie"},
		{ParamPEIdentifier, 0x000e, "PE Identifier"},
		{ParamPEChecksum, 0x000f, "PE Checksum"},
		{ParamHandleResolutionOption, 0x803f, "Handle Resolution Option"},
	})
	causes := []struct {
		got  CauseCode
		want uint16
	}{
		{CauseUnspecified, 0x0}, {CauseUnrecognizedParameter, 0x1}, {CauseUnrecognizedMessage, 0x2},
		{CauseInvalidValues, 0x3}, {CauseNonUniquePEIdentifier, 0x4}, {CauseInconsistentPoolingPolicy, 0x5},
		{CauseLackOfResources, 0x6}, {CauseInconsistentTransportType, 0x7},
		{CauseInconsistentDataControlConfig, 0x8}, {CauseUnknownPoolHandle, 0x9}, {CauseRejectedSecurity, 0xa},
	}
	for _, c := range causes {
		if uint16(c.got) != c.want {
			t.Errorf("%v: got 0x%x, want 0x%x", c.got, uint16(c.got), c.want)
		}
	}
	if PPIDASAP != 11 || PPIDENRP != 12 {
		t.Errorf("PPIDs %d/%d, want 11/12", PPIDASAP, PPIDENRP)
	}
	if UpdateAddPE != 0 || UpdateDelPE != 1 {
		t.Errorf("update actions %d/%d, want 0/1", UpdateAddPE, UpdateDelPE)
	}
	// Action bits are the type's top two bits (RFC 5354 §2).
	for typ, want := range map[ParamType]Action{0x0123: ActionDiscard, 0x4123: ActionReport, 0x8123: ActionSkip, 0xc123: ActionSkipReport, ParamHandleResolutionOption: ActionSkip} {
		if typ.Action() != want {
			t.Errorf("%v.Action() = %v, want %v", typ, typ.Action(), want)
		}
	}
}
