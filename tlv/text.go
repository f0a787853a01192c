package tlv

// Text and JSON forms of the codec's values, for logs, events, errors and
// status pages. None of this is on the parse or append paths.
//
// The forms, used the same way throughout the module:
//   - Identifiers (PE Identifier, ENRP Server Identifier, RFC 5354 §3.10,
//     §3.11, §3.14) are "0x" and 8 lower-case hex digits: 0x0000002a
//     (FormatID). Reading back also accepts fewer digits and decimal.
//   - A pool handle is its bytes as text when they are printable UTF-8 and
//     do not start with "0x"; otherwise "0x" and the bytes in hex
//     (PoolHandle.String).
//   - Enumerations (parameter types, transport uses, cause codes) are
//     their names; a code without a name is "0x" and its hex digits.
//   - A Pool Member Selection Policy is its policy's name and fields
//     (package policy, when linked in: it registers the form); otherwise
//     its type code and value in hex.

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/go-rserpool/rserpool/internal/policyjson"
)

// FormatID formats a PE Identifier or an ENRP Server Identifier the way
// this module prints them everywhere (logs, events, errors, JSON): "0x"
// and 8 lower-case hex digits, e.g. 0x0000002a.
func FormatID(id uint32) string {
	return string(appendID(make([]byte, 0, 10), id))
}

func appendID(b []byte, id uint32) []byte {
	const digits = "0123456789abcdef"
	b = append(b, '0', 'x')
	for sh := 28; sh >= 0; sh -= 4 {
		b = append(b, digits[id>>uint(sh)&0xf])
	}
	return b
}

// ErrBadText is returned (wrapped) by the UnmarshalText methods of this
// module's values for text that is not one of their forms.
var ErrBadText = errors.New("rserpool: malformed text value")

// ParseID reads an identifier as FormatID writes it; it also accepts fewer
// hex digits ("0x2a", "0X2A") and plain decimal ("42").
func ParseID(s string) (uint32, error) {
	var v uint64
	var err error
	if h, ok := cutHexPrefix(s); ok {
		if h == "" || len(h) > 8 {
			return 0, fmt.Errorf("%w: identifier %q", ErrBadText, s)
		}
		v, err = strconv.ParseUint(h, 16, 32)
	} else {
		if s == "" || s[0] < '0' || s[0] > '9' {
			return 0, fmt.Errorf("%w: identifier %q", ErrBadText, s)
		}
		v, err = strconv.ParseUint(s, 10, 32)
	}
	if err != nil {
		return 0, fmt.Errorf("%w: identifier %q", ErrBadText, s)
	}
	return uint32(v), nil
}

func cutHexPrefix(s string) (string, bool) {
	if len(s) >= 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X') {
		return s[2:], true
	}
	return s, false
}

// String returns the identifier as FormatID does: 0x0000002a.
func (id PEIdentifier) String() string { return FormatID(uint32(id)) }

// MarshalText implements encoding.TextMarshaler (FormatID's form).
func (id PEIdentifier) MarshalText() ([]byte, error) { return appendID(nil, uint32(id)), nil }

// UnmarshalText implements encoding.TextUnmarshaler (ParseID's forms).
func (id *PEIdentifier) UnmarshalText(b []byte) error {
	v, err := ParseID(string(b))
	if err == nil {
		*id = PEIdentifier(v)
	}
	return err
}

// ServerID is an ENRP Server Identifier (RFC 5353 §2.1, RFC 5354 §3.10,
// §3.11): a registrar's 32-bit identifier. Structs carry it as a plain
// uint32; converting to ServerID gives it the module's text form, e.g. as
// a log attribute.
type ServerID uint32

// String returns the identifier as FormatID does: 0x0000002a.
func (id ServerID) String() string { return FormatID(uint32(id)) }

// MarshalText implements encoding.TextMarshaler (FormatID's form).
func (id ServerID) MarshalText() ([]byte, error) { return appendID(nil, uint32(id)), nil }

// UnmarshalText implements encoding.TextUnmarshaler (ParseID's forms).
func (id *ServerID) UnmarshalText(b []byte) error {
	v, err := ParseID(string(b))
	if err == nil {
		*id = ServerID(v)
	}
	return err
}

// ---- pool handle ----

// printable reports whether h reads as text: valid UTF-8, printable
// characters only (spaces allowed), and no "0x" prefix (kept for hex).
func printable(h []byte) bool {
	if _, ok := cutHexPrefix(string(h)); ok {
		return false
	}
	for len(h) > 0 {
		r, n := utf8.DecodeRune(h)
		if r == utf8.RuneError && n <= 1 || !unicode.IsPrint(r) {
			return false
		}
		h = h[n:]
	}
	return true
}

