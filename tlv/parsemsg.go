package tlv

import "net/netip"

// resolve fills in the defaults of zero fields.
func (l Limits) resolve() Limits {
	if l.MaxMessageSize <= 0 {
		l.MaxMessageSize = DefaultMaxMessageSize
	}
	if l.MaxDepth <= 0 {
		l.MaxDepth = DefaultMaxDepth
	}
	if l.MaxPoolHandle <= 0 {
		l.MaxPoolHandle = DefaultMaxPoolHandle
	}
	if l.MaxParams <= 0 {
		l.MaxParams = DefaultMaxParams
	}
	return l
}

// begin checks the common header (RFC 5352 §2.1, RFC 5353 §2.1) and the
// limits, sets p to parse exactly Message Length bytes, and returns the
// message type and flags. The caller keeps p on its stack.
func (l Limits) begin(p *parser, b []byte) (uint8, uint8, error) {
	l = l.resolve()
	if len(b) > l.MaxMessageSize {
		return 0, 0, &ParseError{Offset: l.MaxMessageSize, Err: ErrTooLarge, Cause: CauseInvalidValues, Action: ActionDiscard}
	}
	if len(b) < HeaderLen {
		return 0, 0, &ParseError{Offset: len(b), Err: ErrTruncated, Cause: CauseInvalidValues, Action: ActionDiscard}
	}
	n := int(b[2])<<8 | int(b[3])
	switch {
	case n < HeaderLen:
		return 0, 0, &ParseError{Offset: 2, Err: ErrLength, Cause: CauseInvalidValues, Action: ActionDiscard}
	case n > len(b):
		return 0, 0, &ParseError{Offset: len(b), Err: ErrTruncated, Cause: CauseInvalidValues, Action: ActionDiscard}
	case len(b)-n > 3:
		// Up to 3 bytes of padding after a Message Length that left
		// out the last parameter's padding are tolerated; more means
		// the length is wrong.
		return 0, 0, &ParseError{Offset: n, Err: ErrLength, Cause: CauseInvalidValues, Action: ActionDiscard}
	}
	*p = parser{msg: b[:n:n], lim: l}
	return b[0], b[1], nil
}

func (p *parser) unknownMessage() error {
	return p.fail(ErrUnknownMessage, 0, 0, CauseUnrecognizedMessage, ActionReport, p.msg)
}

func (p *parser) needFixed(n int) error {
	if len(p.msg) < n {
		return p.fail(ErrLength, 2, 0, CauseInvalidValues, ActionReport, nil)
	}
	return nil
}

// ParseASAP parses one ASAP message (RFC 5352 §2) with the default limits.
func ParseASAP(b []byte) (ASAPMessage, error) { return Limits{}.ParseASAP(b) }

// ParseENRP parses one ENRP message (RFC 5353 §2) with the default limits.
func ParseENRP(b []byte) (ENRPMessage, error) { return Limits{}.ParseENRP(b) }

// ParseHandleResolution parses an ASAP_HANDLE_RESOLUTION (RFC 5352
// §2.2.5) into *m, checked as ParseASAP checks it, but into a message the
// caller owns, so that a registrar answering many resolutions allocates
// none for them. *m is overwritten; its byte slices alias b. A message of
// another type fails with a *ParseError wrapping ErrUnknownMessage.
func (l Limits) ParseHandleResolution(b []byte, m *HandleResolution) error {
	var p parser
	t, _, err := l.begin(&p, b)
	if err != nil {
		return err
	}
	if ASAPType(t) != ASAPHandleResolution {
		return p.unknownMessage()
	}
	*m = HandleResolution{}
	return p.handleOpt(HeaderLen, &m.PoolHandle, ParamHandleResolutionOption, &m.Items, &m.HasItems, &m.Unknown)
}

