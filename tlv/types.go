package tlv

import "net/netip"

// PPIDs of the SCTP payload protocol identifiers (RFC 5352 §4, RFC 5353 §2):
// an SCTP message with PPIDASAP holds one ASAP message ([ParseASAP]), one
// with PPIDENRP one ENRP message ([ParseENRP]). transport.PPIDASAP and
// transport.PPIDENRP are the same numbers; code that sends or receives
// transport.Message values uses those, and these serve code that has only
// the codec (tlv imports no transport package, transport no codec).
const (
	PPIDASAP uint32 = 11
	PPIDENRP uint32 = 12
)

// ASAPType is an ASAP message type (RFC 5352 §2.2).
type ASAPType uint8

// ASAP message types (RFC 5352 §2.2, IANA RSerPool registry).
const (
	ASAPRegistration             ASAPType = 0x01
	ASAPDeregistration           ASAPType = 0x02
	ASAPRegistrationResponse     ASAPType = 0x03
	ASAPDeregistrationResponse   ASAPType = 0x04
	ASAPHandleResolution         ASAPType = 0x05
	ASAPHandleResolutionResponse ASAPType = 0x06
	ASAPEndpointKeepAlive        ASAPType = 0x07
	ASAPEndpointKeepAliveAck     ASAPType = 0x08
	ASAPEndpointUnreachable      ASAPType = 0x09
	ASAPServerAnnounce           ASAPType = 0x0a
	ASAPCookie                   ASAPType = 0x0b
	ASAPCookieEcho               ASAPType = 0x0c
	ASAPBusinessCard             ASAPType = 0x0d
	ASAPErrorType                ASAPType = 0x0e
)

// ENRPType is an ENRP message type (RFC 5353 §2).
type ENRPType uint8

// ENRP message types (RFC 5353 §2). ENRP_ERROR is 0x0a as in RFC 5353,
// RSPLIB and Wireshark (the IANA RSerPool registry text says 0x10; 0x0a is
// what peers send and expect).
const (
	ENRPPresence            ENRPType = 0x01
	ENRPHandleTableRequest  ENRPType = 0x02
	ENRPHandleTableResponse ENRPType = 0x03
	ENRPHandleUpdate        ENRPType = 0x04
	ENRPListRequest         ENRPType = 0x05
	ENRPListResponse        ENRPType = 0x06
	ENRPInitTakeover        ENRPType = 0x07
	ENRPInitTakeoverAck     ENRPType = 0x08
	ENRPTakeoverServer      ENRPType = 0x09
	ENRPErrorType           ENRPType = 0x0a
)

// ParamType is a 16-bit RFC 5354 parameter type, action bits included.
// Known types are matched on all 16 bits.
type ParamType uint16

// Parameter types (RFC 5354 §3, draft-dreibholz-rserpool-asap-hropt).
const (
	ParamIPv4Address            ParamType = 0x0001
	ParamIPv6Address            ParamType = 0x0002
	ParamDCCPTransport          ParamType = 0x0003
	ParamSCTPTransport          ParamType = 0x0004
	ParamTCPTransport           ParamType = 0x0005
	ParamUDPTransport           ParamType = 0x0006
	ParamUDPLiteTransport       ParamType = 0x0007
	ParamPolicy                 ParamType = 0x0008
	ParamPoolHandle             ParamType = 0x0009
	ParamPoolElement            ParamType = 0x000a
	ParamServerInformation      ParamType = 0x000b
	ParamOperationError         ParamType = 0x000c
	ParamCookie                 ParamType = 0x000d
	ParamPEIdentifier           ParamType = 0x000e
	ParamPEChecksum             ParamType = 0x000f
	ParamHandleResolutionOption ParamType = 0x803f
)

// CauseCode is an error cause code inside an Operation Error parameter
// (RFC 5354 §3.12).
type CauseCode uint16