// String returns the handle as text when its bytes are printable UTF-8
// (and do not start with "0x"), and otherwise as "0x" and its bytes in
// hex: "echo", "0x00ff10". The empty handle is "". ParsePoolHandle reads
// either form back.
func (h PoolHandle) String() string {
	if printable(h) {
		return string(h)
	}
	return "0x" + hex.EncodeToString(h)
}

// MarshalText implements encoding.TextMarshaler with String's form, so
// that JSON shows a handle as a string rather than base64.
func (h PoolHandle) MarshalText() ([]byte, error) { return []byte(h.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler (ParsePoolHandle).
func (h *PoolHandle) UnmarshalText(b []byte) error {
	v, err := ParsePoolHandle(string(b))
	if err == nil {
		*h = v
	}
	return err
}

// ParsePoolHandle reads a handle as String writes it: "0x" and an even
// number of hex digits gives those bytes, anything else the text's bytes.
// It does not check the length against Limits.MaxPoolHandle.
func ParsePoolHandle(s string) (PoolHandle, error) {
	if h, ok := cutHexPrefix(s); ok {
		b, err := hex.DecodeString(h)
		if err != nil {
			return nil, fmt.Errorf("%w: pool handle %q: bad hex", ErrBadText, s)
		}
		return PoolHandle(b), nil
	}
	return PoolHandle(s), nil
}

// ---- enumerations ----

func hex16(v uint16) []byte { return fmt.Appendf(nil, "0x%04x", v) }

// parseCode reads a 16-bit code written as "0x" and hex digits.
func parseCode(what string, b []byte) (uint16, error) {
	if h, ok := cutHexPrefix(string(b)); ok && h != "" && len(h) <= 4 {
		if v, err := strconv.ParseUint(h, 16, 16); err == nil {
			return uint16(v), nil
		}
	}
	return 0, fmt.Errorf("%w: %s %q", ErrBadText, what, b)
}

// MarshalText implements encoding.TextMarshaler: the name String gives
// ("SCTP Transport"), or "0x" and 4 hex digits for a type without one.
func (t ParamType) MarshalText() ([]byte, error) {
	if s, ok := paramNames[t]; ok {
		return []byte(s), nil
	}
	return hex16(uint16(t)), nil
}

// UnmarshalText implements encoding.TextUnmarshaler (MarshalText's forms).
func (t *ParamType) UnmarshalText(b []byte) error {
	for k, s := range paramNames {
		if s == string(b) {
			*t = k
			return nil
		}
	}
	v, err := parseCode("parameter type", b)
	if err == nil {
		*t = ParamType(v)
	}
	return err
}

var useNames = [...]string{
	TransportUseDataOnly:        "data only",
	TransportUseDataPlusControl: "data plus control",
}

// String returns the RFC 5354 §3.4 name of the Transport Use ("data
// only", "data plus control"), or "0x" and 4 hex digits for another value.
func (u TransportUse) String() string {
	if int(u) < len(useNames) {
		return useNames[u]
	}
	return string(hex16(uint16(u)))
}

// MarshalText implements encoding.TextMarshaler (String's form).
func (u TransportUse) MarshalText() ([]byte, error) { return []byte(u.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler (String's forms).
func (u *TransportUse) UnmarshalText(b []byte) error {
	for k, s := range useNames {
		if s == string(b) {
			*u = TransportUse(k)
			return nil
		}
	}
	v, err := parseCode("transport use", b)
	if err == nil {
		*u = TransportUse(v)
	}
	return err
}

// MarshalText implements encoding.TextMarshaler: the RFC 5354 name String
// gives, or "0x" and 4 hex digits for a code without one.
func (c CauseCode) MarshalText() ([]byte, error) {
	if int(c) < len(causeNames) && causeNames[c] != "" {
		return []byte(causeNames[c]), nil
	}
	return hex16(uint16(c)), nil
}

// UnmarshalText implements encoding.TextUnmarshaler (MarshalText's forms).
func (c *CauseCode) UnmarshalText(b []byte) error {
	for k, s := range causeNames {
		if s != "" && s == string(b) {
			*c = CauseCode(k)
			return nil
		}
	}
	v, err := parseCode("cause code", b)
	if err == nil {
		*c = CauseCode(v)
	}
	return err
}

// MarshalText implements encoding.TextMarshaler (String's form).
func (t ASAPType) MarshalText() ([]byte, error) { return []byte(t.String()), nil }

// MarshalText implements encoding.TextMarshaler (String's form).
func (t ENRPType) MarshalText() ([]byte, error) { return []byte(t.String()), nil }

// ---- transports ----

var protoNames = map[ParamType]string{
	ParamSCTPTransport:    "sctp",
	ParamTCPTransport:     "tcp",
	ParamUDPTransport:     "udp",
	ParamUDPLiteTransport: "udplite",
	ParamDCCPTransport:    "dccp",
}

// String describes the transport in one line: protocol, then each address
// with the port, then the Transport Use of SCTP and TCP when it is data
// plus control, e.g. "sctp 127.0.0.1:9000 [::1]:9000 (data plus control)".
// The absent transport (Type 0) is "none".
func (t Transport) String() string {
	if t.Type == 0 {
		return "none"
	}
	var b strings.Builder
	if s, ok := protoNames[t.Type]; ok {
		b.WriteString(s)
	} else {
		b.Write(hex16(uint16(t.Type)))
	}
	for _, a := range t.Addrs {
		b.WriteByte(' ')
		b.WriteString(netip.AddrPortFrom(a, t.Port).String())
	}
	if len(t.Addrs) == 0 {
		fmt.Fprintf(&b, " port %d", t.Port)
	}
	if t.Type == ParamDCCPTransport {
		fmt.Fprintf(&b, " service %d", t.ServiceCode)
	}
	if t.Use != TransportUseDataOnly {
		b.WriteString(" (" + t.Use.String() + ")")
	}
	return b.String()
}

// transportJSON is Transport's JSON form: Use only where the RFC defines
// it (SCTP, TCP) or when set, ServiceCode only for DCCP or when set.
type transportJSON struct {
	Type        ParamType
	Port        uint16
	Use         *TransportUse `json:",omitempty"`
	ServiceCode *uint32       `json:",omitempty"`
	Addrs       []netip.Addr
	Unknown     []RawParam `json:",omitempty"`
}

// MarshalJSON implements json.Marshaler: {"Type":"SCTP Transport",
// "Port":9000,"Use":"data only","Addrs":["127.0.0.1"]}.
func (t Transport) MarshalJSON() ([]byte, error) {
	j := transportJSON{Type: t.Type, Port: t.Port, Addrs: t.Addrs, Unknown: t.Unknown}
	if j.Addrs == nil {
		j.Addrs = []netip.Addr{}
	}
	if t.Type == ParamSCTPTransport || t.Type == ParamTCPTransport || t.Use != 0 {
		j.Use = &t.Use
	}
	if t.Type == ParamDCCPTransport || t.ServiceCode != 0 {
		j.ServiceCode = &t.ServiceCode
	}
	return json.Marshal(j)
}

// UnmarshalJSON implements json.Unmarshaler (MarshalJSON's form).
func (t *Transport) UnmarshalJSON(b []byte) error {
	var j transportJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*t = Transport{Type: j.Type, Port: j.Port, Addrs: j.Addrs, Unknown: j.Unknown}
	if len(t.Addrs) == 0 {
		t.Addrs = nil
	}
	if j.Use != nil {
		t.Use = *j.Use
	}
	if j.ServiceCode != nil {
		t.ServiceCode = *j.ServiceCode
	}
	return nil
}

// ---- raw parameters ----

// hexBytes is a byte string in JSON as "0x" and hex digits.
type hexBytes []byte

func (h hexBytes) MarshalText() ([]byte, error) {
	return []byte("0x" + hex.EncodeToString(h)), nil
}

func (h *hexBytes) UnmarshalText(b []byte) error {
	s, ok := cutHexPrefix(string(b))
	v, err := hex.DecodeString(s)
	if !ok || err != nil {
		return fmt.Errorf("%w: bytes %q: want 0x and hex digits", ErrBadText, b)
	}
	*h = v
	return nil
}

type rawParamJSON struct {
	Type  ParamType
	Value hexBytes
	Index int
}

// MarshalJSON implements json.Marshaler: the value in hex, e.g.
// {"Type":"0x7001","Value":"0x0102","Index":3}.
func (p RawParam) MarshalJSON() ([]byte, error) {
	return json.Marshal(rawParamJSON{p.Type, p.Value, p.Index})
}

// UnmarshalJSON implements json.Unmarshaler (MarshalJSON's form).
func (p *RawParam) UnmarshalJSON(b []byte) error {
	var j rawParamJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*p = RawParam{Type: j.Type, Value: j.Value, Index: j.Index}
	return nil
}

type causeJSON struct {
	Code CauseCode
	Info hexBytes `json:",omitempty"`
}

// MarshalJSON implements json.Marshaler: {"Code":"Unknown Pool Handle",
// "Info":"0x..."}.
func (c Cause) MarshalJSON() ([]byte, error) { return json.Marshal(causeJSON{c.Code, c.Info}) }

// UnmarshalJSON implements json.Unmarshaler (MarshalJSON's form).
func (c *Cause) UnmarshalJSON(b []byte) error {
	var j causeJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*c = Cause{Code: j.Code, Info: j.Info}
	return nil
}

// ---- policy ----

type policyRawJSON struct {
	Type  string
	Value hexBytes // always present: it marks the raw form
}

// MarshalJSON implements json.Marshaler. With package policy linked in
// (asap and enrp link it) a policy of a known type is its name and
// fields, loads as fractions: {"Type":"LeastUsed","Load":0.25}. Otherwise
// it is the type code and the value in hex:
// {"Type":"0x40000001","Value":"0x40000000"}.
func (p Policy) MarshalJSON() ([]byte, error) {
	if f := policyjson.Marshal; f != nil {
		if b, ok := f(p.Type, p.Value); ok {
			return b, nil
		}
	}
	return json.Marshal(policyRawJSON{Type: string(fmt.Appendf(nil, "0x%08x", p.Type)), Value: p.Value})
}

// UnmarshalJSON implements json.Unmarshaler: MarshalJSON's forms (the
// named one needs package policy).
func (p *Policy) UnmarshalJSON(b []byte) error {
	if f := policyjson.Unmarshal; f != nil {
		t, v, err := f(b)
		if err != nil {
			return err
		}
		*p = Policy{Type: t, Value: v}
		return nil
	}
	var j policyRawJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	t, err := parsePolicyCode(j.Type)
	if err != nil {
		return fmt.Errorf("%w (a named policy type needs package policy)", err)
	}
	*p = Policy{Type: t, Value: j.Value}
	return nil
}

// parsePolicyCode reads a policy type code written as "0x" and up to 8
// hex digits (the raw form of Policy's JSON).
func parsePolicyCode(s string) (uint32, error) {
	if h, ok := cutHexPrefix(s); ok && h != "" && len(h) <= 8 {
		if v, err := strconv.ParseUint(h, 16, 32); err == nil {
			return uint32(v), nil
		}
	}
	return 0, fmt.Errorf("%w: policy type %q", ErrBadText, s)
}

// ---- pool element, server information ----

type poolElementJSON struct {
	ID               PEIdentifier
	HomeServerID     ServerID
	RegistrationLife int32 // milliseconds
	UserTransport    Transport
	Policy           Policy
	ASAPTransport    *Transport `json:",omitempty"`
	Unknown          []RawParam `json:",omitempty"`
}

// MarshalJSON implements json.Marshaler: the fields by their Go names,
// identifiers as FormatID writes them, transports and policy in their
// JSON forms, RegistrationLife in milliseconds; ASAPTransport and Unknown
// only when present.
func (pe PoolElement) MarshalJSON() ([]byte, error) {
	j := poolElementJSON{
		ID: PEIdentifier(pe.ID), HomeServerID: ServerID(pe.HomeServerID),
		RegistrationLife: pe.RegistrationLife, UserTransport: pe.UserTransport,
		Policy: pe.Policy, Unknown: pe.Unknown,
	}
	if pe.ASAPTransport.Type != 0 {
		j.ASAPTransport = &pe.ASAPTransport
	}
	return json.Marshal(j)
}

// UnmarshalJSON implements json.Unmarshaler (MarshalJSON's form).
func (pe *PoolElement) UnmarshalJSON(b []byte) error {
	var j poolElementJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*pe = PoolElement{
		ID: uint32(j.ID), HomeServerID: uint32(j.HomeServerID),
		RegistrationLife: j.RegistrationLife, UserTransport: j.UserTransport,
		Policy: j.Policy, Unknown: j.Unknown,
	}
	if j.ASAPTransport != nil {
		pe.ASAPTransport = *j.ASAPTransport
	}
	return nil
}

type serverInfoJSON struct {
	ServerID  ServerID
	Transport Transport
	Unknown   []RawParam `json:",omitempty"`
}

// MarshalJSON implements json.Marshaler: the server ID as FormatID writes
// it and the transport in its JSON form.
func (si ServerInfo) MarshalJSON() ([]byte, error) {
	return json.Marshal(serverInfoJSON{ServerID(si.ServerID), si.Transport, si.Unknown})
}

// UnmarshalJSON implements json.Unmarshaler (MarshalJSON's form).
func (si *ServerInfo) UnmarshalJSON(b []byte) error {
	var j serverInfoJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*si = ServerInfo{ServerID: uint32(j.ServerID), Transport: j.Transport, Unknown: j.Unknown}
	return nil
}
