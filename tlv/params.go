package tlv

import (
	"encoding/binary"
	"net/netip"
)

// Param is any parameter this package encodes: it writes its whole TLV,
// header and padding included.
type Param interface {
	// ParamType is the 16-bit parameter type written in the header.
	ParamType() ParamType
	// Len is the number of bytes AppendTo writes, trailing padding
	// included (a multiple of 4). The Parameter Length field written is
	// Len() minus the padding.
	Len() int
	// AppendTo appends the TLV; it does not allocate when b has room.
	AppendTo(b []byte) []byte
}

// Address is an IPv4 or IPv6 Address parameter (RFC 5354 §3.1, §3.2) on its
// own, as returned by ParseParam. Inside transports addresses are plain
// netip.Addr values.
type Address struct{ Addr netip.Addr }

// CookieParam is the Cookie parameter (RFC 5354 §3.13) as returned by
// ParseParam: opaque bytes chosen by the PE.
type CookieParam []byte

// PEIdentifier is the PE Identifier parameter (RFC 5354 §3.14).
type PEIdentifier uint32

// PEChecksum is the PE Checksum parameter (RFC 5354 §3.15): Parameter
// Length 6, padded to 8 bytes.
type PEChecksum uint16

// HandleResolutionOption is the Handle Resolution Option parameter (type
// 0x803f, draft-dreibholz-rserpool-asap-hropt): the number of PEs the pool
// user asks for.
type HandleResolutionOption uint32

func pad(n int) int { return (n + 3) &^ 3 }

func appendU16(b []byte, v uint16) []byte { return append(b, byte(v>>8), byte(v)) }

