package tlv

import (
	"errors"
	"fmt"
)

// Sentinel errors. Every error returned by the parsers is a *ParseError that
// wraps one of these, so callers test the kind with errors.Is and read the
// details (offset, parameter type, RFC 5354 cause, action) with errors.As.
var (
	// ErrTruncated: the input ends before a header or before the length its
	// Message Length field announces.
	ErrTruncated = errors.New("tlv: truncated input")
	// ErrLength: a length field is below its minimum, runs past its
	// container, or does not match a fixed-size parameter.
	ErrLength = errors.New("tlv: bad length")
	// ErrPadding: a parameter that is not the last one of its container is
	// not followed by its full 4-byte padding (RFC 5354 §2).
	ErrPadding = errors.New("tlv: bad padding")
	// ErrTooLarge: the message or a pool handle exceeds the configured Limits,
	// or a message to be sent does not fit the 16-bit Message Length.
	ErrTooLarge = errors.New("tlv: too large")
	// ErrTooDeep: parameters are nested deeper than Limits.MaxDepth.
	ErrTooDeep = errors.New("tlv: nested too deep")
	// ErrTooManyParams: the message holds more parameters than
	// Limits.MaxParams.
	ErrTooManyParams = errors.New("tlv: too many parameters")
	// ErrUnknownMessage: the message type is not an ASAP (RFC 5352 §2.2)
	// or ENRP (RFC 5353 §2) message type. Cause: Unrecognized Message.
	ErrUnknownMessage = errors.New("tlv: unrecognized message type")
	// ErrUnrecognizedParam: a parameter type not expected in its container
	// whose action bits say "stop processing" (00 or 01, RFC 5354 §2).
	// Cause: Unrecognized Parameter.
	ErrUnrecognizedParam = errors.New("tlv: unrecognized parameter")
	// ErrInvalidValue: a field holds a value the RFC does not allow (empty
	// pool handle, unknown transport use, unknown update action, ...).
	// Cause: Invalid Values.
	ErrInvalidValue = errors.New("tlv: invalid value")
	// ErrMissingParam: a mandatory parameter is absent.
	ErrMissingParam = errors.New("tlv: missing mandatory parameter")
	// ErrDuplicateParam: a parameter that may appear once appears twice.
	ErrDuplicateParam = errors.New("tlv: duplicate parameter")
)

// Action is what a receiver does with a parameter it does not recognise: the
// two high bits of the parameter type (RFC 5354 §2, the SCTP scheme). On a
// ParseError it says whether the caller should answer the sender
// (ActionReport) or drop the message silently (ActionDiscard).
type Action uint8

// Unrecognised-parameter actions, equal to bits 15..14 of the parameter type.
const (
	ActionDiscard    Action = 0 // 00: stop processing, discard the message silently
	ActionReport     Action = 1 // 01: stop processing, discard, report Unrecognized Parameter
	ActionSkip       Action = 2 // 10: skip the parameter, continue
	ActionSkipReport Action = 3 // 11: skip, continue, and report Unrecognized Parameter
)

// String names the action.
func (a Action) String() string {
	switch a {
	case ActionDiscard:
		return "discard"
	case ActionReport:
		return "discard-and-report"
	case ActionSkip:
		return "skip"
	case ActionSkipReport:
		return "skip-and-report"
	}
	return fmt.Sprintf("Action(%d)", uint8(a))
}

// Reports reports whether the action asks for an Unrecognized Parameter
// error cause to be sent back (01 and 11).
func (a Action) Reports() bool { return a&1 == 1 }

// Action returns the unrecognised-parameter action encoded in the type's two
// high bits.
func (t ParamType) Action() Action { return Action(t >> 14) }

// ParseError describes why a message or parameter could not be parsed. It
// carries what an ASAP/ENRP endpoint needs to answer with an Operation Error
// (RFC 5354 §3.12): the cause code, and the raw bytes to put in the cause.
type ParseError struct {
	// Offset is the byte offset of the offending item from the start of the
	// parsed buffer.
	Offset int
	// Type is the type of the offending (or missing) parameter; 0 when the
	// error concerns the message itself.
	Type ParamType
	// Cause is the RFC 5354 error cause this maps to: Unrecognized
	// Parameter, Unrecognized Message, or Invalid Values.
	Cause CauseCode
	// Action says whether to report the error to the sender (ActionReport)
	// or to discard the message silently (ActionDiscard).
	Action Action
	// Param is the raw offending TLV (header included, padding excluded;
	// clipped to the input) or, for Unrecognized Message, the whole
	// message. It aliases the parsed buffer. It is the cause information
	// to send back (RFC 5354 §3.12) and may be nil.
	Param []byte
	// Err is one of the sentinel errors of this package.
	Err error
}

// Error implements error.
func (e *ParseError) Error() string {
	s := fmt.Sprintf("%v at offset %d", e.Err, e.Offset)
	if e.Type != 0 {
		s += fmt.Sprintf(" (parameter %s)", e.Type)
	}
	return s + fmt.Sprintf(" [cause %s, %s]", e.Cause, e.Action)
}

// Unwrap returns the sentinel error.
func (e *ParseError) Unwrap() error { return e.Err }

// Report reports whether the receiver should answer the sender with an
// error cause (e.Cause, carrying e.Param) rather than drop the message
// silently.
func (e *ParseError) Report() bool { return e.Action == ActionReport }

