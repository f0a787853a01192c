package tlv

import "encoding/binary"

func beginMsg(b []byte, t, flags uint8) ([]byte, int) {
	return append(b, t, flags, 0, 0), len(b)
}

// endMsg back-patches the Message Length. Every parameter is padded, so the
// length is a multiple of 4 (RFC 5354 §2). Lengths above MaxMessageLen are
// truncated: check with Append or Len first.
func endMsg(b []byte, start int) []byte {
	binary.BigEndian.PutUint16(b[start+2:], uint16(len(b)-start))
	return b
}

func flag(v bool, bit uint8) uint8 {
	if v {
		return bit
	}
	return 0
}

// Append appends m to b like m.AppendTo, but fails with ErrTooLarge instead
// of writing a message whose length does not fit the 16-bit Message Length.
func Append(b []byte, m Message) ([]byte, error) {
	if n := m.Len(); n > MaxMessageLen {
		return b, &ParseError{Err: ErrTooLarge, Offset: n, Cause: CauseLackOfResources, Action: ActionDiscard}
	}
	return m.AppendTo(b), nil
}

// Marshal returns the wire form of m in a new slice; see Append.
func Marshal(m Message) ([]byte, error) {
	return Append(make([]byte, 0, m.Len()), m)
}

func opErrLen(e *OperationError) int {
	if e == nil {
		return 0
	}
	return e.len()
}

func pesLen(pes []PoolElement) int {
	n := 0
	for i := range pes {
		n += pes[i].len()
	}
	return n
}

func policyLen(p *Policy) int {
	if p == nil {
		return 0
	}
	return p.Len()
}

// ---- ASAP ----

// ASAPType implements ASAPMessage.
func (m *Registration) ASAPType() ASAPType { return ASAPRegistration }

// Len implements Message.
func (m *Registration) Len() int {
	return HeaderLen + m.PoolHandle.Len() + m.PE.len() + unknownLen(m.Unknown)
}

// AppendTo implements Message: Pool Handle, Pool Element.
func (m *Registration) AppendTo(b []byte) []byte {
	b, start := beginMsg(b, uint8(ASAPRegistration), 0)
	return endMsg(appendHandlePE(b, m.PoolHandle, &m.PE, m.Unknown), start)
}

// appendHandlePE writes the parameters of the messages made of a Pool
// Handle and a Pool Element (ASAP_REGISTRATION, ENRP_HANDLE_UPDATE).
func appendHandlePE(b []byte, h PoolHandle, pe *PoolElement, unk []RawParam) []byte {
	s := seq{unk: unk}
	b = s.next(b)
	b = h.AppendTo(b)
	b = s.next(b)
	b = pe.appendTo(b)
	return s.rest(b)
}

// handleU32Len is the length of a message of fixed bytes then the
// parameters appendHandleU32 writes.
func handleU32Len(fixed int, h PoolHandle, has bool, e *OperationError, unk []RawParam) int {
	n := fixed + h.Len() + opErrLen(e) + unknownLen(unk)
	if has {
		n += 8
	}
	return n
}

// appendHandleU32 writes the parameters of the messages made of a Pool
// Handle, a uint32 parameter of type t (when has) and an Operation Error
// (when e is set): the PE Identifier messages, ASAP_HANDLE_RESOLUTION with
// its Handle Resolution Option and ASAP_ENDPOINT_KEEP_ALIVE.
func appendHandleU32(b []byte, h PoolHandle, t ParamType, v uint32, has bool, e *OperationError, unk []RawParam) []byte {
	s := seq{unk: unk}
	b = s.next(b)
	b = h.AppendTo(b)
	if has {
		b = s.next(b)
		b = appendU32Param(b, t, v)
	}
	if e != nil {
		b = s.next(b)
		b = e.appendTo(b)
	}
	return s.rest(b)
}

func phIDLen(h PoolHandle, e *OperationError, unk []RawParam) int {
	return handleU32Len(HeaderLen, h, true, e, unk)
}

// appendPHID writes a message of Pool Handle, PE Identifier and Operation
// Error (when e is set).
func appendPHID(b []byte, t ASAPType, flags uint8, h PoolHandle, id uint32, e *OperationError, unk []RawParam) []byte {
	b, start := beginMsg(b, uint8(t), flags)
	return endMsg(appendHandleU32(b, h, ParamPEIdentifier, id, true, e, unk), start)
}

// ASAPType implements ASAPMessage.
func (m *Deregistration) ASAPType() ASAPType { return ASAPDeregistration }