// ParseASAP parses one ASAP message: b holds exactly one message (one SCTP
// message with PPID 11, or one UDP datagram for ASAP_SERVER_ANNOUNCE). The
// result is a pointer to one of the ASAP message structs. Byte slices in the
// result (pool handles, cookies, policy values, raw parameters) alias b.
// Errors are *ParseError values; the limits are checked before anything is
// allocated.
func (l Limits) ParseASAP(b []byte) (ASAPMessage, error) {
	var p parser
	t, flags, err := l.begin(&p, b)
	if err != nil {
		return nil, err
	}
	var m ASAPMessage
	switch ASAPType(t) {
	case ASAPRegistration:
		x := &struct {
			Registration
			addrs [onePEAddrs]netip.Addr
		}{}
		p.addrs = x.addrs[:0]
		err, m = p.handlePE(HeaderLen, &x.PoolHandle, &x.PE, &x.Unknown), &x.Registration
	case ASAPDeregistration:
		x := &Deregistration{}
		err, m = p.handleID(HeaderLen, &x.PoolHandle, &x.PEID, nil, &x.Unknown), x
	case ASAPRegistrationResponse:
		x := &RegistrationResponse{Reject: flags&FlagRegistrationReject != 0}
		err, m = p.handleID(HeaderLen, &x.PoolHandle, &x.PEID, &x.Error, &x.Unknown), x
	case ASAPDeregistrationResponse:
		x := &DeregistrationResponse{}
		err, m = p.handleID(HeaderLen, &x.PoolHandle, &x.PEID, &x.Error, &x.Unknown), x
	case ASAPHandleResolution:
		x := &HandleResolution{}
		err, m = p.handleOpt(HeaderLen, &x.PoolHandle, ParamHandleResolutionOption, &x.Items, &x.HasItems, &x.Unknown), x
	case ASAPHandleResolutionResponse:
		x := &struct {
			HandleResolutionResponse
			pol Policy
		}{}
		err, m = p.pesMessage(&x.PoolHandle, &x.Policy, &x.pol, &x.PEs, &x.Error, &x.Unknown), &x.HandleResolutionResponse
	case ASAPEndpointKeepAlive:
		x := &EndpointKeepAlive{Home: flags&FlagKeepAliveHome != 0}
		err, m = p.keepAlive(x), x
	case ASAPEndpointKeepAliveAck:
		x := &EndpointKeepAliveAck{}
		err, m = p.handleID(HeaderLen, &x.PoolHandle, &x.PEID, nil, &x.Unknown), x
	case ASAPEndpointUnreachable:
		x := &EndpointUnreachable{}
		err, m = p.handleID(HeaderLen, &x.PoolHandle, &x.PEID, nil, &x.Unknown), x
	case ASAPServerAnnounce:
		x := &ServerAnnounce{}
		err, m = p.serverAnnounce(x), x
	case ASAPCookie:
		x := &CookieMessage{}
		err, m = p.cookieMessage(&x.Cookie, &x.Unknown), x
	case ASAPCookieEcho:
		x := &CookieEcho{}
		err, m = p.cookieMessage(&x.Cookie, &x.Unknown), x
	case ASAPBusinessCard:
		x := &struct {
			BusinessCard
			pol Policy
		}{}
		err, m = p.pesMessage(&x.PoolHandle, &x.Policy, &x.pol, &x.PEs, nil, &x.Unknown), &x.BusinessCard
	case ASAPErrorType:
		x := &ASAPError{}
		err, m = p.errorMessage(HeaderLen, &x.Error, &x.Unknown), x
	default:
		return nil, p.unknownMessage()
	}
	if err != nil {
		return nil, err
	}
	return m, nil
}

