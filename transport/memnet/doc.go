// Package memnet is an in-memory network for deterministic tests of
// RSerPool nodes: registrars, pool elements and pool users that talk ASAP
// (RFC 5352) and ENRP (RFC 5353) without sockets or sleeps. Host programs
// use it to unit-test their own pool elements.
//
// # Usage
//
//	net := memnet.New(seed)                // or memnet.New(seed, memnet.StepMode())
//	defer net.Close()
//	reg, pe := net.NewNode(), net.NewNode() // 10.0.0.1, 10.0.0.2, ...
//	l, _ := reg.Listen(reg.Addr(transport.PortASAP))
//	c, _ := pe.Dial(ctx, l.Addr())
//	ann, _ := net.JoinGroup(pe, netip.MustParseAddrPort("239.0.0.50:3863"))
//
// Each [Node] is a [transport.Transport] with addresses of Kind
// transport.KindMem; [Network.JoinGroup] gives a [transport.Announcer] for
// a multicast group.
//
// # Semantics
//
// Associations behave like SCTP (RFC 9260): delivery is reliable and in
// order per stream, messages on different streams may overtake each other,
// message boundaries, PPID and stream are kept, and Send copies the data.
// There is no flow control: Send never blocks. Close is a graceful
// shutdown: the peer receives every message sent before it, then
// ErrPeerClosed. The handshake takes no network time; see [Node.Dial].
//
// Links ([Link], set per direction with [Network.SetLink] or for all with
// [WithLink]) have loss, delay and jitter, drawn from a random source
// seeded by New. Loss means different things on the two kinds of traffic:
//
//   - Announce datagrams are unreliable: a lost one is gone, jitter
//     reorders them.
//   - Association messages are retransmitted, as SCTP does: a loss adds the
//     RTO ([WithRTO], doubling per further loss) to the message's delay, and
//     later messages on the same stream wait for it. When the retransmission
//     delay reaches the association timeout ([WithAssociationTimeout]) the
//     association fails and both ends get ErrAssociationLost.
//
// [Network.Partition] cuts the links between two groups of nodes until
// [Network.Heal]. Announces across the cut are dropped. Association
// messages are held; after Heal they arrive one RTO late, in order. If the
// partition lasts the association timeout, every association across it
// fails with ErrAssociationLost on both ends, as SCTP path failure
// detection would do.
//
// # Identities
//
// [Node.SetIdentity] attaches a test identity (a [transport.Identity],
// with or without certificates) to a node, in place of the certificate a
// secured transport would verify (RFC 5355 §4). Every association the node
// opens or accepts afterwards presents it: the Conn at the other end
// implements [transport.PeerIdentifier] and reports it, so the
// authorization hooks above the transport can be tested without DTLS.
// A node without an identity is unauthenticated: its peers'
// PeerIdentity returns false.
//
// # Time and determinism
//
// By default the network delivers by itself: at once on perfect links, and
// with real-time timers (time.AfterFunc) when links have delay. Inside a
// testing/synctest bubble the real clock is virtual, so delays and
// timeouts cost no wall time; create the Network inside the bubble.
//
// In step mode ([StepMode]) nothing is delivered until the test calls
// [Network.Step], [Network.StepAll] or [Network.Advance]; time is virtual
// and moves only to the time of the event delivered. The random source is
// drawn only under the network's lock in the order of the calls, so a test
// that makes the same calls from one goroutine with the same seed gets the
// same delivery trace ([WithTrace]), message by message.
package memnet