// Len implements Message.
func (m *Deregistration) Len() int { return phIDLen(m.PoolHandle, nil, m.Unknown) }

// AppendTo implements Message: Pool Handle, PE Identifier.
func (m *Deregistration) AppendTo(b []byte) []byte {
	return appendPHID(b, ASAPDeregistration, 0, m.PoolHandle, m.PEID, nil, m.Unknown)
}

// ASAPType implements ASAPMessage.
func (m *RegistrationResponse) ASAPType() ASAPType { return ASAPRegistrationResponse }

// Len implements Message.
func (m *RegistrationResponse) Len() int {
	return phIDLen(m.PoolHandle, m.Error, m.Unknown)
}

// AppendTo implements Message: Pool Handle, PE Identifier, Operation Error
// (when set); flags R.
func (m *RegistrationResponse) AppendTo(b []byte) []byte {
	return appendPHID(b, ASAPRegistrationResponse, flag(m.Reject, FlagRegistrationReject), m.PoolHandle, m.PEID, m.Error, m.Unknown)
}

// ASAPType implements ASAPMessage.
func (m *DeregistrationResponse) ASAPType() ASAPType { return ASAPDeregistrationResponse }

// Len implements Message.
func (m *DeregistrationResponse) Len() int {
	return phIDLen(m.PoolHandle, m.Error, m.Unknown)
}

// AppendTo implements Message: Pool Handle, PE Identifier, Operation Error
// (when set).
func (m *DeregistrationResponse) AppendTo(b []byte) []byte {
	return appendPHID(b, ASAPDeregistrationResponse, 0, m.PoolHandle, m.PEID, m.Error, m.Unknown)
}

// ASAPType implements ASAPMessage.
func (m *HandleResolution) ASAPType() ASAPType { return ASAPHandleResolution }

// Len implements Message.
func (m *HandleResolution) Len() int {
	return handleU32Len(HeaderLen, m.PoolHandle, m.HasItems, nil, m.Unknown)
}

// AppendTo implements Message: Pool Handle, Handle Resolution Option (when
// HasItems).
func (m *HandleResolution) AppendTo(b []byte) []byte {
	b, start := beginMsg(b, uint8(ASAPHandleResolution), 0)
	b = appendHandleU32(b, m.PoolHandle, ParamHandleResolutionOption, m.Items, m.HasItems, nil, m.Unknown)
	return endMsg(b, start)
}

// ASAPType implements ASAPMessage.
func (m *HandleResolutionResponse) ASAPType() ASAPType { return ASAPHandleResolutionResponse }

// Len implements Message.
func (m *HandleResolutionResponse) Len() int {
	return HeaderLen + m.PoolHandle.Len() + policyLen(m.Policy) + pesLen(m.PEs) + opErrLen(m.Error) + unknownLen(m.Unknown)
}

// AppendTo implements Message: Pool Handle, Pool Member Selection Policy
// (when set), Pool Elements, Operation Error (when set).
func (m *HandleResolutionResponse) AppendTo(b []byte) []byte {
	b, start := beginMsg(b, uint8(ASAPHandleResolutionResponse), 0)
	return endMsg(appendPEs(b, m.PoolHandle, m.Policy, m.PEs, m.Error, m.Unknown), start)
}

// appendPEs writes the parameters of ASAP_HANDLE_RESOLUTION_RESPONSE and
// ASAP_BUSINESS_CARD: Pool Handle, policy (when set), Pool Elements,
// Operation Error (when set).
func appendPEs(b []byte, h PoolHandle, pol *Policy, pes []PoolElement, e *OperationError, unk []RawParam) []byte {
	s := seq{unk: unk}
	b = s.next(b)
	b = h.AppendTo(b)
	if pol != nil {
		b = s.next(b)
		b = pol.appendTo(b)
	}
	for i := range pes {
		b = s.next(b)
		b = pes[i].appendTo(b)
	}
	if e != nil {
		b = s.next(b)
		b = e.appendTo(b)
	}
	return s.rest(b)
}

// ASAPType implements ASAPMessage.
func (m *EndpointKeepAlive) ASAPType() ASAPType { return ASAPEndpointKeepAlive }

// Len implements Message.
func (m *EndpointKeepAlive) Len() int {
	return handleU32Len(HeaderLen+4, m.PoolHandle, m.HasPEID, nil, m.Unknown)
}

