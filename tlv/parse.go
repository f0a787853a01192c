package tlv

import (
	"encoding/binary"
	"net/netip"
)

// parser holds the state of one parse: the message (for offsets and
// aliasing), the resolved limits, the parameter count and an address arena
// shared by all transports of the message.
type parser struct {
	msg     []byte
	lim     Limits
	nparams int
	addrs   []netip.Addr
}

func (p *parser) u16(off int) uint16 { return binary.BigEndian.Uint16(p.msg[off:]) }
func (p *parser) u32(off int) uint32 { return binary.BigEndian.Uint32(p.msg[off:]) }

// raw returns the TLV starting at off, clipped to the message.
func (p *parser) raw(off, end int) []byte {
	if end > len(p.msg) {
		end = len(p.msg)
	}
	if off > end {
		off = end
	}
	return p.msg[off:end:end]
}

func (p *parser) fail(err error, off int, t ParamType, cause CauseCode, act Action, raw []byte) *ParseError {
	return &ParseError{Offset: off, Type: t, Cause: cause, Action: act, Param: raw, Err: err}
}

// invalid is the usual "Invalid Values, report" error about the TLV at hdr.
func (p *parser) invalid(err error, hdr, end int, t ParamType) *ParseError {
	return p.fail(err, hdr, t, CauseInvalidValues, ActionReport, p.raw(hdr, end))
}

// iter walks the parameters of one container region [off, end), like a
// bufio.Scanner:
//
//	for p.next(&it) {
//		switch it.pr.t { ... }
//	}
//	if it.err != nil { ... }
//
// It does not point to its parser: escape analysis does not tell struct
// fields apart, so storing it.unk in the result would move the parser to
// the heap.
type iter struct {
	off int
	end int
	idx int   // index of the parameter in pr
	pr  param // the parameter next found
	err error // why next stopped early, nil at the end of the container
	unk []RawParam
}

// iter sets up it, which must be zero, to walk [off, end) at nesting depth
// depth. The caller declares it: returning an iter would copy it, and
// reading back what was just written in two halves stalls the CPU.
func (p *parser) iter(it *iter, off, end, depth int) error {
	if depth > p.lim.MaxDepth {
		return p.fail(ErrTooDeep, off, 0, CauseInvalidValues, ActionDiscard, nil)
	}
	it.off, it.end, it.idx = off, end, -1
	return nil
}

// param is one parameter found by parser.next: header offset, value bounds.
type param struct {
	t   ParamType
	hdr int
	vs  int
	ve  int
}

func (pr param) vlen() int { return pr.ve - pr.vs }

// next moves to the next parameter (it.pr). It returns false at the end of
// the container and on a malformed parameter header, which it leaves in
// it.err.
func (p *parser) next(it *iter) bool {
	if it.off >= it.end {
		return false
	}
	rem := it.end - it.off
	if rem < ParamHeaderLen {
		it.err = p.fail(ErrTruncated, it.off, 0, CauseInvalidValues, ActionReport, p.raw(it.off, it.end))
		return false
	}
	h := p.msg[it.off : it.off+ParamHeaderLen] // one bounds check for the header
	t := ParamType(h[0])<<8 | ParamType(h[1])
	l := int(h[2])<<8 | int(h[3])
	if l < ParamHeaderLen || l > rem {
		it.err = p.fail(ErrLength, it.off, t, CauseInvalidValues, ActionReport, p.raw(it.off, it.end))
		return false
	}
	p.nparams++
	if p.nparams > p.lim.MaxParams {
		it.err = p.fail(ErrTooManyParams, it.off, t, CauseInvalidValues, ActionDiscard, nil)
		return false
	}
	pl := pad(l)
	next := it.off + pl
	if pl > rem {
		// A final parameter may lack its padding (RFC 5354 §2); anything
		// else that stops inside the padding is malformed.
		if l != rem {
			it.err = p.fail(ErrPadding, it.off, t, CauseInvalidValues, ActionReport, p.raw(it.off, it.off+l))
			return false
		}
		next = it.end
	}
	it.pr = param{t: t, hdr: it.off, vs: it.off + ParamHeaderLen, ve: it.off + l}
	it.off = next
	it.idx++
	return true
}

// unknown handles a parameter the container does not expect, by its action
// bits (RFC 5354 §2): 00 and 01 stop with an error, 10 and 11 keep it raw.
func (p *parser) unknown(it *iter, pr param) error {
	act := pr.t.Action()
	if act == ActionDiscard || act == ActionReport {
		return p.fail(ErrUnrecognizedParam, pr.hdr, pr.t, CauseUnrecognizedParameter, act, p.raw(pr.hdr, pr.ve))
	}
	it.unk = append(it.unk, RawParam{Type: pr.t, Value: p.msg[pr.vs:pr.ve:pr.ve], Index: it.idx})
	return nil
}

