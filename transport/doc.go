// Package transport defines the small, message-oriented transport that the
// ASAP (RFC 5352) and ENRP (RFC 5353) drivers use. It has the semantics of
// SCTP (RFC 9260): a [Transport] dials and listens for associations; a
// [Conn] is one association that carries whole messages ([Message]), each
// with a payload protocol identifier (PPID: [PPIDASAP] = 11, [PPIDENRP] =
// 12) and a stream number. Delivery on an association is reliable and in
// order per stream; messages on different streams may overtake each other.
// Message boundaries are preserved.
//
// Package transport holds only the interfaces, the address type and the
// errors. The implementations live in subpackages:
//
//   - transport/sctp: SCTP in user space (github.com/pion/sctp) carried over
//     UDP as in RFC 6951.
//   - transport/memnet: an in-memory network with a seeded random source,
//     loss, delay, reordering, partitions and step-by-step delivery, for
//     deterministic tests of many nodes.
//   - transport/multicast: UDP multicast [Announcer]s for ASAP Server
//     Announce (RFC 5352 §3.6) and ENRP Presence (RFC 5353 §3.2).
//
// Every implementation passes the conformance suite in
// transport/transporttest.
//
// # Messages
//
// Send accepts messages of 1 to [MaxMessageSize] bytes. A larger message
// fails with [ErrMessageTooLarge] and an empty one with [ErrEmptyMessage]
// (SCTP cannot carry a user message without data, RFC 9260 §3.3.1); in both
// cases the association stays usable. Send returns once the message is
// queued; it does not wait for the peer to receive it.
//
// # Errors
//
// Every error a Conn or Listener returns for a terminal condition wraps one
// of the sentinels, so callers test with errors.Is:
//
//   - [ErrClosed]: this side closed the Conn or Listener.
//   - [ErrPeerClosed]: the peer shut the association down gracefully; every
//     message it sent before that was delivered first.
//   - [ErrAssociationLost]: the association failed (ABORT, retransmission
//     limit, path failure); messages in flight may be lost.
//   - [ErrMessageTooLarge], [ErrEmptyMessage]: the message was not sent.
//
// Methods that take a context return the context's error (wrapped or not)
// when it ends first.
//
// # Addresses
//
// [Addr] is a [Kind] plus an IPv4 or IPv6 address and port. The Kind says
// how the port is to be used:
//
//   - [KindSCTPUDP]: SCTP in user space, encapsulated in UDP (RFC 6951). The
//     port is the UDP port of the listener's socket (default
//     [PortSCTPOverUDP], 9899).
//   - [KindSCTP]: kernel SCTP; the port is the SCTP port. This package has no
//     kernel SCTP implementation, but such addresses can be named, parsed and
//     advertised.
//   - [KindMem]: a memnet address.
//
// Advertising a listener (RFC 5354 §3.4). RFC 5354 has no field for the UDP
// port that carries encapsulated SCTP. A pool element that listens with
// KindSCTPUDP on UDP port P advertises an SCTP Transport parameter whose
// Port field is P, and its user-space listener accepts any SCTP port pair
// in the encapsulated packets. This convention, "the SCTP port equals the
// UDP encapsulation port", makes the one number work both ways: our pool
// users dial SCTP-over-UDP to UDP port P, and a kernel SCTP peer using
// RFC 6951 encapsulation (Linux 5.11+, net.sctp.udp_port set) reaches the
// listener when it uses SCTP destination port P with remote encapsulation
// port P. A plain kernel-SCTP endpoint (KindSCTP) advertises the same
// parameter with its SCTP port. The parameter therefore does not say which
// of the two kinds it names; the receiving side (package asap) chooses the
// Kind from its configuration, SCTP over UDP by default.
//
// Package transport imports none of the codec packages (tlv, policy,
// handlespace); the mapping between Addr and the RFC 5354 transport
// parameters lives in package asap.
package transport
