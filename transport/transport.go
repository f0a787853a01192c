package transport

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
)

// MaxMessageSize is the largest message Send accepts and Recv returns.
// ASAP and ENRP messages carry a 16-bit length (RFC 5352 §2.2, RFC 5353
// §2.1), so 65535 bytes suffice.
const MaxMessageSize = 65535

// Payload protocol identifiers (IANA "SCTP Payload Protocol Identifiers")
// of the RSerPool protocols: every ASAP message on an association carries
// PPIDASAP (RFC 5352 §4), every ENRP message PPIDENRP (RFC 5353 §2).
// Application data between a pool user and a pool element carries the
// application's own PPID (see package asap). tlv.PPIDASAP and tlv.PPIDENRP
// are the same numbers for code that only has the codec (tlv imports no
// transport and transport no tlv); with a [Message] in hand, use these.
const (
	PPIDASAP uint32 = 11 // ASAP, RFC 5352
	PPIDENRP uint32 = 12 // ENRP, RFC 5353
)

// Well-known ports.
const (
	// PortASAP is the ASAP port (RFC 5352): registrars accept PE and PU
	// associations on it, and ASAP Server Announces use it over UDP.
	PortASAP uint16 = 3863
	// PortENRP is the ENRP port (RFC 5353): registrars talk to each other
	// on it, and ENRP Presence multicasts use it over UDP.
	PortENRP uint16 = 9901
	// PortSCTPOverUDP is the UDP port for SCTP encapsulation (RFC 6951,
	// "sctp-tunneling"), the default for a listener of Kind KindSCTPUDP.
	// Never put encapsulated SCTP on PortASAP or PortENRP over UDP: those
	// carry plain-UDP announces.
	PortSCTPOverUDP uint16 = 9899
)

// Sentinel errors, usable with errors.Is. Implementations wrap them with
// detail.
var (
	// ErrAssociationLost: the association failed (ABORT, retransmission
	// limit or path failure). Messages in flight may be lost.
	ErrAssociationLost = errors.New("transport: association lost")
	// ErrPeerClosed: the peer shut the association down gracefully, after
	// every message it sent had been delivered.
	ErrPeerClosed = errors.New("transport: peer closed the association")
	// ErrMessageTooLarge: Send was given more than the maximum message size.
	ErrMessageTooLarge = errors.New("transport: message too large")
	// ErrEmptyMessage: Send was given a message without data; SCTP cannot
	// carry one (RFC 9260 §3.3.1).
	ErrEmptyMessage = errors.New("transport: empty message")
	// ErrClosed: this side closed the Conn, Listener or Announcer.
	ErrClosed = errors.New("transport: use of closed association or listener")
)

// Kind says how an Addr is reached.
type Kind uint8

const (
	KindSCTPUDP Kind = iota // SCTP over UDP (RFC 6951); AddrPort is the UDP address
	KindSCTP                // kernel SCTP; AddrPort holds the SCTP port
	KindMem                 // memnet
)

var kindNames = [...]string{
	KindSCTPUDP: "sctp-udp",
	KindSCTP:    "sctp",
	KindMem:     "mem",
}

// String returns "sctp-udp", "sctp" or "mem" (or "kind(N)" for others).
func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Addr names a transport endpoint: an IPv4 or IPv6 address with a port,
// and the Kind that says what the port means. The zero Addr is invalid.
// Addr is comparable and implements net.Addr.
type Addr struct {
	Kind     Kind
	AddrPort netip.AddrPort
}

// IsValid reports whether a has a valid IP address and a known Kind.
func (a Addr) IsValid() bool {
	return a.AddrPort.IsValid() && int(a.Kind) < len(kindNames)
}

// Network returns the Kind's name, so that Addr implements net.Addr.
func (a Addr) Network() string { return a.Kind.String() }

// String formats a as "kind:address:port", for example
// "sctp-udp:192.0.2.1:9899", "sctp:[2001:db8::1]:3863" or "mem:10.0.0.1:1".
// ParseAddr reads it back.
func (a Addr) String() string {
	if !a.AddrPort.IsValid() {
		return a.Kind.String() + ":invalid"
	}
	return a.Kind.String() + ":" + a.AddrPort.String()
}

// ParseAddr parses the form Addr.String produces. A string without a kind
// prefix, such as "127.0.0.1:9899" or "[::1]:9899", is taken as KindSCTPUDP.
func ParseAddr(s string) (Addr, error) {
	kind := KindSCTPUDP
	rest := s
	for k, name := range kindNames {
		if p, ok := strings.CutPrefix(s, name+":"); ok {
			kind, rest = Kind(k), p
			break
		}
	}
	ap, err := netip.ParseAddrPort(rest)
	if err != nil {
		return Addr{}, fmt.Errorf("transport: parse address %q: %w", s, err)
	}
	return Addr{Kind: kind, AddrPort: ap}, nil
}

// Message is one whole message.
type Message struct {
	// PPID is the SCTP payload protocol identifier, for example PPIDASAP.
	PPID uint32
	// Stream is the SCTP stream; order is kept per stream.
	Stream uint16
	// Data is the message: 1 to MaxMessageSize bytes. Send does not keep
	// Data after it returns; a Message from Recv owns its Data.
	Data []byte
}

