package tlv

import "encoding/binary"

func beginMsg(b []byte, t, flags uint8) ([]byte, int) {
	return append(b, t, flags, 0, 0), len(b)
}

// endMsg back-patches the Message Length. Every parameter is padded, so the
// length is a multiple of 4 (SPEC §1.2). Lengths above MaxMessageLen are
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
	s := seq{unk: m.Unknown}
	b = s.next(b)
	b = m.PoolHandle.AppendTo(b)
	b = s.next(b)
	b = m.PE.appendTo(b)
	return endMsg(s.rest(b), start)
}

func phIDLen(h PoolHandle, unk []RawParam) int { return HeaderLen + h.Len() + 8 + unknownLen(unk) }

func appendPHID(b []byte, t ASAPType, flags uint8, h PoolHandle, id uint32, e *OperationError, unk []RawParam) []byte {
	b, start := beginMsg(b, uint8(t), flags)
	s := seq{unk: unk}
	b = s.next(b)
	b = h.AppendTo(b)
	b = s.next(b)
	b = appendU32Param(b, ParamPEIdentifier, id)
	if e != nil {
		b = s.next(b)
		b = e.appendTo(b)
	}
	return endMsg(s.rest(b), start)
}

// ASAPType implements ASAPMessage.
func (m *Deregistration) ASAPType() ASAPType { return ASAPDeregistration }

// Len implements Message.
func (m *Deregistration) Len() int { return phIDLen(m.PoolHandle, m.Unknown) }

// AppendTo implements Message: Pool Handle, PE Identifier.
func (m *Deregistration) AppendTo(b []byte) []byte {
	return appendPHID(b, ASAPDeregistration, 0, m.PoolHandle, m.PEID, nil, m.Unknown)
}

// ASAPType implements ASAPMessage.
func (m *RegistrationResponse) ASAPType() ASAPType { return ASAPRegistrationResponse }

// Len implements Message.
func (m *RegistrationResponse) Len() int {
	return phIDLen(m.PoolHandle, m.Unknown) + opErrLen(m.Error)
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
	return phIDLen(m.PoolHandle, m.Unknown) + opErrLen(m.Error)
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
	n := HeaderLen + m.PoolHandle.Len() + unknownLen(m.Unknown)
	if m.HasItems {
		n += 8
	}
	return n
}

// AppendTo implements Message: Pool Handle, Handle Resolution Option (when
// HasItems).
func (m *HandleResolution) AppendTo(b []byte) []byte {
	b, start := beginMsg(b, uint8(ASAPHandleResolution), 0)
	s := seq{unk: m.Unknown}
	b = s.next(b)
	b = m.PoolHandle.AppendTo(b)
	if m.HasItems {
		b = s.next(b)
		b = appendU32Param(b, ParamHandleResolutionOption, m.Items)
	}
	return endMsg(s.rest(b), start)
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
	s := seq{unk: m.Unknown}
	b = s.next(b)
	b = m.PoolHandle.AppendTo(b)
	if m.Policy != nil {
		b = s.next(b)
		b = m.Policy.appendTo(b)
	}
	for i := range m.PEs {
		b = s.next(b)
		b = m.PEs[i].appendTo(b)
	}
	if m.Error != nil {
		b = s.next(b)
		b = m.Error.appendTo(b)
	}
	return endMsg(s.rest(b), start)
}

// ASAPType implements ASAPMessage.
func (m *EndpointKeepAlive) ASAPType() ASAPType { return ASAPEndpointKeepAlive }

// Len implements Message.
func (m *EndpointKeepAlive) Len() int {
	n := HeaderLen + 4 + m.PoolHandle.Len() + unknownLen(m.Unknown)
	if m.HasPEID {
		n += 8
	}
	return n
}

// AppendTo implements Message: Server Identifier, Pool Handle, PE
// Identifier (when HasPEID, the RSPLIB extension); flags H.
func (m *EndpointKeepAlive) AppendTo(b []byte) []byte {
	b, start := beginMsg(b, uint8(ASAPEndpointKeepAlive), flag(m.Home, FlagKeepAliveHome))
	b = appendU32(b, m.ServerID)
	s := seq{unk: m.Unknown}
	b = s.next(b)
	b = m.PoolHandle.AppendTo(b)
	if m.HasPEID {
		b = s.next(b)
		b = appendU32Param(b, ParamPEIdentifier, m.PEID)
	}
	return endMsg(s.rest(b), start)
}

// ASAPType implements ASAPMessage.
func (m *EndpointKeepAliveAck) ASAPType() ASAPType { return ASAPEndpointKeepAliveAck }

// Len implements Message.
func (m *EndpointKeepAliveAck) Len() int { return phIDLen(m.PoolHandle, m.Unknown) }

// AppendTo implements Message: Pool Handle, PE Identifier.
func (m *EndpointKeepAliveAck) AppendTo(b []byte) []byte {
	return appendPHID(b, ASAPEndpointKeepAliveAck, 0, m.PoolHandle, m.PEID, nil, m.Unknown)
}

// ASAPType implements ASAPMessage.
func (m *EndpointUnreachable) ASAPType() ASAPType { return ASAPEndpointUnreachable }