// ParseENRP parses one ENRP message (SCTP PPID 12, or one ENRP multicast
// datagram). The result is a pointer to one of the ENRP message structs and
// aliases b like ParseASAP's.
func (l Limits) ParseENRP(b []byte) (ENRPMessage, error) {
	var p parser
	t, flags, err := l.begin(&p, b)
	if err != nil {
		return nil, err
	}
	switch ENRPType(t) {
	case ENRPPresence, ENRPHandleTableRequest, ENRPHandleTableResponse, ENRPHandleUpdate,
		ENRPListRequest, ENRPListResponse, ENRPInitTakeover, ENRPInitTakeoverAck,
		ENRPTakeoverServer, ENRPErrorType:
	default:
		return nil, p.unknownMessage()
	}
	if err := p.needFixed(ENRPHeaderLen); err != nil {
		return nil, err
	}
	h := ENRPHeader{SenderID: p.u32(4), ReceiverID: p.u32(8)}
	var m ENRPMessage
	switch ENRPType(t) {
	case ENRPPresence:
		x := &Presence{ENRPHeader: h, ReplyRequired: flags&FlagPresenceReplyRequired != 0}
		err, m = p.presence(x), x
	case ENRPHandleTableRequest:
		x := &HandleTableRequest{ENRPHeader: h, OwnChildrenOnly: flags&FlagOwnChildrenOnly != 0}
		err, m = p.noParams(ENRPHeaderLen, &x.Unknown), x
	case ENRPHandleTableResponse:
		x := &HandleTableResponse{ENRPHeader: h, Reject: flags&FlagTableReject != 0, MoreToSend: flags&FlagMoreToSend != 0}
		err, m = p.tableResponse(x), x
	case ENRPHandleUpdate:
		x := &struct {
			HandleUpdate
			addrs [onePEAddrs]netip.Addr
		}{HandleUpdate: HandleUpdate{ENRPHeader: h, TakeoverSuggested: flags&FlagTakeoverSuggested != 0}}
		p.addrs = x.addrs[:0]
		err, m = p.handleUpdate(&x.HandleUpdate), &x.HandleUpdate
	case ENRPListRequest:
		x := &ListRequest{ENRPHeader: h}
		err, m = p.noParams(ENRPHeaderLen, &x.Unknown), x
	case ENRPListResponse:
		x := &ListResponse{ENRPHeader: h, Reject: flags&FlagListReject != 0}
		err, m = p.listResponse(x), x
	case ENRPInitTakeover:
		x := &InitTakeover{ENRPHeader: h}
		err, m = p.targetID(&x.TargetID, &x.Unknown), x
	case ENRPInitTakeoverAck:
		x := &InitTakeoverAck{ENRPHeader: h}
		err, m = p.targetID(&x.TargetID, &x.Unknown), x
	case ENRPTakeoverServer:
		x := &TakeoverServer{ENRPHeader: h}
		err, m = p.targetID(&x.TargetID, &x.Unknown), x
	case ENRPErrorType:
		x := &ENRPError{ENRPHeader: h}
		err, m = p.errorMessage(ENRPHeaderLen, &x.Error, &x.Unknown), x
	}
	if err != nil {
		return nil, err
	}
	return m, nil
}

func (p *parser) top(it *iter, off int) error { return p.iter(it, off, len(p.msg), 1) }

// Every message parser below walks the top-level parameters with an iter,
// keeps the ones its message defines, hands the others to parser.unknown (RFC
// 5354 §2 action bits), checks that the mandatory ones came, and stores the
// skipped unknowns. There is one parser per message shape.

// onePEAddrs is the room for addresses that the messages with one Pool
// Element get in the same allocation as the message: a dual-stack user
// transport and an ASAP transport fit; more addresses go to a new array.
const onePEAddrs = 4

// handlePE parses the messages made of a Pool Handle and one Pool Element
// (ASAP_REGISTRATION, ENRP_HANDLE_UPDATE) from off on. The caller sets
// p.addrs (see onePEAddrs).
func (p *parser) handlePE(off int, h *PoolHandle, pe *PoolElement, unk *[]RawParam) error {
	var it iter
	err := p.top(&it, off)
	if err != nil {
		return err
	}
	var havePE bool
	for p.next(&it) {
		pr := it.pr
		switch pr.t {
		case ParamPoolHandle:
			err = p.handle(pr, h)
		case ParamPoolElement:
			if havePE {
				return p.dup(pr)
			}
			err = p.poolElement(pr, 1, pe)
			havePE = true
		default:
			err = p.unknown(&it, pr)
		}
		if err != nil {
			return err
		}
	}
	if it.err != nil {
		return it.err
	}
	if *h == nil {
		return p.missing(off, ParamPoolHandle)
	}
	if !havePE {
		return p.missing(off, ParamPoolElement)
	}
	*unk = it.unk
	return nil
}