// AppendTo implements Message: Server Identifier, Pool Handle, PE
// Identifier (when HasPEID, the RSPLIB extension); flags H.
func (m *EndpointKeepAlive) AppendTo(b []byte) []byte {
	b, start := beginMsg(b, uint8(ASAPEndpointKeepAlive), flag(m.Home, FlagKeepAliveHome))
	b = appendU32(b, m.ServerID)
	b = appendHandleU32(b, m.PoolHandle, ParamPEIdentifier, m.PEID, m.HasPEID, nil, m.Unknown)
	return endMsg(b, start)
}

// ASAPType implements ASAPMessage.
func (m *EndpointKeepAliveAck) ASAPType() ASAPType { return ASAPEndpointKeepAliveAck }

// Len implements Message.
func (m *EndpointKeepAliveAck) Len() int { return phIDLen(m.PoolHandle, nil, m.Unknown) }

// AppendTo implements Message: Pool Handle, PE Identifier.
func (m *EndpointKeepAliveAck) AppendTo(b []byte) []byte {
	return appendPHID(b, ASAPEndpointKeepAliveAck, 0, m.PoolHandle, m.PEID, nil, m.Unknown)
}

// ASAPType implements ASAPMessage.
func (m *EndpointUnreachable) ASAPType() ASAPType { return ASAPEndpointUnreachable }

// Len implements Message.
func (m *EndpointUnreachable) Len() int { return phIDLen(m.PoolHandle, nil, m.Unknown) }

// AppendTo implements Message: Pool Handle, PE Identifier.
func (m *EndpointUnreachable) AppendTo(b []byte) []byte {
	return appendPHID(b, ASAPEndpointUnreachable, 0, m.PoolHandle, m.PEID, nil, m.Unknown)
}

// ASAPType implements ASAPMessage.
func (m *ServerAnnounce) ASAPType() ASAPType { return ASAPServerAnnounce }

// Len implements Message.
func (m *ServerAnnounce) Len() int {
	n := HeaderLen + 4 + unknownLen(m.Unknown)
	for i := range m.Transports {
		n += m.Transports[i].len()
	}
	return n
}

// AppendTo implements Message: Server Identifier, transports.
func (m *ServerAnnounce) AppendTo(b []byte) []byte {
	b, start := beginMsg(b, uint8(ASAPServerAnnounce), 0)
	b = appendU32(b, m.ServerID)
	s := seq{unk: m.Unknown}
	for i := range m.Transports {
		if m.Transports[i].Type == 0 {
			continue
		}
		b = s.next(b)
		b = m.Transports[i].appendTo(b)
	}
	return endMsg(s.rest(b), start)
}

func cookieMsgLen(c []byte, unk []RawParam) int { return HeaderLen + pad(4+len(c)) + unknownLen(unk) }

func appendCookieMsg(b []byte, t ASAPType, c []byte, unk []RawParam) []byte {
	b, start := beginMsg(b, uint8(t), 0)
	s := seq{unk: unk}
	b = s.next(b)
	b = appendSimple(b, ParamCookie, c)
	return endMsg(s.rest(b), start)
}

// ASAPType implements ASAPMessage.
func (m *CookieMessage) ASAPType() ASAPType { return ASAPCookie }

// Len implements Message.
func (m *CookieMessage) Len() int { return cookieMsgLen(m.Cookie, m.Unknown) }

// AppendTo implements Message: Cookie.
func (m *CookieMessage) AppendTo(b []byte) []byte {
	return appendCookieMsg(b, ASAPCookie, m.Cookie, m.Unknown)
}

// ASAPType implements ASAPMessage.
func (m *CookieEcho) ASAPType() ASAPType { return ASAPCookieEcho }

// Len implements Message.
func (m *CookieEcho) Len() int { return cookieMsgLen(m.Cookie, m.Unknown) }

// AppendTo implements Message: Cookie.
func (m *CookieEcho) AppendTo(b []byte) []byte {
	return appendCookieMsg(b, ASAPCookieEcho, m.Cookie, m.Unknown)
}

// ASAPType implements ASAPMessage.
func (m *BusinessCard) ASAPType() ASAPType { return ASAPBusinessCard }

// Len implements Message.
func (m *BusinessCard) Len() int {
	return HeaderLen + m.PoolHandle.Len() + policyLen(m.Policy) + pesLen(m.PEs) + unknownLen(m.Unknown)
}