// OperationError returns the Operation Error parameter to send back for e:
// its cause with e.Param as information. Unrecognized Message and
// Unrecognized Parameter carry the offending bytes; Invalid Values carries
// the offending parameter when there is one.
func (e *ParseError) OperationError() *OperationError {
	return NewOperationError(e.Cause, e.Param)
}

var causeNames = [...]string{
	CauseUnspecified:                   "Unspecified Error",
	CauseUnrecognizedParameter:         "Unrecognized Parameter",
	CauseUnrecognizedMessage:           "Unrecognized Message",
	CauseInvalidValues:                 "Invalid Values",
	CauseNonUniquePEIdentifier:         "Non-unique PE Identifier",
	CauseInconsistentPoolingPolicy:     "Inconsistent Pooling Policy",
	CauseLackOfResources:               "Lack of Resources",
	CauseInconsistentTransportType:     "Inconsistent Transport Type",
	CauseInconsistentDataControlConfig: "Inconsistent Data/Control Configuration",
	CauseUnknownPoolHandle:             "Unknown Pool Handle",
	CauseRejectedSecurity:              "Rejected due to security considerations",
}

// String returns the RFC 5354 name of the cause.
func (c CauseCode) String() string {
	return nameOr(causeNames[:], int(c), "CauseCode(0x%x)", uint16(c))
}

// nameOr returns names[i], or v printed with format when names has no
// name for i.
func nameOr(names []string, i int, format string, v any) string {
	if i < len(names) && names[i] != "" {
		return names[i]
	}
	return fmt.Sprintf(format, v)
}

var paramNames = map[ParamType]string{
	ParamIPv4Address:            "IPv4 Address",
	ParamIPv6Address:            "IPv6 Address",
	ParamDCCPTransport:          "DCCP Transport",
	ParamSCTPTransport:          "SCTP Transport",
	ParamTCPTransport:           "TCP Transport",
	ParamUDPTransport:           "UDP Transport",
	ParamUDPLiteTransport:       "UDP-Lite Transport",
	ParamPolicy:                 "Pool Member Selection Policy",
	ParamPoolHandle:             "Pool Handle",
	ParamPoolElement:            "Pool Element",
	ParamServerInformation:      "Server Information",
	ParamOperationError:         "Operation Error",
	ParamCookie:                 "Cookie",
	ParamPEIdentifier:           "PE Identifier",
	ParamPEChecksum:             "PE Checksum",
	ParamHandleResolutionOption: "Handle Resolution Option",
}

// String returns the parameter's name, or its hex code when unknown.
func (t ParamType) String() string {
	if s, ok := paramNames[t]; ok {
		return s
	}
	return fmt.Sprintf("ParamType(0x%04x)", uint16(t))
}

var asapNames = [...]string{
	ASAPRegistration:             "ASAP_REGISTRATION",
	ASAPDeregistration:           "ASAP_DEREGISTRATION",
	ASAPRegistrationResponse:     "ASAP_REGISTRATION_RESPONSE",
	ASAPDeregistrationResponse:   "ASAP_DEREGISTRATION_RESPONSE",
	ASAPHandleResolution:         "ASAP_HANDLE_RESOLUTION",
	ASAPHandleResolutionResponse: "ASAP_HANDLE_RESOLUTION_RESPONSE",
	ASAPEndpointKeepAlive:        "ASAP_ENDPOINT_KEEP_ALIVE",
	ASAPEndpointKeepAliveAck:     "ASAP_ENDPOINT_KEEP_ALIVE_ACK",
	ASAPEndpointUnreachable:      "ASAP_ENDPOINT_UNREACHABLE",
	ASAPServerAnnounce:           "ASAP_SERVER_ANNOUNCE",
	ASAPCookie:                   "ASAP_COOKIE",
	ASAPCookieEcho:               "ASAP_COOKIE_ECHO",
	ASAPBusinessCard:             "ASAP_BUSINESS_CARD",
	ASAPErrorType:                "ASAP_ERROR",
}

// String returns the RFC 5352 name of the message type.
func (t ASAPType) String() string {
	return nameOr(asapNames[:], int(t), "ASAPType(0x%02x)", uint8(t))
}

var enrpNames = [...]string{
	ENRPPresence:            "ENRP_PRESENCE",
	ENRPHandleTableRequest:  "ENRP_HANDLE_TABLE_REQUEST",
	ENRPHandleTableResponse: "ENRP_HANDLE_TABLE_RESPONSE",
	ENRPHandleUpdate:        "ENRP_HANDLE_UPDATE",
	ENRPListRequest:         "ENRP_LIST_REQUEST",
	ENRPListResponse:        "ENRP_LIST_RESPONSE",
	ENRPInitTakeover:        "ENRP_INIT_TAKEOVER",
	ENRPInitTakeoverAck:     "ENRP_INIT_TAKEOVER_ACK",
	ENRPTakeoverServer:      "ENRP_TAKEOVER_SERVER",
	ENRPErrorType:           "ENRP_ERROR",
}

// String returns the RFC 5353 name of the message type.
func (t ENRPType) String() string {
	return nameOr(enrpNames[:], int(t), "ENRPType(0x%02x)", uint8(t))
}