// handleID parses the messages made of a Pool Handle, a PE Identifier and,
// when e is not nil, an optional Operation Error.
func (p *parser) handleID(off int, h *PoolHandle, id *uint32, e **OperationError, unk *[]RawParam) error {
	var have bool
	if err := p.handleU32(off, h, ParamPEIdentifier, id, &have, e, unk); err != nil {
		return err
	}
	if !have {
		return p.missing(off, ParamPEIdentifier)
	}
	return nil
}

// handleOpt parses the messages made of a Pool Handle and an optional
// uint32 parameter of type t (ASAP_HANDLE_RESOLUTION with its Handle
// Resolution Option, ASAP_ENDPOINT_KEEP_ALIVE with the RSPLIB PE Identifier).
func (p *parser) handleOpt(off int, h *PoolHandle, t ParamType, v *uint32, have *bool, unk *[]RawParam) error {
	return p.handleU32(off, h, t, v, have, nil, unk)
}

// handleU32 is handleID and handleOpt: a mandatory Pool Handle, a uint32
// parameter of type t that may appear once, and, when e is not nil, an
// optional Operation Error.
func (p *parser) handleU32(off int, h *PoolHandle, t ParamType, v *uint32, have *bool, e **OperationError, unk *[]RawParam) error {
	var it iter
	err := p.top(&it, off)
	if err != nil {
		return err
	}
	for p.next(&it) {
		pr := it.pr
		switch {
		case pr.t == ParamPoolHandle:
			err = p.handle(pr, h)
		case pr.t == t:
			err = p.u32Once(pr, v, have)
		case pr.t == ParamOperationError && e != nil:
			err = p.opErr(pr, e)
		default:
			err = p.unknown(&it, pr)
		}
		if err != nil {
			return err
		}
	}
	if it.err != nil {
		return it.err
	}
	if *h == nil {
		return p.missing(off, ParamPoolHandle)
	}
	*unk = it.unk
	return nil
}

// pesMessage parses Handle Resolution Response and Business Card: Pool
// Handle, optional policy (stored in *polBuf, which the caller allocates
// with the message), Pool Elements, and (when e != nil) an optional
// Operation Error.
func (p *parser) pesMessage(h *PoolHandle, pol **Policy, polBuf *Policy, pes *[]PoolElement, e **OperationError, unk *[]RawParam) error {
	n := p.countTop(HeaderLen, len(p.msg), ParamPoolElement)
	if n > p.lim.MaxParams {
		return p.fail(ErrTooManyParams, HeaderLen, ParamPoolElement, CauseInvalidValues, ActionDiscard, nil)
	}
	var it iter
	err := p.top(&it, HeaderLen)
	if err != nil {
		return err
	}
	if n > 0 {
		*pes = make([]PoolElement, 0, n)
		p.addrs = make([]netip.Addr, 0, 2*n)
	}
	for p.next(&it) {
		pr := it.pr
		switch {
		case pr.t == ParamPoolHandle:
			err = p.handle(pr, h)
		case pr.t == ParamPolicy:
			if *pol != nil {
				return p.dup(pr)
			}
			if *polBuf, err = p.policy(pr); err == nil {
				*pol = polBuf
			}
		case pr.t == ParamPoolElement:
			*pes = growPEs(*pes)
			err = p.poolElement(pr, 1, &(*pes)[len(*pes)-1])
		case pr.t == ParamOperationError && e != nil:
			err = p.opErr(pr, e)
		default:
			err = p.unknown(&it, pr)
		}
		if err != nil {
			return err
		}
	}
	if it.err != nil {
		return it.err
	}
	if *h == nil {
		return p.missing(HeaderLen, ParamPoolHandle)
	}
	*unk = it.unk
	return nil
}

