// Package tlv is the wire codec of RSerPool: every message of ASAP
// (RFC 5352 §2.2) and ENRP (RFC 5353 §2), and every parameter of RFC 5354,
// plus the Handle Resolution Option of draft-dreibholz-rserpool-asap-hropt.
//
// # Encoding
//
// Each message and parameter is a plain struct with Len and AppendTo:
//
//	buf = m.AppendTo(buf[:0]) // no allocation when cap(buf) >= len(buf)+m.Len()
//
// Every parameter is written padded to 4 bytes; its Parameter Length field
// excludes its own padding, outer lengths count inner padding, and the
// Message Length (always a multiple of 4) counts everything (RFC 5354 §2).
// AppendTo cannot fail; Append and Marshal refuse messages longer than the
// 16-bit Message Length allows.
//
// # Parsing
//
// ParseASAP and ParseENRP (or the same methods on Limits, for untrusted
// input with other bounds) return a pointer to one of the message structs:
//
//	m, err := tlv.ParseASAP(b)
//	switch m := m.(type) {
//	case *tlv.Registration: ...
//	}
//
// Parsed byte slices (pool handles, cookies, policy values, raw parameters,
// error cause information) alias the input: copy them before reusing the
// buffer. Addresses of all transports of a message share one backing array.
//
// Errors are *ParseError values wrapping a sentinel (ErrTruncated,
// ErrLength, ErrUnknownMessage, ErrUnrecognizedParam, ErrInvalidValue, ...).
// They carry the RFC 5354 cause to answer with (ParseError.OperationError)
// and whether to answer at all (ParseError.Report): an unrecognised
// parameter whose action bits are 00 is dropped silently, one with 01 is
// reported (RFC 5354 §2).
//
// Unknown parameters whose action bits say "skip" (10, 11) are kept as
// RawParam in the Unknown field of their container, with their position, so
// that a message re-encodes byte for byte. Unrecognized lists the ones
// (action 11) that must be reported with an Unrecognized Parameter cause.
// Known types are matched on all 16 bits (unlike RSPLIB, which masks the
// action bits).
//
// A final parameter that lacks its padding is accepted; nonzero padding
// bytes are ignored as RFC 5354 §2 asks.
//
// # Text and JSON
//
// Values print and marshal (encoding.TextMarshaler, json.Marshaler) the
// way people read them, with one form each across the module's logs,
// events, errors and JSON; the matching Unmarshalers read them back:
//   - PE Identifiers and ENRP Server Identifiers are "0x" and 8 hex
//     digits, 0x0000002a ([FormatID], [PEIdentifier], [ServerID]); structs
//     keep them as uint32, so convert to those types to print one.
//   - A [PoolHandle] is its text when printable UTF-8 and not starting
//     with "0x", otherwise "0x" and its bytes in hex ([ParsePoolHandle]).
//   - Parameter types, transport uses and cause codes are their names
//     ("SCTP Transport", "data only", "Unknown Pool Handle").
//   - A [Transport] prints as "sctp 192.0.2.1:7000"; in JSON its addresses
//     are strings.
//   - [PoolElement] and [ServerInfo] marshal with their Go field names,
//     identifiers in hex, and the policy by name with loads as fractions
//     ({"Type":"LeastUsed","Load":0.25}) when package policy is linked in
//     (asap and enrp link it); without it, as its type code and value in
//     hex.
package tlv