func appendU32(b []byte, v uint32) []byte {
	return append(b, byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
}

var zeros [4]byte

// appendPadding pads b to the next multiple of 4 counted from start.
func appendPadding(b []byte, start int) []byte {
	if n := (len(b) - start) & 3; n != 0 {
		b = append(b, zeros[:4-n]...)
	}
	return b
}

// beginParam writes a parameter header with a zero length and returns the
// offset to hand to endParam.
func beginParam(b []byte, t ParamType) ([]byte, int) {
	return append(b, byte(t>>8), byte(t), 0, 0), len(b)
}

// endParam back-patches the Parameter Length (padding excluded) and then
// appends the padding.
func endParam(b []byte, start int) []byte {
	binary.BigEndian.PutUint16(b[start+2:], uint16(len(b)-start))
	return appendPadding(b, start)
}

// appendSimple writes a TLV with the given value.
func appendSimple(b []byte, t ParamType, v []byte) []byte {
	n := ParamHeaderLen + len(v)
	b = append(b, byte(t>>8), byte(t), byte(n>>8), byte(n))
	b = append(b, v...)
	return appendPadding(b, len(b)-n)
}

func appendU32Param(b []byte, t ParamType, v uint32) []byte {
	return append(b, byte(t>>8), byte(t), 0, 8, byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
}

// seq writes the raw unknown parameters of a container back at the positions
// they were received at: before writing parameter number pos it flushes the
// unknowns whose Index is <= pos.
type seq struct {
	unk []RawParam
	pos int
	u   int
}

func (s *seq) next(b []byte) []byte {
	if s.u < len(s.unk) { // rare: kept small so that it inlines
		b = s.flush(b)
	}
	s.pos++
	return b
}

// flush writes the unknowns due before parameter number s.pos.
func (s *seq) flush(b []byte) []byte {
	for s.u < len(s.unk) && s.unk[s.u].Index <= s.pos {
		b = s.unk[s.u].AppendTo(b)
		s.u++
		s.pos++
	}
	return b
}

func (s *seq) rest(b []byte) []byte {
	if s.u < len(s.unk) {
		b = appendRaw(b, s.unk[s.u:])
		s.u = len(s.unk)
	}
	return b
}

// appendRaw writes raw parameters one after the other.
func appendRaw(b []byte, unk []RawParam) []byte {
	for i := range unk {
		b = unk[i].AppendTo(b)
	}
	return b
}

func unknownLen(u []RawParam) int {
	n := 0
	for i := range u {
		n += u[i].Len()
	}
	return n
}

// ---- addresses ----

func addrLen(a netip.Addr) int {
	if a.Is4() || !a.IsValid() {
		return 8
	}
	return 20
}

func appendAddr(b []byte, a netip.Addr) []byte {
	switch {
	case a.Is4():
		v := a.As4()
		return append(b, 0, byte(ParamIPv4Address), 0, 8, v[0], v[1], v[2], v[3])
	case a.Is6():
		v := a.As16()
		b = append(b, 0, byte(ParamIPv6Address), 0, 20)
		return append(b, v[:]...)
	}
	return append(b, 0, byte(ParamIPv4Address), 0, 8, 0, 0, 0, 0)
}

// ParamType implements Param.
func (a Address) ParamType() ParamType {
	if addrLen(a.Addr) == 8 {
		return ParamIPv4Address
	}
	return ParamIPv6Address
}

// Len implements Param.
func (a Address) Len() int { return addrLen(a.Addr) }

// AppendTo implements Param.
func (a Address) AppendTo(b []byte) []byte { return appendAddr(b, a.Addr) }

// ---- transport ----

// NewSCTPTransport builds an SCTP Transport parameter (RFC 5354 §3.4) for
// port and the given addresses (Unmap()ed, so IPv4 goes out as IPv4).
func NewSCTPTransport(port uint16, use TransportUse, addrs ...netip.Addr) Transport {
	return newTransport(ParamSCTPTransport, port, use, addrs)
}

// NewTCPTransport builds a TCP Transport parameter (RFC 5354 §3.5).
func NewTCPTransport(port uint16, use TransportUse, addr netip.Addr) Transport {
	return newTransport(ParamTCPTransport, port, use, []netip.Addr{addr})
}

// NewUDPTransport builds a UDP Transport parameter (RFC 5354 §3.6).
func NewUDPTransport(port uint16, addr netip.Addr) Transport {
	return newTransport(ParamUDPTransport, port, 0, []netip.Addr{addr})
}

// NewUDPLiteTransport builds a UDP-Lite Transport parameter (RFC 5354 §3.7).
func NewUDPLiteTransport(port uint16, addr netip.Addr) Transport {
	return newTransport(ParamUDPLiteTransport, port, 0, []netip.Addr{addr})
}

// NewDCCPTransport builds a DCCP Transport parameter (RFC 5354 §3.3).
func NewDCCPTransport(port uint16, serviceCode uint32, addr netip.Addr) Transport {
	t := newTransport(ParamDCCPTransport, port, 0, []netip.Addr{addr})
	t.ServiceCode = serviceCode
	return t
}

// TransportFromAddrPorts builds an SCTP transport from the address-port
// pairs of a multi-homed endpoint. All ports must be equal: the port of the
// first one is used.
func TransportFromAddrPorts(use TransportUse, aps ...netip.AddrPort) Transport {
	t := Transport{Type: ParamSCTPTransport, Use: use, Addrs: make([]netip.Addr, len(aps))}
	for i, ap := range aps {
		if i == 0 {
			t.Port = ap.Port()
		}
		t.Addrs[i] = ap.Addr().Unmap().WithZone("")
	}
	return t
}

func newTransport(t ParamType, port uint16, use TransportUse, addrs []netip.Addr) Transport {
	tr := Transport{Type: t, Port: port, Use: use, Addrs: make([]netip.Addr, len(addrs))}
	for i, a := range addrs {
		tr.Addrs[i] = a.Unmap().WithZone("")
	}
	return tr
}

// AddrPorts returns the transport's addresses combined with its port.
func (t Transport) AddrPorts() []netip.AddrPort {
	out := make([]netip.AddrPort, len(t.Addrs))
	for i, a := range t.Addrs {
		out[i] = netip.AddrPortFrom(a.Unmap(), t.Port)
	}
	return out
}

// IsZero reports whether the transport is absent (Type 0).
func (t Transport) IsZero() bool { return t.Type == 0 }

// ParamType implements Param.
func (t Transport) ParamType() ParamType { return t.Type }

func (t *Transport) fixedLen() int {
	if t.Type == ParamDCCPTransport {
		return 12
	}
	return 8
}

// Len implements Param. An absent transport (Type 0) has length 0 and
// writes nothing.
func (t Transport) Len() int { return t.len() }

func (t *Transport) len() int {
	if t.Type == 0 {
		return 0
	}
	n := t.fixedLen()
	for _, a := range t.Addrs {
		n += addrLen(a)
	}
	return n + unknownLen(t.Unknown)
}

// AppendTo implements Param.
func (t Transport) AppendTo(b []byte) []byte { return t.appendTo(b) }

func (t *Transport) appendTo(b []byte) []byte {
	if t.Type == 0 {
		return b
	}
	b, start := beginParam(b, t.Type)
	b = appendU16(b, t.Port)
	switch t.Type {
	case ParamSCTPTransport, ParamTCPTransport:
		b = appendU16(b, uint16(t.Use))
	case ParamDCCPTransport:
		b = appendU16(b, 0)
		b = appendU32(b, t.ServiceCode)
	default:
		b = appendU16(b, 0)
	}
	s := seq{unk: t.Unknown}
	for _, a := range t.Addrs {
		b = s.next(b)
		b = appendAddr(b, a)
	}
	b = s.rest(b)
	return endParam(b, start)
}

// ---- policy ----

// ParamType implements Param.
func (p Policy) ParamType() ParamType { return ParamPolicy }

// Len implements Param.
func (p Policy) Len() int { return pad(8 + len(p.Value)) }

// AppendTo implements Param.
func (p Policy) AppendTo(b []byte) []byte { return p.appendTo(b) }

func (p *Policy) appendTo(b []byte) []byte {
	n := 8 + len(p.Value)
	b = append(b, 0, byte(ParamPolicy), byte(n>>8), byte(n))
	b = appendU32(b, p.Type)
	b = append(b, p.Value...)
	return appendPadding(b, len(b)-n)
}

// ---- pool handle, cookie, PE id, checksum, HROPT ----

// ParamType implements Param.
func (h PoolHandle) ParamType() ParamType { return ParamPoolHandle }

// Len implements Param: the whole TLV with padding, not len(h).
func (h PoolHandle) Len() int { return pad(4 + len(h)) }

// AppendTo implements Param.
func (h PoolHandle) AppendTo(b []byte) []byte { return appendSimple(b, ParamPoolHandle, h) }

// Equal reports whether two pool handles are byte for byte the same.
func (h PoolHandle) Equal(o PoolHandle) bool { return string(h) == string(o) }

// ParamType implements Param.
func (c CookieParam) ParamType() ParamType { return ParamCookie }

// Len implements Param.
func (c CookieParam) Len() int { return pad(4 + len(c)) }

// AppendTo implements Param.
func (c CookieParam) AppendTo(b []byte) []byte { return appendSimple(b, ParamCookie, c) }

// ParamType implements Param.
func (id PEIdentifier) ParamType() ParamType { return ParamPEIdentifier }

// Len implements Param.
func (id PEIdentifier) Len() int { return 8 }

// AppendTo implements Param.
func (id PEIdentifier) AppendTo(b []byte) []byte {
	return appendU32Param(b, ParamPEIdentifier, uint32(id))
}

// ParamType implements Param.
func (c PEChecksum) ParamType() ParamType { return ParamPEChecksum }

// Len implements Param: 8 bytes (Parameter Length 6 plus 2 padding).
func (c PEChecksum) Len() int { return 8 }

// AppendTo implements Param.
func (c PEChecksum) AppendTo(b []byte) []byte {
	return append(b, 0, byte(ParamPEChecksum), 0, PEChecksumLen, byte(c>>8), byte(c), 0, 0)
}

// ParamType implements Param.
func (o HandleResolutionOption) ParamType() ParamType { return ParamHandleResolutionOption }

// Len implements Param.
func (o HandleResolutionOption) Len() int { return 8 }

// AppendTo implements Param.
func (o HandleResolutionOption) AppendTo(b []byte) []byte {
	return appendU32Param(b, ParamHandleResolutionOption, uint32(o))
}

// ---- pool element ----

// ParamType implements Param.
func (pe PoolElement) ParamType() ParamType { return ParamPoolElement }

// Len implements Param.
func (pe PoolElement) Len() int { return pe.len() }

func (pe *PoolElement) len() int {
	return 16 + pe.UserTransport.len() + pe.Policy.Len() + pe.ASAPTransport.len() + unknownLen(pe.Unknown)
}

// AppendTo implements Param. Field order per RFC 5354: PE Identifier, Home
// ENRP Server Identifier, Registration Life, User Transport, Member
// Selection Policy, ASAP Transport (only when set).
func (pe PoolElement) AppendTo(b []byte) []byte { return pe.appendTo(b) }

func (pe *PoolElement) appendTo(b []byte) []byte {
	b, start := beginParam(b, ParamPoolElement)
	b = appendU32(b, pe.ID)
	b = appendU32(b, pe.HomeServerID)
	b = appendU32(b, uint32(pe.RegistrationLife))
	s := seq{unk: pe.Unknown}
	if pe.UserTransport.Type != 0 {
		b = s.next(b)
		b = pe.UserTransport.appendTo(b)
	}
	b = s.next(b)
	b = pe.Policy.appendTo(b)
	if pe.ASAPTransport.Type != 0 {
		b = s.next(b)
		b = pe.ASAPTransport.appendTo(b)
	}
	b = s.rest(b)
	return endParam(b, start)
}

// ---- server information ----

// ParamType implements Param.
func (si ServerInfo) ParamType() ParamType { return ParamServerInformation }

// Len implements Param.
func (si ServerInfo) Len() int { return si.len() }

func (si *ServerInfo) len() int { return 8 + si.Transport.len() + unknownLen(si.Unknown) }

// AppendTo implements Param.
func (si ServerInfo) AppendTo(b []byte) []byte { return si.appendTo(b) }

func (si *ServerInfo) appendTo(b []byte) []byte {
	b, start := beginParam(b, ParamServerInformation)
	b = appendU32(b, si.ServerID)
	s := seq{unk: si.Unknown}
	if si.Transport.Type != 0 {
		b = s.next(b)
		b = si.Transport.appendTo(b)
	}
	b = s.rest(b)
	return endParam(b, start)
}

// ---- operation error and causes ----

// NewOperationError returns an Operation Error with one cause. info is the
// cause-specific information (e.g. the unrecognised parameter); it is not
// copied.
func NewOperationError(code CauseCode, info []byte) *OperationError {
	return &OperationError{Causes: []Cause{{Code: code, Info: info}}}
}

// First returns the code of the first cause, or CauseUnspecified when there
// is none.
func (e *OperationError) First() CauseCode {
	if e == nil || len(e.Causes) == 0 {
		return CauseUnspecified
	}
	return e.Causes[0].Code
}

// Has reports whether one of the causes has the given code.
func (e *OperationError) Has(code CauseCode) bool {
	if e == nil {
		return false
	}
	for _, c := range e.Causes {
		if c.Code == code {
			return true
		}
	}
	return false
}

// Error implements error, so an Operation Error received from a peer can be
// returned as a Go error.
func (e *OperationError) Error() string {
	if e == nil || len(e.Causes) == 0 {
		return "rserpool operation error"
	}
	s := "rserpool operation error: " + e.Causes[0].Code.String()
	for _, c := range e.Causes[1:] {
		s += ", " + c.Code.String()
	}
	return s
}

// ParamType implements Param.
func (e OperationError) ParamType() ParamType { return ParamOperationError }

// Len implements Param.
func (e OperationError) Len() int { return e.len() }

func (e *OperationError) len() int {
	n := 4
	for i := range e.Causes {
		n += e.Causes[i].Len()
	}
	return n
}

// AppendTo implements Param.
func (e OperationError) AppendTo(b []byte) []byte { return e.appendTo(b) }

func (e *OperationError) appendTo(b []byte) []byte {
	b, start := beginParam(b, ParamOperationError)
	for i := range e.Causes {
		b = e.Causes[i].AppendTo(b)
	}
	return endParam(b, start)
}

// Len is the bytes AppendTo writes: the cause header, the information and
// the padding (Cause Length excludes the padding).
func (c Cause) Len() int { return pad(4 + len(c.Info)) }

// AppendTo appends the error cause TLV (RFC 5354 §3.12).
func (c Cause) AppendTo(b []byte) []byte {
	n := 4 + len(c.Info)
	b = append(b, byte(c.Code>>8), byte(c.Code), byte(n>>8), byte(n))
	b = append(b, c.Info...)
	return appendPadding(b, len(b)-n)
}

// ---- raw ----

// ParamType implements Param.
func (r RawParam) ParamType() ParamType { return r.Type }

// Len implements Param.
func (r RawParam) Len() int { return pad(4 + len(r.Value)) }

// AppendTo implements Param.
func (r RawParam) AppendTo(b []byte) []byte { return appendSimple(b, r.Type, r.Value) }

// Bytes returns the raw TLV without padding, as an Unrecognized Parameter
// cause carries it. It allocates.
func (r RawParam) Bytes() []byte {
	b := make([]byte, 0, r.Len())
	b = r.AppendTo(b)
	return b[:4+len(r.Value)]
}
