package sctp

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"

	"github.com/pion/transport/v5/deadline"

	pionsctp "github.com/pion/sctp"

	"github.com/go-rserpool/rserpool/transport"
)

// ErrListenerFull is returned, wrapped together with
// [transport.ErrAssociationLost], by [Listener.DialFrom] when the listener
// holds [Config.MaxAssociations] associations already.
var ErrListenerFull = errors.New("sctp: listener at MaxAssociations")

// ErrPortPairInUse is returned, wrapped, by [Listener.DialFromPort] when
// the socket already carries an association (accepted or dialled) with
// that peer on exactly the SCTP port pair asked for. An SCTP association
// is named by its endpoints' addresses and ports (RFC 9260 §1.4), so that
// association is the one a new dial would open: use it instead. A peer's
// INIT crossing ours on the same pair is the INIT collision of RFC 9260
// §5.2, which pion's association handles.
var ErrPortPairInUse = errors.New("sctp: an association with this peer on this SCTP port pair exists already")

var (
	_ transport.Endpoint          = (*Listener)(nil)
	_ transport.EndpointTransport = (*Transport)(nil)
)

// ListenEndpoint is Listen, typed as a [transport.Endpoint]: the listener
// can dial from its socket too ([Listener.DialFrom]). Since it dials, an
// unspecified IP address in at is replaced by [Config.LocalAddr] when that
// is set and of the same IP family, so that its associations come from
// the address Dial would send from.
func (t *Transport) ListenEndpoint(at transport.Addr) (transport.Endpoint, error) {
	if ip, local := at.AddrPort.Addr(), t.cfg.LocalAddr; ip.IsUnspecified() && local.IsValid() && local.Unmap().Is4() == ip.Unmap().Is4() {
		at.AddrPort = netip.AddrPortFrom(local, at.AddrPort.Port())
	}
	l, err := t.Listen(at)
	if err != nil {
		return nil, err
	}
	return l.(*Listener), nil
}

// DialFrom opens an association to the listener at to from the listener's
// own UDP socket, so that the peer sees it come from [Listener.Addr] and
// can dial back there ([transport.Endpoint]). to names a UDP address
// ([transport.KindSCTPUDP]) or a kernel SCTP endpoint ([transport.KindSCTP],
// reached over UDP port [Config.KernelEncapsulationPort]) of the socket's
// IP family; others fail with [ErrUnsupportedAddr].
//
// The association gets an SCTP source port of its own, picked at random
// from the ephemeral range (RFC 6335 §6, RFC 6056 §3.3.1) among the ports
// not used towards that peer on this socket, so that several associations
// to one peer (a registrar dialled again while the previous association
// ends) are told apart by the SCTP port pair as the listener demultiplexes
// (RFC 6951 §5.4); pion's fixed port 5000 is translated on the wire. The
// association counts towards [Config.MaxAssociations] (beyond it DialFrom
// fails with [ErrListenerFull]) but not towards the per-address limits,
// which bound what peers open. DialFrom fails when ctx ends before the
// handshake completes, with [ErrOutOfResource] when the peer refuses the
// association for lack of resources, and with [transport.ErrClosed] after
// [Listener.Close]. Like accepted associations, dialled ones outlive
// Close, and the socket closes with the last of them.
func (l *Listener) DialFrom(ctx context.Context, to transport.Addr) (transport.Conn, error) {
	return l.dialFrom(ctx, to, 0)
}

// DialFromPort is [Listener.DialFrom] with the SCTP source port fixed to
// localPort (1 to 65535) instead of an ephemeral one, for a kernel SCTP
// peer ([transport.KindSCTP]) that requires associations to come from the
// port it reaches us at: RSPLIB 3.4.4's rspregistrar drops an ENRP
// Presence whose Server Information port is not the association's (RFC
// 5353 §2.2.1), and its own registrars dial from their ENRP port. It fails
// with [ErrPortPairInUse] when an association with to on that port pair
// is on the socket already, and otherwise as DialFrom does.
func (l *Listener) DialFromPort(ctx context.Context, to transport.Addr, localPort uint16) (transport.Conn, error) {
	if localPort == 0 {
		return nil, fmt.Errorf("%w: SCTP source port 0", ErrUnsupportedAddr)
	}
	if l.sec != nil {
		return nil, fmt.Errorf("%w: no SCTP port pairs over DTLS (one association per DTLS connection, RFC 8261)", ErrUnsupportedAddr)
	}
	return l.dialFrom(ctx, to, localPort)
}