func (p *parser) dup(pr param) error {
	return p.invalid(ErrDuplicateParam, pr.hdr, pr.ve, pr.t)
}

// handle reads a Pool Handle that may appear once into *h.
func (p *parser) handle(pr param, h *PoolHandle) error {
	if *h != nil {
		return p.dup(pr)
	}
	v, err := p.poolHandle(pr)
	*h = v
	return err
}

// u32Once reads an 8-byte parameter holding a uint32 that may appear once
// (PE Identifier, Handle Resolution Option) into *v, setting *have.
func (p *parser) u32Once(pr param, v *uint32, have *bool) error {
	if *have {
		return p.dup(pr)
	}
	x, err := p.u32Param(pr)
	*v, *have = x, err == nil
	return err
}

// opErr reads an optional Operation Error that may appear once into *e.
func (p *parser) opErr(pr param, e **OperationError) error {
	if *e != nil {
		return p.dup(pr)
	}
	oe, err := p.operationError(pr)
	if err != nil {
		return err
	}
	*e = &oe
	return nil
}

func (p *parser) missing(off int, t ParamType) error {
	return p.fail(ErrMissingParam, off, t, CauseInvalidValues, ActionReport, nil)
}

// missingIn reports that the parameter pr lacks a mandatory parameter of
// type t; the cause carries pr.
func (p *parser) missingIn(pr param, t ParamType) error {
	return p.fail(ErrMissingParam, pr.hdr, t, CauseInvalidValues, ActionReport, p.raw(pr.hdr, pr.ve))
}

// fixed checks a fixed-size parameter.
func (p *parser) fixed(pr param, n int) error {
	if pr.vlen() != n {
		return p.invalid(ErrLength, pr.hdr, pr.ve, pr.t)
	}
	return nil
}

func (p *parser) poolHandle(pr param) (PoolHandle, error) {
	n := pr.vlen()
	if n == 0 {
		return nil, p.invalid(ErrInvalidValue, pr.hdr, pr.ve, pr.t)
	}
	if n > p.lim.MaxPoolHandle {
		return nil, p.invalid(ErrTooLarge, pr.hdr, pr.ve, pr.t)
	}
	return PoolHandle(p.msg[pr.vs:pr.ve:pr.ve]), nil
}

func (p *parser) u32Param(pr param) (uint32, error) {
	if err := p.fixed(pr, 4); err != nil {
		return 0, err
	}
	return p.u32(pr.vs), nil
}

func (p *parser) checksum(pr param) (uint16, error) {
	if err := p.fixed(pr, 2); err != nil {
		return 0, err
	}
	return p.u16(pr.vs), nil
}

func (p *parser) policy(pr param) (Policy, error) {
	if pr.vlen() < 4 {
		return Policy{}, p.invalid(ErrLength, pr.hdr, pr.ve, pr.t)
	}
	return Policy{Type: p.u32(pr.vs), Value: p.msg[pr.vs+4 : pr.ve : pr.ve]}, nil
}

func (p *parser) cookie(pr param) []byte { return p.msg[pr.vs:pr.ve:pr.ve] }

func isTransport(t ParamType) bool {
	return t >= ParamDCCPTransport && t <= ParamUDPLiteTransport
}

func (p *parser) addr(pr param) (netip.Addr, error) {
	switch pr.t {
	case ParamIPv4Address:
		if err := p.fixed(pr, 4); err != nil {
			return netip.Addr{}, err
		}
		return netip.AddrFrom4([4]byte(p.msg[pr.vs : pr.vs+4])), nil
	default:
		if err := p.fixed(pr, 16); err != nil {
			return netip.Addr{}, err
		}
		return netip.AddrFrom16([16]byte(p.msg[pr.vs : pr.vs+16])), nil
	}
}

// transport parses an SCTP/TCP/UDP/UDP-Lite/DCCP Transport parameter
// (RFC 5354 §3.3-§3.7) at nesting depth depth.
func (p *parser) transport(pr param, depth int) (Transport, error) {
	var tr Transport
	err := p.transportInto(pr, depth, &tr)
	return tr, err
}

