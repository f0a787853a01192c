// Package multicast sends and receives RSerPool announcements over UDP
// multicast: ASAP_SERVER_ANNOUNCE (RFC 5352 §2.2.10, §3.6), which a registrar
// sends so that pool elements and pool users can find a home registrar, and
// ENRP_PRESENCE (RFC 5353 §2.1), which registrars multicast to find peers.
//
// An [Announcer] implements [transport.Announcer]. It owns one UDP socket
// on the group's port, joined to the group on exactly one network
// interface, and sends to the group from the same socket. Datagrams carry no
// PPID: the group and port say which protocol a datagram belongs to. The
// socket is bound to the wildcard address (Go binds multicast listeners that
// way), so Recv checks the destination address of each datagram and drops
// unicast datagrams to the port and datagrams of other groups.
//
// # Groups and ports
//
// The UDP ports are the ports of the protocols: 3863 for ASAP and 9901 for
// ENRP ([transport.PortASAP], [transport.PortENRP]). IANA assigns no
// multicast group to ASAP or ENRP; the defaults here are RSPLIB 3.4.4's
// defaults, 239.0.0.50 for ASAP announces and 239.0.0.51 for ENRP presence
// (IPv4 administratively scoped, RFC 2365). They are only defaults:
// [Config.Group] takes any IPv4 or IPv6 multicast group and port, so an
// operator can pick a group of their scope (for example ff05::/16
// site-local or ff02::/16 link-local groups for IPv6).
//
// The sender address Recv reports is the datagram's IP source and UDP
// source port. An Announcer sends from the group's port, so a registrar's
// announce arrives from its address and port 3863; RFC 5352 §2.2.10 lets a
// receiver reach the registrar's ASAP endpoint at that address when the
// announce carries no transport parameters. On Linux, IPv4 datagrams leave
// from the interface's first IPv4 address (127.0.0.1 on lo).
//
// # Loopback
//
// Tests and examples of this module join and send on the loopback interface
// only, with IPv4 groups. On Linux, IPv4 multicast works on lo whether or
// not lo has the MULTICAST flag. IPv6 multicast does not work on lo: Listen
// joins the group, but Send fails with "network is unreachable"
// (syscall.ENETUNREACH) because Linux installs no IPv6 multicast route on
// lo, and with the MULTICAST flag set and an ff00::/8 route added by hand
// the datagrams are still not delivered. IPv6 groups therefore need a real
// interface; the IPv6 tests of this package skip on lo and say why.
//
// # Usage
//
// The interface is always chosen explicitly; nothing falls back to "the
// default interface":
//
//	lo, err := multicast.LoopbackInterface()
//	if err != nil { ... }
//	a, err := multicast.Listen(ctx, multicast.Config{
//		Group:     multicast.DefaultASAPGroup,
//		Interface: lo,
//		TTL:       1,
//		Loopback:  true,
//	})
//	if err != nil { ... }
//	defer a.Close()
//	err = a.Send(ctx, announce)       // to the group
//	b, from, err := a.Recv(ctx)        // the next datagram on the group
//
// An Announcer receives every datagram sent to its group and port on its
// interface, including, when [Config.Loopback] is set, the ones it sends
// itself. Callers tell their own announcements apart by content (ENRP
// ignores a Presence carrying its own Server ID, and an ASAP endpoint
// treats its own registrar's announce as harmless).
//
// Several Announcers on one host may share a group and port: the socket is
// opened with SO_REUSEADDR, and each of them receives every datagram.
//
// # Limits
//
// [Announcer.Send] refuses datagrams larger than [MaxDatagramSize] (65507
// bytes, the largest UDP payload over IPv4; the same limit applies to IPv6
// so both families behave alike) with an error matching
// [transport.ErrMessageTooLarge]. ASAP_SERVER_ANNOUNCE and ENRP_PRESENCE
// messages are a few dozen to a few hundred bytes; anything larger than the
// path MTU is fragmented by IP, and a lost fragment loses the datagram.
// [Announcer.Recv] never truncates: its buffer holds the largest UDP payload
// either family can carry.
//
// Multicast is unreliable. An announcement that is lost is simply replaced
// by the next one (RSPLIB sends one a second).
//
// # Goroutines
//
// An Announcer starts no goroutine of its own. Recv waits in the socket
// read; cancelling its context sets a read deadline in the past (through
// [context.AfterFunc]) and Close closes the socket, and either unblocks it.
// Only one Recv reads at a time; concurrent callers queue and can leave the
// queue when their context ends.
package multicast