// Len implements Message.
func (m *EndpointUnreachable) Len() int { return phIDLen(m.PoolHandle, m.Unknown) }

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
func (m *CookieMessage) Len() int { return HeaderLen + pad(4+len(m.Cookie)) + unknownLen(m.Unknown) }

// AppendTo implements Message: Cookie.
func (m *CookieMessage) AppendTo(b []byte) []byte {
	return appendCookieMsg(b, ASAPCookie, m.Cookie, m.Unknown)
}

// ASAPType implements ASAPMessage.
func (m *CookieEcho) ASAPType() ASAPType { return ASAPCookieEcho }

// Len implements Message.
func (m *CookieEcho) Len() int { return HeaderLen + pad(4+len(m.Cookie)) + unknownLen(m.Unknown) }

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
	s := seq{unk: m.Unknown}
	b = s.next(b)
	b = m.PoolHandle.AppendTo(b)
	if m.Policy != nil {
		b = s.next(b)
		b = m.Policy.appendTo(b)
	}
	for i := range m.PEs {
		b = s.next(b)
		b = m.PEs[i].appendTo(b)
	}
	return endMsg(s.rest(b), start)
}

// ASAPType implements ASAPMessage.
func (m *ASAPError) ASAPType() ASAPType { return ASAPErrorType }

// Len implements Message.
func (m *ASAPError) Len() int { return HeaderLen + m.Error.len() + unknownLen(m.Unknown) }

// AppendTo implements Message: Operation Error.
func (m *ASAPError) AppendTo(b []byte) []byte {
	b, start := beginMsg(b, uint8(ASAPErrorType), 0)
	s := seq{unk: m.Unknown}
	b = s.next(b)
	b = m.Error.appendTo(b)
	return endMsg(s.rest(b), start)
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
	b, start := beginENRP(b, ENRPHandleTableRequest, flag(m.OwnChildrenOnly, FlagOwnChildrenOnly), &m.ENRPHeader)
	s := seq{unk: m.Unknown}
	return endMsg(s.rest(b), start)
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
	s := seq{unk: m.Unknown}
	b = s.next(b)
	b = m.PoolHandle.AppendTo(b)
	b = s.next(b)
	b = m.PE.appendTo(b)
	return endMsg(s.rest(b), start)
}

// ENRPType implements ENRPMessage.
func (m *ListRequest) ENRPType() ENRPType { return ENRPListRequest }

// Len implements Message.
func (m *ListRequest) Len() int { return ENRPHeaderLen + unknownLen(m.Unknown) }

// AppendTo implements Message: no parameters.
func (m *ListRequest) AppendTo(b []byte) []byte {
	b, start := beginENRP(b, ENRPListRequest, 0, &m.ENRPHeader)
	s := seq{unk: m.Unknown}
	return endMsg(s.rest(b), start)
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

func appendTakeover(b []byte, t ENRPType, h *ENRPHeader, target uint32, unk []RawParam) []byte {
	b, start := beginENRP(b, t, 0, h)
	b = appendU32(b, target)
	s := seq{unk: unk}
	return endMsg(s.rest(b), start)
}

// ENRPType implements ENRPMessage.
func (m *InitTakeover) ENRPType() ENRPType { return ENRPInitTakeover }

// Len implements Message.
func (m *InitTakeover) Len() int { return ENRPHeaderLen + 4 + unknownLen(m.Unknown) }

// AppendTo implements Message: Target Server Identifier.
func (m *InitTakeover) AppendTo(b []byte) []byte {
	return appendTakeover(b, ENRPInitTakeover, &m.ENRPHeader, m.TargetID, m.Unknown)
}

// ENRPType implements ENRPMessage.
func (m *InitTakeoverAck) ENRPType() ENRPType { return ENRPInitTakeoverAck }

// Len implements Message.
func (m *InitTakeoverAck) Len() int { return ENRPHeaderLen + 4 + unknownLen(m.Unknown) }

// AppendTo implements Message: Target Server Identifier.
func (m *InitTakeoverAck) AppendTo(b []byte) []byte {
	return appendTakeover(b, ENRPInitTakeoverAck, &m.ENRPHeader, m.TargetID, m.Unknown)
}

// ENRPType implements ENRPMessage.
func (m *TakeoverServer) ENRPType() ENRPType { return ENRPTakeoverServer }

// Len implements Message.
func (m *TakeoverServer) Len() int { return ENRPHeaderLen + 4 + unknownLen(m.Unknown) }

// AppendTo implements Message: Target Server Identifier.
func (m *TakeoverServer) AppendTo(b []byte) []byte {
	return appendTakeover(b, ENRPTakeoverServer, &m.ENRPHeader, m.TargetID, m.Unknown)
}

// ENRPType implements ENRPMessage.
func (m *ENRPError) ENRPType() ENRPType { return ENRPErrorType }

// Len implements Message.
func (m *ENRPError) Len() int { return ENRPHeaderLen + m.Error.len() + unknownLen(m.Unknown) }

// AppendTo implements Message: Operation Error.
func (m *ENRPError) AppendTo(b []byte) []byte {
	b, start := beginENRP(b, ENRPErrorType, 0, &m.ENRPHeader)
	s := seq{unk: m.Unknown}
	b = s.next(b)
	b = m.Error.appendTo(b)
	return endMsg(s.rest(b), start)
}