// AppendTo implements Message: Pool Handle, Pool Member Selection Policy
// (when set), Pool Elements.
func (m *BusinessCard) AppendTo(b []byte) []byte {
	b, start := beginMsg(b, uint8(ASAPBusinessCard), 0)
	return endMsg(appendPEs(b, m.PoolHandle, m.Policy, m.PEs, nil, m.Unknown), start)
}

// ASAPType implements ASAPMessage.
func (m *ASAPError) ASAPType() ASAPType { return ASAPErrorType }

// Len implements Message.
func (m *ASAPError) Len() int { return HeaderLen + m.Error.len() + unknownLen(m.Unknown) }

// AppendTo implements Message: Operation Error.
func (m *ASAPError) AppendTo(b []byte) []byte {
	b, start := beginMsg(b, uint8(ASAPErrorType), 0)
	return endMsg(appendOpErrOnly(b, &m.Error, m.Unknown), start)
}

// appendOpErrOnly writes the parameters of ASAP_ERROR and ENRP_ERROR.
func appendOpErrOnly(b []byte, e *OperationError, unk []RawParam) []byte {
	s := seq{unk: unk}
	b = s.next(b)
	b = e.appendTo(b)
	return s.rest(b)
}

// ---- ENRP ----

func beginENRP(b []byte, t ENRPType, flags uint8, h *ENRPHeader) ([]byte, int) {
	b, start := beginMsg(b, uint8(t), flags)
	b = appendU32(b, h.SenderID)
	return appendU32(b, h.ReceiverID), start
}

// ENRPType implements ENRPMessage.
func (m *Presence) ENRPType() ENRPType { return ENRPPresence }

// Len implements Message.
func (m *Presence) Len() int {
	n := ENRPHeaderLen + 8 + unknownLen(m.Unknown)
	if m.Info != nil {
		n += m.Info.len()
	}
	return n
}

// AppendTo implements Message: PE Checksum, Server Information (when set);
// flags R.
func (m *Presence) AppendTo(b []byte) []byte {
	b, start := beginENRP(b, ENRPPresence, flag(m.ReplyRequired, FlagPresenceReplyRequired), &m.ENRPHeader)
	s := seq{unk: m.Unknown}
	b = s.next(b)
	b = PEChecksum(m.Checksum).AppendTo(b)
	if m.Info != nil {
		b = s.next(b)
		b = m.Info.appendTo(b)
	}
	return endMsg(s.rest(b), start)
}

// ENRPType implements ENRPMessage.
func (m *HandleTableRequest) ENRPType() ENRPType { return ENRPHandleTableRequest }

// Len implements Message.
func (m *HandleTableRequest) Len() int { return ENRPHeaderLen + unknownLen(m.Unknown) }

// AppendTo implements Message: no parameters; flags W.
func (m *HandleTableRequest) AppendTo(b []byte) []byte {
	return appendENRPBare(b, ENRPHandleTableRequest, flag(m.OwnChildrenOnly, FlagOwnChildrenOnly), &m.ENRPHeader, nil, m.Unknown)
}

// ENRPType implements ENRPMessage.
func (m *HandleTableResponse) ENRPType() ENRPType { return ENRPHandleTableResponse }

// Len implements Message.
func (m *HandleTableResponse) Len() int {
	n := ENRPHeaderLen + unknownLen(m.Unknown)
	for i := range m.Pools {
		n += m.Pools[i].PoolHandle.Len() + pesLen(m.Pools[i].PEs)
	}
	return n
}

// AppendTo implements Message: for each pool its Pool Handle then its Pool
// Elements; flags R and M.
func (m *HandleTableResponse) AppendTo(b []byte) []byte {
	b, start := beginENRP(b, ENRPHandleTableResponse,
		flag(m.Reject, FlagTableReject)|flag(m.MoreToSend, FlagMoreToSend), &m.ENRPHeader)
	s := seq{unk: m.Unknown}
	for i := range m.Pools {
		b = s.next(b)
		b = m.Pools[i].PoolHandle.AppendTo(b)
		for j := range m.Pools[i].PEs {
			b = s.next(b)
			b = m.Pools[i].PEs[j].appendTo(b)
		}
	}
	return endMsg(s.rest(b), start)
}

// ENRPType implements ENRPMessage.
func (m *HandleUpdate) ENRPType() ENRPType { return ENRPHandleUpdate }

// Len implements Message.
func (m *HandleUpdate) Len() int {
	return ENRPHeaderLen + 4 + m.PoolHandle.Len() + m.PE.len() + unknownLen(m.Unknown)
}