// Conn is one association. Send may be called concurrently with Recv; each
// of them may also be called from several goroutines at once.
type Conn interface {
	// Send queues one whole message. It fails with ErrMessageTooLarge or
	// ErrEmptyMessage (the association stays usable), with ErrClosed after
	// Close, and with ErrPeerClosed or ErrAssociationLost once the
	// association is over. It may block while the peer's receive window is
	// full, until ctx ends.
	Send(ctx context.Context, m Message) error
	// Recv returns the next message, in order per stream. After the peer
	// shut down, it returns the remaining messages and then ErrPeerClosed.
	// It returns ctx's error when ctx ends first, and ErrClosed after Close.
	Recv(ctx context.Context) (Message, error)
	// LocalAddr is this side's address.
	LocalAddr() Addr
	// RemoteAddr is the peer's address.
	RemoteAddr() Addr
	// Close shuts the association down gracefully and releases its
	// resources; blocked Send and Recv calls return ErrClosed. Closing again
	// returns nil or an error wrapping ErrClosed. Close may wait for the
	// peer (the SHUTDOWN exchange of RFC 9260 §9.2), up to a bound the
	// implementation documents; a caller that must not wait uses Abort.
	Close() error
	// Abort ends the association at once, without waiting for the peer:
	// the ABORT of RFC 9260 §9.1. Messages not yet delivered are lost,
	// the peer's Recv fails with ErrAssociationLost, blocked Send and
	// Recv calls here return ErrClosed, and the resources are released.
	// It returns nil, also after Close or a previous Abort.
	Abort() error
}

// Listener accepts associations.
type Listener interface {
	// Accept waits for the next association. It returns ErrClosed after
	// Close and ctx's error when ctx ends first.
	Accept(ctx context.Context) (Conn, error)
	// Addr is the address the listener is bound to, with the port filled
	// in when Listen was given port 0.
	Addr() Addr
	// Close stops accepting; associations already accepted stay open.
	Close() error
}

// Endpoint is a Listener that also opens associations from its own
// address: a kernel SCTP socket that both connects and listens on one port
// (RFC 6458 one-to-many style), as RSPLIB's pool elements use. A peer that
// sees an association from an Endpoint can reach the Endpoint back at that
// association's remote address, which matters wherever a protocol records
// where an association came from and later dials it: an ENRP registrar
// taking over a pool element sends it an Endpoint Keep Alive at the address
// the PE registered from (RFC 5353 §3.9, RFC 5352 §3.7).
//
// transport/sctp and transport/memnet implement it: their Listen returns
// an Endpoint, and they implement EndpointTransport.
type Endpoint interface {
	Listener
	// DialFrom opens an association to the listener at to, from the
	// Endpoint's own address: the Conn's LocalAddr is the Endpoint's
	// Addr, and the peer's RemoteAddr for it (with the IP the network
	// chose when the Endpoint is bound to an unspecified one) reaches
	// this Endpoint. It fails as
	// Transport.Dial does, and with ErrClosed after Close. Associations
	// dialled from an Endpoint outlive its Close as accepted ones do:
	// Close only stops accepting and dialling.
	DialFrom(ctx context.Context, to Addr) (Conn, error)
}

// EndpointTransport is implemented by a Transport that can open an
// Endpoint. ListenEndpoint binds as Listen does; port 0 picks a free port.
// A user that wants one address for dialling and accepting (a pool element,
// see package asap) type-asserts its Transport to it and, when the assertion
// fails, dials with Transport.Dial from an address of the network's
// choosing.
type EndpointTransport interface {
	Transport
	ListenEndpoint(at Addr) (Endpoint, error)
}

// Transport dials and listens: the associations themselves (implemented by
// transport/sctp and transport/memnet). It is not tlv.Transport, which is
// the RFC 5354 transport parameter, the wire description of an address
// that a PE advertises; package asap converts between the two
// (asap.TransportParam, asap.AddrOf).
type Transport interface {
	// Dial opens an association to the listener at to. It fails when ctx
	// ends first, and may fail earlier when nothing listens there.
	Dial(ctx context.Context, to Addr) (Conn, error)
	// Listen binds a listener at the address; port 0 picks a free port.
	Listen(at Addr) (Listener, error)
}

// KindReporter is implemented by a Transport whose addresses all have one
// Kind (memnet: KindMem; SCTP over UDP: KindSCTPUDP). Users that map RFC
// 5354 transport parameters to addresses, such as the asap pool element and
// pool user, take their Kind from it when their configuration leaves it
// zero.
type KindReporter interface {
	Kind() Kind
}

// Announcer sends datagrams to a multicast group and receives those the
// group carries: ASAP Server Announce (RFC 5352 §3.6) and ENRP Presence
// (RFC 5353 §3.2) announcements. Datagrams carry no PPID; the group and port
// say which protocol they belong to. Delivery is unreliable: datagrams may
// be lost, duplicated or reordered.
type Announcer interface {
	// Send sends one datagram to the group.
	Send(ctx context.Context, b []byte) error
	// Recv returns the next datagram received on the group and its sender.
	Recv(ctx context.Context) (b []byte, from Addr, err error)
	Close() error
}
