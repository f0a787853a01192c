package tlv

// Message flag bits (the second header byte).
const (
	// FlagRegistrationReject is the R bit of ASAP_REGISTRATION_RESPONSE
	// (RFC 5352 §2.2.3).
	FlagRegistrationReject uint8 = 0x01
	// FlagKeepAliveHome is the H bit of ASAP_ENDPOINT_KEEP_ALIVE
	// (RFC 5352 §2.2.7).
	FlagKeepAliveHome uint8 = 0x01
	// FlagPresenceReplyRequired is the R bit of ENRP_PRESENCE (RFC 5353 §2.1).
	FlagPresenceReplyRequired uint8 = 0x01
	// FlagOwnChildrenOnly is the W bit of ENRP_HANDLE_TABLE_REQUEST
	// (RFC 5353 §2.2).
	FlagOwnChildrenOnly uint8 = 0x01
	// FlagTableReject is the R bit of ENRP_HANDLE_TABLE_RESPONSE (RFC 5353 §2.3).
	FlagTableReject uint8 = 0x01
	// FlagMoreToSend is the M bit of ENRP_HANDLE_TABLE_RESPONSE (RFC 5353 §2.3).
	FlagMoreToSend uint8 = 0x02
	// FlagTakeoverSuggested is the T bit of ENRP_HANDLE_UPDATE from
	// draft-dreibholz-rserpool-enrp-takeover (not RFC 5353).
	FlagTakeoverSuggested uint8 = 0x01
	// FlagListReject is the R bit of ENRP_LIST_RESPONSE (RFC 5353 §2.6).
	FlagListReject uint8 = 0x01
)

// Sizes of the fixed parts.
const (
	// HeaderLen is the common message header: type, flags, length.
	HeaderLen = 4
	// ParamHeaderLen is the parameter TLV header: type and length.
	ParamHeaderLen = 4
	// ENRPHeaderLen is the ENRP header with the sender and receiver server
	// IDs (RFC 5353 §2).
	ENRPHeaderLen = 12
	// MaxMessageLen is the largest value the 16-bit Message Length can hold.
	MaxMessageLen = 0xffff
	// PEChecksumLen is the Parameter Length of PE Checksum (RFC 5354 §3.15):
	// a 16-bit checksum, padded to 8 bytes on the wire.
	PEChecksumLen = 6
)

// HROPTAsManyAsPossible is the Handle Resolution Option item count meaning
// "as many PEs as the registrar will give" (draft-dreibholz-rserpool-asap-hropt).
const HROPTAsManyAsPossible uint32 = 0xffffffff
