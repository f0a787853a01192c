package asap

import (
	"fmt"
	"net/netip"

	"github.com/go-rserpool/rserpool/tlv"
	"github.com/go-rserpool/rserpool/transport"
)

// Mapping between transport.Addr and the RFC 5354 transport parameters.
//
// ASAP names endpoints with transport parameters (RFC 5354 §3.3–3.7): a
// protocol, a port and one or more addresses. The transport package names
// them with a transport.Addr: a Kind (kernel SCTP, SCTP over UDP, memnet)
// and one address and port. The two meet here:
//
//   - A transport.Addr of any Kind becomes an SCTP Transport parameter
//     (0x0004) with its port and its one address. Which SCTP carries it
//     (kernel SCTP, SCTP over UDP per RFC 6951, or the in-memory network) is
//     not on the wire: it is local configuration, and every endpoint of a
//     deployment must agree on it (the Kind fields of PEConfig/PUConfig).
//   - An SCTP, TCP, UDP, UDP-Lite or DCCP Transport parameter becomes a
//     transport.Addr of the configured Kind with its port and its first
//     address. Only SCTP can be dialled by a transport.Transport; the others
//     are returned for the host to use but Dial refuses them.
//
// IPv4-mapped IPv6 addresses are unmapped both ways.

// TransportParam returns the SCTP Transport parameter naming a, with the
// given transport use (RFC 5354 §3.4).
func TransportParam(a transport.Addr, use tlv.TransportUse) (tlv.Transport, error) {
	if !a.AddrPort.IsValid() {
		return tlv.Transport{}, fmt.Errorf("%w: address %v is not valid", ErrInvalidConfig, a.AddrPort)
	}
	return tlv.Transport{
		Type:  tlv.ParamSCTPTransport,
		Port:  a.AddrPort.Port(),
		Use:   use,
		Addrs: []netip.Addr{a.AddrPort.Addr().Unmap()},
	}, nil
}

// AddrOf returns the transport.Addr of kind k that a transport parameter
// names: its first address and its port. It fails when the parameter has
// no address or port.
func AddrOf(t tlv.Transport, k transport.Kind) (transport.Addr, error) {
	if t.Type == 0 || len(t.Addrs) == 0 {
		return transport.Addr{}, fmt.Errorf("asap: transport parameter %v has no address", t.Type)
	}
	a := t.Addrs[0].Unmap()
	if !a.IsValid() || t.Port == 0 {
		return transport.Addr{}, fmt.Errorf("asap: transport parameter %v has no usable address or port", t.Type)
	}
	return transport.Addr{Kind: k, AddrPort: netip.AddrPortFrom(a, t.Port)}, nil
}

// dialable reports whether a transport parameter is one a
// transport.Transport can dial (SCTP).
func dialable(t tlv.Transport) bool { return t.Type == tlv.ParamSCTPTransport }