func (p *parser) serverAnnounce(m *ServerAnnounce) error {
	if err := p.needFixed(HeaderLen + 4); err != nil {
		return err
	}
	m.ServerID = p.u32(HeaderLen)
	var it iter
	err := p.top(&it, HeaderLen+4)
	if err != nil {
		return err
	}
	for p.next(&it) {
		pr := it.pr
		if isTransport(pr.t) {
			tr, err := p.transport(pr, 1)
			if err != nil {
				return err
			}
			m.Transports = append(m.Transports, tr)
		} else if err := p.unknown(&it, pr); err != nil {
			return err
		}
	}
	if it.err != nil {
		return it.err
	}
	m.Unknown = it.unk
	return nil
}

// single parses the messages made of exactly one parameter of type t (Cookie,
// Operation Error) from off on: read is called once, for that parameter.
func (p *parser) single(off int, t ParamType, unk *[]RawParam, read func(param) error) error {
	var it iter
	err := p.top(&it, off)
	if err != nil {
		return err
	}
	var have bool
	for p.next(&it) {
		pr := it.pr
		switch {
		case pr.t != t:
			err = p.unknown(&it, pr)
		case have:
			return p.dup(pr)
		default:
			err, have = read(pr), true
		}
		if err != nil {
			return err
		}
	}
	if it.err != nil {
		return it.err
	}
	if !have {
		return p.missing(off, t)
	}
	*unk = it.unk
	return nil
}

func (p *parser) cookieMessage(c *[]byte, unk *[]RawParam) error {
	return p.single(HeaderLen, ParamCookie, unk, func(pr param) error {
		*c = p.cookie(pr)
		return nil
	})
}

func (p *parser) errorMessage(off int, e *OperationError, unk *[]RawParam) error {
	return p.single(off, ParamOperationError, unk, func(pr param) (err error) {
		*e, err = p.operationError(pr)
		return err
	})
}

// noParams parses a message that defines no parameters from off on: only
// skippable unknown ones may follow.
func (p *parser) noParams(off int, unk *[]RawParam) error {
	var it iter
	err := p.top(&it, off)
	if err != nil {
		return err
	}
	for p.next(&it) {
		if err := p.unknown(&it, it.pr); err != nil {
			return err
		}
	}
	if it.err != nil {
		return it.err
	}
	*unk = it.unk
	return nil
}

// targetID parses the takeover messages (RFC 5353 §2.7-§2.9): the Target
// Server Identifier after the ENRP header, then no parameters.
func (p *parser) targetID(target *uint32, unk *[]RawParam) error {
	if err := p.needFixed(ENRPHeaderLen + 4); err != nil {
		return err
	}
	*target = p.u32(ENRPHeaderLen)
	return p.noParams(ENRPHeaderLen+4, unk)
}

func (p *parser) keepAlive(m *EndpointKeepAlive) error {
	if err := p.needFixed(HeaderLen + 4); err != nil {
		return err
	}
	m.ServerID = p.u32(HeaderLen)
	return p.handleOpt(HeaderLen+4, &m.PoolHandle, ParamPEIdentifier, &m.PEID, &m.HasPEID, &m.Unknown)
}

func (p *parser) handleUpdate(m *HandleUpdate) error {
	if err := p.needFixed(ENRPHeaderLen + 4); err != nil {
		return err
	}
	m.Action = UpdateAction(p.u16(ENRPHeaderLen))
	if m.Action != UpdateAddPE && m.Action != UpdateDelPE {
		return p.fail(ErrInvalidValue, ENRPHeaderLen, 0, CauseInvalidValues, ActionReport, nil)
	}
	return p.handlePE(ENRPHeaderLen+4, &m.PoolHandle, &m.PE, &m.Unknown)
}

func (p *parser) presence(m *Presence) error {
	var it iter
	err := p.top(&it, ENRPHeaderLen)
	if err != nil {
		return err
	}
	var haveSum bool
	for p.next(&it) {
		pr := it.pr
		switch pr.t {
		case ParamPEChecksum:
			if haveSum {
				return p.dup(pr)
			}
			m.Checksum, err = p.checksum(pr)
			haveSum = true
		case ParamServerInformation:
			if m.Info != nil {
				return p.dup(pr)
			}
			si := &ServerInfo{}
			if err = p.serverInfo(pr, 1, si); err == nil {
				m.Info = si
			}
		default:
			err = p.unknown(&it, pr)
		}
		if err != nil {
			return err
		}
	}
	if it.err != nil {
		return it.err
	}
	if !haveSum {
		return p.missing(ENRPHeaderLen, ParamPEChecksum)
	}
	m.Unknown = it.unk
	return nil
}