// AppendTo implements Message: Update Action, reserved, Pool Handle, Pool
// Element; flags T.
func (m *HandleUpdate) AppendTo(b []byte) []byte {
	b, start := beginENRP(b, ENRPHandleUpdate, flag(m.TakeoverSuggested, FlagTakeoverSuggested), &m.ENRPHeader)
	b = appendU16(b, uint16(m.Action))
	b = appendU16(b, 0)
	return endMsg(appendHandlePE(b, m.PoolHandle, &m.PE, m.Unknown), start)
}

// ENRPType implements ENRPMessage.
func (m *ListRequest) ENRPType() ENRPType { return ENRPListRequest }

// Len implements Message.
func (m *ListRequest) Len() int { return ENRPHeaderLen + unknownLen(m.Unknown) }

// AppendTo implements Message: no parameters.
func (m *ListRequest) AppendTo(b []byte) []byte {
	return appendENRPBare(b, ENRPListRequest, 0, &m.ENRPHeader, nil, m.Unknown)
}

// ENRPType implements ENRPMessage.
func (m *ListResponse) ENRPType() ENRPType { return ENRPListResponse }

// Len implements Message.
func (m *ListResponse) Len() int {
	n := ENRPHeaderLen + unknownLen(m.Unknown)
	for i := range m.Servers {
		n += m.Servers[i].len()
	}
	return n
}

// AppendTo implements Message: Server Information ×n; flags R.
func (m *ListResponse) AppendTo(b []byte) []byte {
	b, start := beginENRP(b, ENRPListResponse, flag(m.Reject, FlagListReject), &m.ENRPHeader)
	s := seq{unk: m.Unknown}
	for i := range m.Servers {
		b = s.next(b)
		b = m.Servers[i].appendTo(b)
	}
	return endMsg(s.rest(b), start)
}

// appendENRPBare writes an ENRP message that defines no parameters: the
// header, the Target Server Identifier when target is not nil (RFC 5353
// §2.7-§2.9), then the skipped unknowns.
func appendENRPBare(b []byte, t ENRPType, flags uint8, h *ENRPHeader, target *uint32, unk []RawParam) []byte {
	b, start := beginENRP(b, t, flags, h)
	if target != nil {
		b = appendU32(b, *target)
	}
	return endMsg(appendRaw(b, unk), start)
}

func targetLen(unk []RawParam) int { return ENRPHeaderLen + 4 + unknownLen(unk) }

// ENRPType implements ENRPMessage.
func (m *InitTakeover) ENRPType() ENRPType { return ENRPInitTakeover }

// Len implements Message.
func (m *InitTakeover) Len() int { return targetLen(m.Unknown) }

// AppendTo implements Message: Target Server Identifier.
func (m *InitTakeover) AppendTo(b []byte) []byte {
	return appendENRPBare(b, ENRPInitTakeover, 0, &m.ENRPHeader, &m.TargetID, m.Unknown)
}

// ENRPType implements ENRPMessage.
func (m *InitTakeoverAck) ENRPType() ENRPType { return ENRPInitTakeoverAck }

// Len implements Message.
func (m *InitTakeoverAck) Len() int { return targetLen(m.Unknown) }

// AppendTo implements Message: Target Server Identifier.
func (m *InitTakeoverAck) AppendTo(b []byte) []byte {
	return appendENRPBare(b, ENRPInitTakeoverAck, 0, &m.ENRPHeader, &m.TargetID, m.Unknown)
}

// ENRPType implements ENRPMessage.
func (m *TakeoverServer) ENRPType() ENRPType { return ENRPTakeoverServer }

// Len implements Message.
func (m *TakeoverServer) Len() int { return targetLen(m.Unknown) }

// AppendTo implements Message: Target Server Identifier.
func (m *TakeoverServer) AppendTo(b []byte) []byte {
	return appendENRPBare(b, ENRPTakeoverServer, 0, &m.ENRPHeader, &m.TargetID, m.Unknown)
}

// ENRPType implements ENRPMessage.
func (m *ENRPError) ENRPType() ENRPType { return ENRPErrorType }

// Len implements Message.
func (m *ENRPError) Len() int { return ENRPHeaderLen + m.Error.len() + unknownLen(m.Unknown) }

// AppendTo implements Message: Operation Error.
func (m *ENRPError) AppendTo(b []byte) []byte {
	b, start := beginENRP(b, ENRPErrorType, 0, &m.ENRPHeader)
	return endMsg(appendOpErrOnly(b, &m.Error, m.Unknown), start)
}