// Error causes (RFC 5354 §3.12).
const (
	CauseUnspecified                   CauseCode = 0x0
	CauseUnrecognizedParameter         CauseCode = 0x1
	CauseUnrecognizedMessage           CauseCode = 0x2
	CauseInvalidValues                 CauseCode = 0x3
	CauseNonUniquePEIdentifier         CauseCode = 0x4
	CauseInconsistentPoolingPolicy     CauseCode = 0x5
	CauseLackOfResources               CauseCode = 0x6
	CauseInconsistentTransportType     CauseCode = 0x7
	CauseInconsistentDataControlConfig CauseCode = 0x8
	CauseUnknownPoolHandle             CauseCode = 0x9
	CauseRejectedSecurity              CauseCode = 0xa
)

// TransportUse says whether a PE's user transport also carries ASAP
// control messages (RFC 5354 §3.4).
type TransportUse uint16

const (
	TransportUseDataOnly        TransportUse = 0x0000
	TransportUseDataPlusControl TransportUse = 0x0001
)

// UpdateAction is the ENRP_HANDLE_UPDATE action (RFC 5353 §2.4).
type UpdateAction uint16

const (
	UpdateAddPE UpdateAction = 0x0000
	UpdateDelPE UpdateAction = 0x0001
)

// PoolHandle is the opaque pool name (RFC 5354 §3.9). It is compared byte by
// byte; parsed values alias the input buffer.
type PoolHandle []byte

// Transport is one of the RFC 5354 transport parameters: SCTP, TCP, UDP,
// UDP-Lite or DCCP, with its address parameters. Type 0 means "absent".
// It is the wire description of where a PE or registrar listens, not the
// interface that dials and listens, which is transport.Transport;
// asap.TransportParam and asap.AddrOf convert between this and
// transport.Addr.
//
// An address is sent as an IPv4 Address parameter when Is4() and as an IPv6
// Address parameter otherwise (a zone is dropped; an invalid netip.Addr is
// sent as 0.0.0.0). Parsing keeps the parameter's family: an IPv6 parameter
// holding a v4-mapped address stays 16 bytes (Is4In6) so that it re-encodes
// byte for byte; the constructors (NewSCTPTransport, ...) Unmap their input.
// Parsed Addrs share one backing array per message: do not append to them.
type Transport struct {
	Type        ParamType    // ParamSCTPTransport ... ParamUDPLiteTransport, or ParamDCCPTransport
	Port        uint16       // transport port
	Use         TransportUse // SCTP and TCP only; the Reserved field (0) elsewhere
	ServiceCode uint32       // DCCP only
	Addrs       []netip.Addr // IPv4 (param 0x1) or IPv6 (param 0x2), see below
	Unknown     []RawParam   // skipped unknown parameters among the addresses
}

// Policy is the Pool Member Selection Policy parameter (RFC 5354 §3.8,
// RFC 5356). Value holds the policy-specific fields after the Policy Type
// (a multiple of 4 bytes); package policy interprets them.
type Policy struct {
	Type  uint32
	Value []byte
}

// PoolElement is the Pool Element parameter (RFC 5354 §3.10). The Home ENRP
// Server Identifier is 0 while the PE has no home registrar.
// It is the data a registrar keeps and hands out about one PE (what
// asap.PoolUser.Resolve and Dial return), not a running pool element, which
// is asap.PoolElement.
type PoolElement struct {
	ID               uint32
	HomeServerID     uint32
	RegistrationLife int32 // milliseconds; signed on the wire
	UserTransport    Transport
	Policy           Policy
	ASAPTransport    Transport // optional: Type == 0 when absent (ASAP messages)
	Unknown          []RawParam
}

// ServerInfo is the Server Information parameter (RFC 5354 §3.11).
type ServerInfo struct {
	ServerID  uint32
	Transport Transport // SCTP transport with the registrar's ENRP addresses
	Unknown   []RawParam
}

// Cause is one error cause inside an Operation Error.
type Cause struct {
	Code CauseCode
	Info []byte // cause-specific information (e.g. the offending TLV), unpadded
}

// OperationError is the Operation Error parameter (RFC 5354 §3.12).
type OperationError struct {
	Causes []Cause
}

// RawParam is a parameter of a type this codec does not know, kept raw so that
// a message re-encodes byte for byte. Index is its position among the
// parameters of its container (message or parameter) as received.
type RawParam struct {
	Type  ParamType
	Value []byte
	Index int
}