// transportInto is transport writing into tr, which must be zero; it
// avoids copying the struct (and its write barriers) when tr is on the
// heap.
func (p *parser) transportInto(pr param, depth int, tr *Transport) error {
	tr.Type = pr.t
	fixed := 4
	if pr.t == ParamDCCPTransport {
		fixed = 8
	}
	if pr.vlen() < fixed {
		return p.invalid(ErrLength, pr.hdr, pr.ve, pr.t)
	}
	tr.Port = p.u16(pr.vs)
	switch pr.t {
	case ParamSCTPTransport, ParamTCPTransport:
		tr.Use = TransportUse(p.u16(pr.vs + 2))
		if tr.Use > TransportUseDataPlusControl {
			return p.invalid(ErrInvalidValue, pr.hdr, pr.ve, pr.t)
		}
	case ParamDCCPTransport:
		tr.ServiceCode = p.u32(pr.vs + 4)
	}
	var it iter
	err := p.iter(&it, pr.vs+fixed, pr.ve, depth+1)
	if err != nil {
		return err
	}
	start := len(p.addrs)
	for p.next(&it) {
		sub := it.pr
		switch sub.t {
		case ParamIPv4Address, ParamIPv6Address:
			a, err := p.addr(sub)
			if err != nil {
				return err
			}
			p.addrs = append(p.addrs, a)
		default:
			if err := p.unknown(&it, sub); err != nil {
				return err
			}
		}
	}
	if it.err != nil {
		return it.err
	}
	if len(p.addrs) == start {
		return p.missingIn(pr, ParamIPv4Address)
	}
	tr.Addrs = p.addrs[start:len(p.addrs):len(p.addrs)]
	if it.unk != nil { // *tr is zero: spare the write barrier
		tr.Unknown = it.unk
	}
	return nil
}

// poolElement parses a Pool Element parameter (RFC 5354 §3.10) into pe,
// which must be zero.
func (p *parser) poolElement(pr param, depth int, pe *PoolElement) error {
	if pr.vlen() < 12 {
		return p.invalid(ErrLength, pr.hdr, pr.ve, pr.t)
	}
	pe.ID = p.u32(pr.vs)
	pe.HomeServerID = p.u32(pr.vs + 4)
	pe.RegistrationLife = int32(p.u32(pr.vs + 8))
	var it iter
	err := p.iter(&it, pr.vs+12, pr.ve, depth+1)
	if err != nil {
		return err
	}
	var havePolicy bool
	for p.next(&it) {
		sub := it.pr
		switch {
		case isTransport(sub.t):
			var dst *Transport
			switch {
			case pe.UserTransport.Type == 0:
				dst = &pe.UserTransport
			case pe.ASAPTransport.Type == 0 && sub.t == ParamSCTPTransport && havePolicy:
				dst = &pe.ASAPTransport
			case pe.ASAPTransport.Type == 0 && havePolicy:
				// The ASAP transport is always SCTP (RFC 5352 §1).
				return p.invalid(ErrInvalidValue, sub.hdr, sub.ve, sub.t)
			default:
				return p.dup(sub)
			}
			if err := p.transportInto(sub, depth+1, dst); err != nil {
				return err
			}
		case sub.t == ParamPolicy:
			if havePolicy {
				return p.dup(sub)
			}
			if pe.Policy, err = p.policy(sub); err != nil {
				return err
			}
			havePolicy = true
		default:
			if err := p.unknown(&it, sub); err != nil {
				return err
			}
		}
	}
	if it.err != nil {
		return it.err
	}
	if pe.UserTransport.Type == 0 {
		return p.missingIn(pr, ParamSCTPTransport)
	}
	if !havePolicy {
		return p.missingIn(pr, ParamPolicy)
	}
	if it.unk != nil { // *pe is zero: spare the write barrier
		pe.Unknown = it.unk
	}
	return nil
}

// serverInfo parses a Server Information parameter (RFC 5354 §3.11).
func (p *parser) serverInfo(pr param, depth int, si *ServerInfo) error {
	if pr.vlen() < 4 {
		return p.invalid(ErrLength, pr.hdr, pr.ve, pr.t)
	}
	si.ServerID = p.u32(pr.vs)
	var it iter
	err := p.iter(&it, pr.vs+4, pr.ve, depth+1)
	if err != nil {
		return err
	}
	for p.next(&it) {
		sub := it.pr
		switch {
		case sub.t == ParamSCTPTransport:
			if si.Transport.Type != 0 {
				return p.dup(sub)
			}
			if err := p.transportInto(sub, depth+1, &si.Transport); err != nil {
				return err
			}
		case isTransport(sub.t):
			// ENRP runs over SCTP only (RFC 5353 §2).
			return p.invalid(ErrInvalidValue, sub.hdr, sub.ve, sub.t)
		default:
			if err := p.unknown(&it, sub); err != nil {
				return err
			}
		}
	}
	if it.err != nil {
		return it.err
	}
	if si.Transport.Type == 0 {
		return p.missingIn(pr, ParamSCTPTransport)
	}
	si.Unknown = it.unk
	return nil
}

