// Package transport defines the message-oriented transport that the ASAP and
// ENRP drivers use, with SCTP semantics: associations, whole messages with a
// payload protocol identifier (PPID) and a stream number.
package transport

import (
	"context"
	"errors"
	"net/netip"
)

// MaxMessageSize is the largest message Send accepts and Recv returns.
// ASAP and ENRP messages carry a 16-bit length, so 65535 bytes suffice.
const MaxMessageSize = 65535

// Sentinel errors, usable with errors.Is.
var (
	ErrAssociationLost = errors.New("transport: association lost")
	ErrPeerClosed      = errors.New("transport: peer closed the association")
	ErrMessageTooLarge = errors.New("transport: message too large")
	ErrClosed          = errors.New("transport: use of closed association or listener")
)

// Kind says how an Addr is reached.
type Kind uint8

const (
	KindSCTPUDP Kind = iota // SCTP over UDP (RFC 6951); AddrPort is the UDP address
	KindSCTP                // kernel SCTP; AddrPort holds the SCTP port
	KindMem                 // memnet
)

// Addr names a transport endpoint.
type Addr struct {
	Kind     Kind
	AddrPort netip.AddrPort
}

// Message is one whole message.
type Message struct {
	PPID   uint32
	Stream uint16
	Data   []byte
}

// Conn is one association.
type Conn interface {
	Send(ctx context.Context, m Message) error
	Recv(ctx context.Context) (Message, error)
	LocalAddr() Addr
	RemoteAddr() Addr
	Close() error
}

// Listener accepts associations.
type Listener interface {
	Accept(ctx context.Context) (Conn, error)
	Addr() Addr
	Close() error
}

// Transport dials and listens.
type Transport interface {
	Dial(ctx context.Context, to Addr) (Conn, error)
	Listen(at Addr) (Listener, error)
}

// Announcer sends datagrams to a multicast group and receives those the
// group carries: ASAP Server Announce (RFC 5352 §3.6) and ENRP Presence
// (RFC 5353 §3.2) announcements. Datagrams carry no PPID; the group and port
// say which protocol they belong to.
type Announcer interface {
	// Send sends one datagram to the group.
	Send(ctx context.Context, b []byte) error
	// Recv returns the next datagram received on the group and its sender.
	Recv(ctx context.Context) (b []byte, from Addr, err error)
	Close() error
}