func (p *parser) tableResponse(m *HandleTableResponse) error {
	npe := p.countTop(ENRPHeaderLen, len(p.msg), ParamPoolElement)
	nph := p.countTop(ENRPHeaderLen, len(p.msg), ParamPoolHandle)
	if npe+nph > p.lim.MaxParams {
		return p.fail(ErrTooManyParams, ENRPHeaderLen, 0, CauseInvalidValues, ActionDiscard, nil)
	}
	var it iter
	err := p.top(&it, ENRPHeaderLen)
	if err != nil {
		return err
	}
	var pes []PoolElement
	if npe > 0 {
		pes = make([]PoolElement, 0, npe)
		p.addrs = make([]netip.Addr, 0, 4*npe)
	}
	if nph > 0 {
		m.Pools = make([]PoolEntry, 0, nph)
	}
	first := 0 // index in pes of the current pool's first PE
	for p.next(&it) {
		pr := it.pr
		switch pr.t {
		case ParamPoolHandle:
			h, err := p.poolHandle(pr)
			if err != nil {
				return err
			}
			if len(m.Pools) > 0 {
				m.Pools[len(m.Pools)-1].PEs = pes[first:len(pes):len(pes)]
			}
			first = len(pes)
			m.Pools = append(m.Pools, PoolEntry{PoolHandle: h})
		case ParamPoolElement:
			if len(m.Pools) == 0 {
				// A Pool Element must follow its Pool Handle (RFC 5353 §2.3).
				return p.invalid(ErrInvalidValue, pr.hdr, pr.ve, pr.t)
			}
			pes = growPEs(pes)
			if err := p.poolElement(pr, 1, &pes[len(pes)-1]); err != nil {
				return err
			}
		default:
			if err := p.unknown(&it, pr); err != nil {
				return err
			}
		}
	}
	if it.err != nil {
		return it.err
	}
	if len(m.Pools) > 0 && len(pes) > first {
		m.Pools[len(m.Pools)-1].PEs = pes[first:len(pes):len(pes)]
	}
	m.Unknown = it.unk
	return nil
}

func (p *parser) listResponse(m *ListResponse) error {
	n := p.countTop(ENRPHeaderLen, len(p.msg), ParamServerInformation)
	if n > p.lim.MaxParams {
		return p.fail(ErrTooManyParams, ENRPHeaderLen, 0, CauseInvalidValues, ActionDiscard, nil)
	}
	var it iter
	err := p.top(&it, ENRPHeaderLen)
	if err != nil {
		return err
	}
	if n > 0 {
		m.Servers = make([]ServerInfo, 0, n)
		p.addrs = make([]netip.Addr, 0, 2*n)
	}
	for p.next(&it) {
		pr := it.pr
		if pr.t == ParamServerInformation {
			m.Servers = growServers(m.Servers)
			if err := p.serverInfo(pr, 1, &m.Servers[len(m.Servers)-1]); err != nil {
				return err
			}
		} else if err := p.unknown(&it, pr); err != nil {
			return err
		}
	}
	if it.err != nil {
		return it.err
	}
	m.Unknown = it.unk
	return nil
}

// growPEs returns pes with one more, zero, element. Within the capacity it
// only reslices: the spare capacity of a slice is zero already (make and
// append clear it), and storing a zero PoolElement would cost a bulk write
// barrier over its 200 bytes while the GC runs.
func growPEs(pes []PoolElement) []PoolElement {
	if len(pes) < cap(pes) {
		return pes[:len(pes)+1]
	}
	return append(pes, PoolElement{})
}

// growServers is growPEs for ServerInfo.
func growServers(s []ServerInfo) []ServerInfo {
	if len(s) < cap(s) {
		return s[:len(s)+1]
	}
	return append(s, ServerInfo{})
}
