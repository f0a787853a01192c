package tlv

// Message is any ASAP or ENRP message.
type Message interface {
	// Len is the number of bytes AppendTo writes (the Message Length field,
	// padding of every parameter included).
	Len() int
	// AppendTo appends the wire form and returns the extended slice. It does
	// not allocate when b has room for Len() more bytes.
	AppendTo(b []byte) []byte
}

// ASAPMessage is one of the ASAP message structs.
type ASAPMessage interface {
	Message
	ASAPType() ASAPType
}

// ENRPMessage is one of the ENRP message structs.
type ENRPMessage interface {
	Message
	ENRPType() ENRPType
	Header() ENRPHeader
}

// ---- ASAP (RFC 5352 §2.2) ----

// Registration is ASAP_REGISTRATION (RFC 5352 §2.2.1).
type Registration struct {
	PoolHandle PoolHandle
	PE         PoolElement
	Unknown    []RawParam
}

// Deregistration is ASAP_DEREGISTRATION (RFC 5352 §2.2.2).
type Deregistration struct {
	PoolHandle PoolHandle
	PEID       uint32
	Unknown    []RawParam
}

// RegistrationResponse is ASAP_REGISTRATION_RESPONSE (RFC 5352 §2.2.3).
type RegistrationResponse struct {
	Reject     bool // R flag (0x01)
	PoolHandle PoolHandle
	PEID       uint32
	Error      *OperationError // optional
	Unknown    []RawParam
}

// DeregistrationResponse is ASAP_DEREGISTRATION_RESPONSE (RFC 5352 §2.2.4).
type DeregistrationResponse struct {
	PoolHandle PoolHandle
	PEID       uint32
	Error      *OperationError // optional
	Unknown    []RawParam
}

// HandleResolution is ASAP_HANDLE_RESOLUTION (RFC 5352 §2.2.5), with the
// optional Handle Resolution Option (draft-dreibholz-rserpool-asap-hropt).
type HandleResolution struct {
	PoolHandle PoolHandle
	HasItems   bool   // HROPT parameter present
	Items      uint32 // HROPT item count; 0xffffffff = as many as possible
	Unknown    []RawParam
}

// HandleResolutionResponse is ASAP_HANDLE_RESOLUTION_RESPONSE (RFC 5352 §2.2.6).
type HandleResolutionResponse struct {
	PoolHandle PoolHandle
	Policy     *Policy // the pool's overall policy, optional
	PEs        []PoolElement
	Error      *OperationError // set on failure
	Unknown    []RawParam
}

// EndpointKeepAlive is ASAP_ENDPOINT_KEEP_ALIVE (RFC 5352 §2.2.7).
type EndpointKeepAlive struct {
	Home       bool   // H flag (0x01)
	ServerID   uint32 // fixed field after the header
	PoolHandle PoolHandle
	HasPEID    bool // RSPLIB extension: optional PE Identifier parameter
	PEID       uint32
	Unknown    []RawParam
}

// EndpointKeepAliveAck is ASAP_ENDPOINT_KEEP_ALIVE_ACK (RFC 5352 §2.2.8).
type EndpointKeepAliveAck struct {
	PoolHandle PoolHandle
	PEID       uint32
	Unknown    []RawParam
}

// EndpointUnreachable is ASAP_ENDPOINT_UNREACHABLE (RFC 5352 §2.2.9).
type EndpointUnreachable struct {
	PoolHandle PoolHandle
	PEID       uint32
	Unknown    []RawParam
}

// ServerAnnounce is ASAP_SERVER_ANNOUNCE (RFC 5352 §2.2.10).
type ServerAnnounce struct {
	ServerID   uint32 // fixed field after the header
	Transports []Transport
	Unknown    []RawParam
}

// CookieMessage is ASAP_COOKIE (RFC 5352 §2.2.11).
type CookieMessage struct {
	Cookie  []byte
	Unknown []RawParam
}

// CookieEcho is ASAP_COOKIE_ECHO (RFC 5352 §2.2.12).
type CookieEcho struct {
	Cookie  []byte
	Unknown []RawParam
}

// BusinessCard is ASAP_BUSINESS_CARD (RFC 5352 §2.2.13).
type BusinessCard struct {
	PoolHandle PoolHandle
	Policy     *Policy // optional
	PEs        []PoolElement
	Unknown    []RawParam
}

// ASAPError is ASAP_ERROR (RFC 5352 §2.2.14).
type ASAPError struct {
	Error   OperationError
	Unknown []RawParam
}

// ---- ENRP (RFC 5353 §2) ----

// ENRPHeader holds the fixed IDs every ENRP message carries.
type ENRPHeader struct {
	SenderID   uint32
	ReceiverID uint32 // 0: all servers
}

// Header returns the header; every ENRP message has it through its
// embedded ENRPHeader, so that ENRPMessage can give it without a type
// switch.
func (h ENRPHeader) Header() ENRPHeader { return h }

// Presence is ENRP_PRESENCE (RFC 5353 §2.1).
type Presence struct {
	ENRPHeader
	ReplyRequired bool // R flag (0x01)
	Checksum      uint16
	Info          *ServerInfo // optional
	Unknown       []RawParam
}

// HandleTableRequest is ENRP_HANDLE_TABLE_REQUEST (RFC 5353 §2.2).
type HandleTableRequest struct {
	ENRPHeader
	OwnChildrenOnly bool // W flag (0x01)
	Unknown         []RawParam
}

// PoolEntry is one pool of a handle table response: a pool handle and its PEs.
type PoolEntry struct {
	PoolHandle PoolHandle
	PEs        []PoolElement
}

// HandleTableResponse is ENRP_HANDLE_TABLE_RESPONSE (RFC 5353 §2.3).
type HandleTableResponse struct {
	ENRPHeader
	Reject     bool // R flag (0x01)
	MoreToSend bool // M flag (0x02)
	Pools      []PoolEntry
	Unknown    []RawParam
}

// HandleUpdate is ENRP_HANDLE_UPDATE (RFC 5353 §2.4).
type HandleUpdate struct {
	ENRPHeader
	TakeoverSuggested bool // T flag (0x01), draft-dreibholz-rserpool-enrp-takeover; not RFC
	Action            UpdateAction
	PoolHandle        PoolHandle
	PE                PoolElement
	Unknown           []RawParam
}

// ListRequest is ENRP_LIST_REQUEST (RFC 5353 §2.5).
type ListRequest struct {
	ENRPHeader
	Unknown []RawParam
}

// ListResponse is ENRP_LIST_RESPONSE (RFC 5353 §2.6).
type ListResponse struct {
	ENRPHeader
	Reject  bool // R flag (0x01)
	Servers []ServerInfo
	Unknown []RawParam
}

// InitTakeover is ENRP_INIT_TAKEOVER (RFC 5353 §2.7).
type InitTakeover struct {
	ENRPHeader
	TargetID uint32
	Unknown  []RawParam
}

// InitTakeoverAck is ENRP_INIT_TAKEOVER_ACK (RFC 5353 §2.8).
type InitTakeoverAck struct {
	ENRPHeader
	TargetID uint32
	Unknown  []RawParam
}

// TakeoverServer is ENRP_TAKEOVER_SERVER (RFC 5353 §2.9).
type TakeoverServer struct {
	ENRPHeader
	TargetID uint32
	Unknown  []RawParam
}

// ENRPError is ENRP_ERROR (RFC 5353 §2.10).
type ENRPError struct {
	ENRPHeader
	Error   OperationError
	Unknown []RawParam
}