// operationError parses an Operation Error parameter (RFC 5354 §3.12): one or
// more error causes, each padded to 4 bytes; the last may lack its padding.
func (p *parser) operationError(pr param) (OperationError, error) {
	var e OperationError
	n := 0
	for pass := 0; pass < 2; pass++ {
		off := pr.vs
		for off < pr.ve {
			rem := pr.ve - off
			if rem < 4 {
				return e, p.invalid(ErrTruncated, pr.hdr, pr.ve, pr.t)
			}
			l := int(p.u16(off + 2))
			if l < 4 || l > rem {
				return e, p.invalid(ErrLength, pr.hdr, pr.ve, pr.t)
			}
			pl := pad(l)
			if pl > rem {
				if l != rem {
					return e, p.invalid(ErrPadding, pr.hdr, pr.ve, pr.t)
				}
				pl = rem
			}
			if pass == 0 {
				n++
				p.nparams++
				if p.nparams > p.lim.MaxParams {
					return e, p.fail(ErrTooManyParams, off, pr.t, CauseInvalidValues, ActionDiscard, nil)
				}
			} else {
				e.Causes = append(e.Causes, Cause{Code: CauseCode(p.u16(off)), Info: p.msg[off+4 : off+l : off+l]})
			}
			off += pl
		}
		if pass == 0 {
			if n == 0 {
				return e, p.invalid(ErrInvalidValue, pr.hdr, pr.ve, pr.t)
			}
			e.Causes = make([]Cause, 0, n)
		}
	}
	return e, nil
}

// countTop counts the top-level parameters of type t in [off, end) without
// validating them, to size slices before filling them.
func (p *parser) countTop(off, end int, t ParamType) int {
	n := 0
	for end-off >= 4 {
		l := int(p.u16(off + 2))
		if l < 4 {
			break
		}
		if ParamType(p.u16(off)) == t {
			n++
		}
		off += pad(l)
	}
	return n
}

// ParseParam parses one parameter TLV at the start of b with the default
// limits. See Limits.ParseParam.
func ParseParam(b []byte) (Param, int, error) { return Limits{}.ParseParam(b) }

// ParseParam parses one parameter TLV at the start of b and returns it with
// the number of bytes it used, padding included (a final parameter without
// padding is accepted). Known types come back as Address, Transport, Policy,
// PoolHandle, PoolElement, ServerInfo, OperationError, CookieParam,
// PEIdentifier, PEChecksum or HandleResolutionOption; other types as
// RawParam when their action bits say "skip" and as an error otherwise.
// The result aliases b.
func (l Limits) ParseParam(b []byte) (Param, int, error) {
	l = l.resolve()
	if len(b) > l.MaxMessageSize {
		return nil, 0, &ParseError{Err: ErrTooLarge, Cause: CauseInvalidValues, Action: ActionDiscard}
	}
	p := &parser{msg: b, lim: l}
	var it iter
	err := p.iter(&it, 0, len(b), 1)
	if err != nil {
		return nil, 0, err
	}
	if !p.next(&it) {
		if it.err != nil {
			return nil, 0, it.err
		}
		return nil, 0, p.fail(ErrTruncated, 0, 0, CauseInvalidValues, ActionReport, nil)
	}
	v, err := p.one(&it, it.pr)
	if err != nil {
		return nil, 0, err
	}
	return v, it.off, nil
}

func (p *parser) one(it *iter, pr param) (Param, error) {
	switch {
	case pr.t == ParamIPv4Address || pr.t == ParamIPv6Address:
		a, err := p.addr(pr)
		return Address{Addr: a}, err
	case isTransport(pr.t):
		tr, err := p.transport(pr, 1)
		return tr, err
	case pr.t == ParamPolicy:
		pol, err := p.policy(pr)
		return pol, err
	case pr.t == ParamPoolHandle:
		h, err := p.poolHandle(pr)
		return h, err
	case pr.t == ParamPoolElement:
		var pe PoolElement
		err := p.poolElement(pr, 1, &pe)
		return pe, err
	case pr.t == ParamServerInformation:
		var si ServerInfo
		err := p.serverInfo(pr, 1, &si)
		return si, err
	case pr.t == ParamOperationError:
		e, err := p.operationError(pr)
		return e, err
	case pr.t == ParamCookie:
		return CookieParam(p.cookie(pr)), nil
	case pr.t == ParamPEIdentifier:
		v, err := p.u32Param(pr)
		return PEIdentifier(v), err
	case pr.t == ParamPEChecksum:
		v, err := p.checksum(pr)
		return PEChecksum(v), err
	case pr.t == ParamHandleResolutionOption:
		v, err := p.u32Param(pr)
		return HandleResolutionOption(v), err
	}
	if err := p.unknown(it, pr); err != nil {
		return nil, err
	}
	return it.unk[0], nil
}