// dialFrom dials to from the socket, from SCTP port localPort, or an
// ephemeral one when localPort is 0.
func (l *Listener) dialFrom(ctx context.Context, to transport.Addr, localPort uint16) (transport.Conn, error) {
	if !to.AddrPort.IsValid() || to.AddrPort.Port() == 0 {
		return nil, fmt.Errorf("%w: %v", ErrUnsupportedAddr, to.AddrPort)
	}
	udpTo := netip.AddrPortFrom(to.AddrPort.Addr().Unmap(), to.AddrPort.Port())
	peerPort := uint16(pionPort)
	switch to.Kind {
	case transport.KindSCTPUDP:
	case transport.KindSCTP:
		if l.sec != nil {
			return nil, fmt.Errorf("%w: %v: kernel SCTP does not run over DTLS", ErrUnsupportedAddr, to)
		}
		udpTo = netip.AddrPortFrom(udpTo.Addr(), l.cfg.KernelEncapsulationPort)
		peerPort = to.AddrPort.Port()
	default:
		return nil, fmt.Errorf("%w: kind %d", ErrUnsupportedAddr, to.Kind)
	}
	if err := checkPort(udpTo.Port()); err != nil {
		return nil, err
	}
	if l.addr.AddrPort.Addr().Unmap().Is4() != udpTo.Addr().Is4() {
		return nil, fmt.Errorf("%w: %v from a socket bound to %v", ErrUnsupportedAddr, udpTo, l.addr.AddrPort)
	}
	p, err := l.newOutbound(udpTo, peerPort, localPort)
	if err != nil {
		return nil, err
	}
	if l.sec != nil {
		return l.dialFromDTLS(ctx, p, to)
	}
	assoc, err := pionsctp.ClientContext(ctx, l.cfg.pionConfig(p))
	if err != nil {
		_ = p.Close()
		switch {
		case ctx.Err() != nil:
			return nil, ctx.Err()
		case p.seen()&sawOutOfResource != 0:
			return nil, fmt.Errorf("%w: %w", transport.ErrAssociationLost, ErrOutOfResource)
		case l.closed():
			return nil, fmt.Errorf("sctp: dial %v: %w", to, transport.ErrClosed)
		}
		return nil, fmt.Errorf("%w: handshake: %w", transport.ErrAssociationLost, err)
	}
	c, err := newConn(assoc, p, l.addr, to, l.cfg, l.forget)
	if err != nil {
		return nil, err
	}
	return l.dialled(c, p, to)
}

// dialled books the association c, dialled over p, as established, unless
// the listener closed meanwhile.
func (l *Listener) dialled(c *Conn, p *pktConn, to transport.Addr) (transport.Conn, error) {
	l.mu.Lock()
	closed := l.closed()
	if !closed {
		// Established under mu: Close either sees it established (it
		// stays, as accepted ones do) or closed the listener first.
		p.established.Store(true)
		l.conns[c] = struct{}{}
	}
	l.mu.Unlock()
	if closed {
		c.abort()
		return nil, fmt.Errorf("sctp: dial %v: %w", to, transport.ErrClosed)
	}
	return c, nil
}

func (l *Listener) closed() bool {
	select {
	case <-l.done:
		return true
	default:
		return false
	}
}

// newOutbound registers the wire of an association this listener dials to
// the peer at udpTo, SCTP port peerPort, from SCTP port localPort, or a
// free ephemeral one when localPort is 0.
func (l *Listener) newOutbound(udpTo netip.AddrPort, peerPort, localPort uint16) (*pktConn, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed() {
		return nil, fmt.Errorf("sctp: dial %v: %w", udpTo, transport.ErrClosed)
	}
	if len(l.assocs) >= l.cfg.MaxAssociations {
		return nil, fmt.Errorf("%w: %w (%d)", transport.ErrAssociationLost, ErrListenerFull, l.cfg.MaxAssociations)
	}
	key := demuxKey{peer: udpTo, peerPort: peerPort, localPort: localPort}
	if l.sec != nil {
		// Over DTLS our connection ID names the association, and one
		// handshake at a time takes the records without one.
		if _, used := l.byPeer[udpTo]; used {
			return nil, fmt.Errorf("sctp: dial %v over DTLS: a DTLS handshake with it is in progress, or it does not use connection IDs: %w", udpTo, ErrPortPairInUse)
		}
		key = l.newCIDKeyLocked(udpTo)
		localPort = 1 // no port to pick
	}
	if localPort != 0 {
		if _, used := l.assocs[key]; used {
			return nil, fmt.Errorf("sctp: dial %v SCTP port %d from SCTP port %d: %w", udpTo, peerPort, localPort, ErrPortPairInUse)
		}
	}
	start := uint16(ephemeralFirst + rand.IntN(ephemeralCount))
	for lp := start; localPort == 0; {
		key.localPort = lp
		if _, used := l.assocs[key]; !used {
			break
		}
		if lp++; lp == 0 {
			lp = ephemeralFirst
		}
		if lp == start {
			return nil, fmt.Errorf("%w: %w", transport.ErrAssociationLost, errNoPort)
		}
	}
	p := &pktConn{
		l:        l,
		key:      key,
		remote:   net.UDPAddrFromAddrPort(udpTo),
		in:       make(chan []byte, inQueueLen),
		closed:   make(chan struct{}),
		rd:       deadline.New(),
		mis:      uint16(l.cfg.MaxStreams),
		outbound: true,
		dtls:     l.sec != nil,
	}
	p.bundle = newSackBundler(l.cfg, p.send)
	l.assocs[key] = p
	if l.sec != nil {
		l.byPeer[udpTo] = p
	}
	return p, nil
}

// translateIn turns a packet of an outbound association into what pion
// expects (port 5000 to port 5000), reporting false for a packet to drop
// (its checksum is wrong: recomputing it after the rewrite would hide that).
func (p *pktConn) translateIn(pkt []byte) bool {
	if !checksumOK(pkt) {
		return false
	}
	putPorts(pkt, pionPort, pionPort)
	setChecksum(pkt)
	return true
}

// writeOutbound sends a packet pion wrote for an outbound association with
// the association's SCTP ports, and our MaxStreams in an INIT. Only pion's
// write loop writes.
func (p *pktConn) writeOutbound(b []byte) (int, error) {
	if len(b) < commonHeaderSize {
		return len(b), nil
	}
	p.wbuf = append(p.wbuf[:0], b...)
	putPorts(p.wbuf, p.key.localPort, p.key.peerPort)
	if p.wbuf[commonHeaderSize] == chunkInit {
		limitInboundStreams(p.wbuf, p.mis)
	}
	setChecksum(p.wbuf)
	if err := p.bundle.write(p.sack.outgoing(p.wbuf)); err != nil {
		return 0, err
	}
	return len(b), nil
}
