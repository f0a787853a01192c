// Package sctp implements [transport.Transport] with SCTP (RFC 9260) in user
// space, github.com/pion/sctp, carried over UDP as RFC 6951 encapsulates
// SCTP. It needs no kernel SCTP support.
//
// # Usage
//
//	tr := sctp.New(sctp.Config{}) // the zero Config works
//	l, err := tr.Listen(transport.Addr{Kind: transport.KindSCTPUDP,
//		AddrPort: netip.MustParseAddrPort("0.0.0.0:9899")})
//	...
//	c, err := l.Accept(ctx)   // or tr.Dial(ctx, addr)
//	m, err := c.Recv(ctx)     // whole messages with PPID and stream
//	err = c.Send(ctx, transport.Message{PPID: transport.PPIDASAP, Data: b})
//	err = c.Close()           // graceful SHUTDOWN, ABORT after ShutdownTimeout
//
// ASAP (PPID 11) and ENRP (PPID 12) can share one listener: every message
// carries its PPID, so the receiver routes by it.
//
// # Listener and demultiplexing
//
// A [Listener] owns one UDP socket for all of its peers. Each datagram is
// an SCTP packet; the listener hands it to an association chosen by the
// peer's UDP address and the SCTP port pair of the common header
// (RFC 6951 §5.4), and gives each association a net.Conn of its own for
// pion to read and write. A datagram that starts with an INIT and matches
// no association starts a new one, for any SCTP port pair. Other packets
// that match none are answered as RFC 9260 §8.4 says (SHUTDOWN COMPLETE to
// SHUTDOWN ACK, ABORT to most others, both with the T bit). Associations
// already accepted outlive [Listener.Close]; the socket closes with the last
// of them. The listener takes the datagrams waiting on its socket up to 32
// at a time (recvmmsg(2) where the system has it), and drops datagrams of
// more than 8 KiB, which pion's receive buffer cannot hold.
//
// pion sends every SACK in a packet of its own, so a request/response
// exchange cost three datagrams per round trip. Every association's wire
// (plain or DTLS) holds the SACK pion sends after DATA of its own for at
// most [Config.SACKHold] (1 ms) and puts it in front of the next DATA
// chunk it sends, as RFC 9260 §6.10 allows: the answer carries the SACK of
// the request, and the next request the SACK of the answer. A SACK that
// reports a gap or duplicate, a small window, or answers the I bit is not
// held.
//
// A dialed association has a connected UDP socket of its own, so its
// local address accepts nothing. [Listener.DialFrom] dials from the
// listener's socket instead ([transport.Endpoint]): the peer sees the
// association come from the listener's address and can open associations
// back to it there, as to a kernel SCTP socket that both connects and
// listens. Such an association has an ephemeral SCTP source port of its
// own, translated to and from pion's port 5000 on the wire, so that the
// SCTP port pair tells it apart from the socket's other associations with
// the same peer.
//
// # Ports
//
// pion/sctp dials from SCTP port 5000 to SCTP port 5000; as a server it
// adopts whatever ports the peer's INIT carries. The listener accepts any
// SCTP port pair, so the SCTP ports carry no meaning between two users of
// this package: the UDP port names the endpoint.
//
// UDP port 9899 ([DefaultPort], RFC 6951's "sctp-tunneling") is the natural
// port for a registrar's listener. UDP 3863 and 9901 carry plain-UDP ASAP
// Server Announces and ENRP Presence multicasts; Listen and Dial refuse
// them ([ErrReservedPort]).
//
// # Advertising an endpoint (RFC 5354 §3.4)
//
// RFC 5354's SCTP Transport parameter has an SCTP port and no field for a
// UDP encapsulation port. Following the convention of package transport, a
// pool element whose listener is bound to UDP port P advertises an SCTP
// Transport parameter with Port = P. Our pool users dial UDP port P. A
// kernel SCTP peer using RFC 6951 (Linux 5.11+: net.sctp.udp_port set, and
// net.sctp.encap_port or the SCTP_REMOTE_UDP_ENCAPS_PORT socket option
// giving the remote UDP port) sends to UDP port encap_port with SCTP
// destination port P. It therefore reaches our listener when P equals its
// encapsulation port: listen on 9899, advertise 9899, and a kernel whose
// encap_port is 9899 gets through. A listener on another UDP port is
// reachable only by kernel peers configured for that port.
//
// In the other direction, Dial accepts a [transport.KindSCTP] address (a
// kernel SCTP endpoint): it sends to UDP port [Config.KernelEncapsulationPort]
// (default 9899, the kernel's net.sctp.udp_port) of that host and rewrites
// the SCTP ports of pion's packets from 5000/5000 to a source port of the
// association's own and the address's port, and those of the answers back
// to 5000/5000, recomputing the CRC32c each time; packets with a bad CRC32c
// or another port pair are dropped before the rewrite. The source port is
// picked at random from the ephemeral range (49152-65535) among those no
// live association of the Transport to that host uses: a kernel tells
// associations apart by their SCTP ports only, and aborts a second one
// from the same ports as a restart with a new encapsulation port (RFC 6951
// §5.5, error cause 14).
//
// # Linux kernel peers
//
// A Linux kernel's INIT always carries a Supported Address Types parameter
// (0x000c) and may carry IPv4 and IPv6 Address parameters (5, 6). pion/sctp
// v1.12.1 does not know them, and their type bits (00) tell it to discard
// the whole packet. The listener therefore passes every INIT through
// [RewriteInit], which removes those parameters (and Host Name Address, 11)
// and recomputes the CRC32c. pion/sctp is single-homed and answers the
// address the INIT came from, as RFC 9260 §5.1.2 allows. The zero-checksum
// extension (RFC 9653) stays off: a Linux kernel rejects a zero CRC32c.
//
// # Closing
//
// pion's Association.Close sends neither SHUTDOWN nor ABORT, which would
// leave a kernel peer with a half-dead association. [Conn.Close] and
// [Conn.Shutdown] run the SHUTDOWN exchange (RFC 9260 §9.2) and fall back
// to ABORT (§9.1) when it does not finish in time. SHUTDOWN goes out only
// once all DATA sent is acknowledged, and the peer may delay that SACK by
// 200 ms (§6.2); so Close sends the last DATA packet again with the I bit
// set (§3.3.1, RFC 7053), and sets it on DATA still queued, to have it
// acknowledged at once: closing costs a round trip or two, not the peer's
// delayed-ack timer. The peer's Recv then
// returns [transport.ErrPeerClosed] (after SHUTDOWN) or
// [transport.ErrAssociationLost] (after ABORT), once every message that
// arrived before has been returned. Close returns after the association's
// goroutines have stopped.
//
// # Path supervision
//
// pion/sctp sends no HEARTBEAT on an idle association and retransmits DATA
// without limit, so on its own a peer that vanishes silently (its host
// killed or cut off) is never noticed. Every [Conn] therefore supervises
// its path as RFC 9260 §8.1-8.3 says: after HB.interval + RTO without a
// packet from the peer it sends a HEARTBEAT, backs the RTO off after each
// unanswered one, and fails the association when the error counter
// exceeds Path.Max.Retrans (or Association.Max.Retrans): it sends an
// ABORT, releases the association, and Recv and Send fail with
// [transport.ErrAssociationLost] saying the peer stopped answering. A
// restarted peer answers the HEARTBEAT with an ABORT (the out-of-the-blue
// rule, RFC 9260 §8.4), a host without a listener with an ICMP error; both
// end the association at once. [Config.Supervision] holds the parameters:
// RFC 9260 §16's defaults detect a silent peer 275 s after its last
// packet (306.5 s at most), [LANSupervision] in 7.4 s (8.6 s at most), and
// a negative HeartbeatInterval turns supervision off. It costs one
// time.Timer per association.
//
// # Limits
//
// The "Limits" fields of [Config] bound what peers can make a listener and
// an association hold; each has a default and can be turned off:
//
//   - associations per listener ([Config.MaxAssociations], 4096) and per
//     peer IP address ([Config.MaxAssociationsPerAddr], 256), counting
//     those in their handshake, waiting for Accept and accepted until they
//     end. An INIT beyond either is answered with an ABORT carrying the
//     "Out of Resource" error cause (RFC 9260 §3.3.10.4); Dial on our side
//     then fails at once with [ErrOutOfResource].
//   - handshakes in progress per peer IP address
//     ([Config.MaxHandshakesPerAddr], 32, once the backlog is half full):
//     INITs beyond it are dropped.
//     When [Config.Backlog] is full, a new INIT evicts the oldest
//     handshake without a COOKIE ECHO from the address with the most
//     handshakes; a handshake without COOKIE ECHO ends after
//     [Config.CookieEchoTimeout] (4 s). An INIT flood from one address
//     thus cannot lock other peers out.
//   - inbound streams per association ([Config.MaxStreams], 16): advertised
//     in the INIT and INIT ACK we send; a peer that uses more gets the
//     association aborted ([ErrTooManyStreams]) and no goroutine for them.
//   - received data per association: pion's receive window
//     ([Config.ReceiveWindow], 256 KiB) and the messages held for Recv
//     ([Config.RecvQueueBytes], 256 KiB). A peer sending into a Conn that
//     is not read costs at most their sum plus one message per stream.
//
// # Security: SCTP over DTLS (RFC 8261)
//
// Give the [Config] a [DTLSConfig] and every association of the Transport
// runs inside a DTLS 1.2 connection (github.com/pion/dtls/v3) on its UDP
// 5-tuple: SCTP over DTLS over UDP, as RFC 8261 specifies and WebRTC data
// channels use. By default both ends authenticate with X.509 certificates
// (RFC 5355 §4 asks for mutual authentication of every ASAP and ENRP
// association):
//
//	sec := &sctp.DTLSConfig{
//		Certificates: []tls.Certificate{cert}, // this host's chain and key
//		RootCAs:      pool,                    // the CA of the pool's operator
//	}
//	tr := sctp.New(sctp.Config{DTLS: sec}) // registrar, PE and PU alike
//	// tr.Listen and tr.Dial as above; then, on either end:
//	id, ok := transport.PeerIdentityOf(c) // the peer's verified certificate
//
// RootCAs is required: a DTLSConfig without it is refused
// ([ErrNoRootCAs]) unless [DTLSConfig.SystemRoots] asks for the host's
// root CAs, which would let any publicly trusted certificate into a
// private pool.
//
// Both ends must be configured alike: a DTLS end and a plain one cannot
// talk. The address Kind stays [transport.KindSCTPUDP] and the RFC 5354
// transport parameter stays SCTP: what is on the wire is a deployment's
// choice, not something an advertised address can say. Kernel SCTP peers
// ([transport.KindSCTP]) do not speak DTLS; Dial refuses them.
//
// What DTLS protects: the ASAP and ENRP associations, which are
// authenticated (a listener and its dialler verify each other's chain
// against RootCAs and ClientCAs, and [DTLSConfig.VerifyPeer] may refuse a
// verified peer), encrypted, integrity-protected (a record changed in
// flight is dropped, SCTP retransmits it) and replay-protected (a record
// seen before is dropped, RFC 6347 §4.1.2.6). [Conn.PeerIdentity]
// ([transport.PeerIdentifier]) hands the verified chain and a name (the
// leaf's first DNS SAN, else its common name) to the authorization above:
// which PE may register in which pool, which PU may resolve it, which
// registrar may peer, which registrar a PE or PU uses.
//
// What it does not protect: the UDP multicast announces, ASAP Server
// Announce and ENRP Presence (RFC 5352 §3.6, RFC 5353 §3.2); RFC 5352 and
// RFC 5353 give no way to authenticate them, and they stay plain UDP. With
// DTLS on, an announce only tells a PE or PU where to dial: it still talks
// to a registrar only once that registrar's certificate verifies. A
// certificate that verifies is not yet a registrar's, though: the pool's
// CA signs every PE's certificate too, and a PE or PU dials registrars and
// PEs over one Transport, so ServerName cannot pin the registrar's name.
// The asap package's PEConfig.AuthorizeRegistrar and
// PUConfig.AuthorizeRegistrar (asap.RegistrarNames) check the registrar's
// verified name on every association with it; with DTLS and
// AuthorizeRegistrar, a spoofed announce costs a failed handshake or a
// refused association. It can still waste those handshakes or hide the
// genuine registrars behind bogus ones; on a hostile network, give PEs and
// PUs a static list of registrars and turn announces off. Nor does DTLS
// hide who talks to whom, or when.
//
// Handshakes: a misconfigured certificate (no private key, a key that does
// not match, outside its validity period) makes Listen and Dial fail with
// [ErrDTLSConfig] ([Config.Validate] checks it early). A refused handshake
// fails Dial with a [*HandshakeError] that says who refused and why: the
// peer with its alert, or this side with the verification error. A
// listener's failed handshakes go to [DTLSConfig.OnHandshakeFailure]. The
// DTLS handshake is bounded by [DTLSConfig.HandshakeTimeout] (10 s), the
// SCTP handshake inside it by [Config.HandshakeTimeout] as before.
//
// A DTLS listener demultiplexes by UDP address and DTLS connection ID and
// opens an association only for a ClientHello; other datagrams from
// unknown sources are dropped unanswered. Its limits are those of plain SCTP, with the
// ClientHello in the INIT's place. A ClientHello beyond
// [Config.MaxAssociations] or [Config.MaxAssociationsPerAddr] is answered
// with a fatal internal_error alert, so that the peer's Dial fails at
// once. pion/dtls answers the first ClientHello
// with a HelloVerifyRequest cookie (RFC 6347 §4.2.1), a handshake whose
// peer has not echoed it is the one a full backlog evicts and is dropped
// after [Config.CookieEchoTimeout], and a source that cannot receive at its
// address (a spoofed one) never gets further: it holds evictable slots for
// seconds, never a verified handshake or an association.
//
// One association per DTLS connection, and several per UDP 5-tuple: a
// DTLS listener gives each DTLS connection on its socket a connection ID
// (RFC 9146, 4 bytes) that the peer puts in its records, so that an
// Endpoint can DialFrom a peer it has associations with already, and two
// registrars can each dial the other from their ENRP endpoints. The
// records of a handshake in progress carry none yet; so one handshake at
// a time per 5-tuple, and a DialFrom while one runs with that peer fails
// with [ErrPortPairInUse]. A peer whose DTLS does not do connection IDs
// gets one association per 5-tuple. Two endpoints that DialFrom each
// other at the same moment would be two DTLS clients in one handshake:
// the one with the higher UDP port (with equal ports, the higher IP
// address) gives its dial up, which fails with [ErrPortPairInUse], and
// accepts the other's. [Listener.DialFromPort] is refused: the SCTP ports
// inside DTLS are pion's 5000 on both ends.
//
// Costs, measured on loopback (BenchmarkHandshake, BenchmarkRoundTrip,
// BenchmarkAssociationMemory): with ECDSA P-256 certificates, opening an
// association takes about an order of magnitude longer than plain SCTP
// (the DTLS handshake's extra round trip and its signatures and ECDHE on
// both ends; still milliseconds), a round trip about 1.4 to 1.7 times as
// long (AES-GCM on every packet), and an association holds about 85 KB of
// heap for both ends instead of about 48 KB. Plain SCTP is unchanged.
//
// # Limitations
//
//   - One address per association: pion/sctp does not do multi-homing.
//   - Path supervision sees packets, not pion's timers: any packet with the
//     association's verification tag proves the peer alive (see
//     [Supervision] for what is counted).
//   - An association's handshake state is kept from the INIT on (pion does
//     not use stateless cookies); [Config.Backlog] and
//     [Config.HandshakeTimeout] bound what INIT floods can cost. Likewise
//     pion/dtls keeps a handshake's state from the first ClientHello, its
//     HelloVerifyRequest cookie notwithstanding; the same limits bound it.
//   - Over DTLS: one handshake at a time per UDP 5-tuple (see above), and
//     no kernel SCTP peers.
//   - A message of more than [transport.MaxMessageSize] bytes from the peer
//     aborts the association; Recv reports [transport.ErrMessageTooLarge].
package sctp
