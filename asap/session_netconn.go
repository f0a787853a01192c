package asap

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-rserpool/rserpool/transport"
)

// NetConn adapts a stream connection (TCP, TLS over TCP, a Unix socket,
// net.Pipe) to a transport.Conn carrying whole messages, for sessions
// with PEs whose user transport is TCP (SessionConfig.Dial). Framing: each
// message is a 4-byte big-endian length (1 to transport.MaxMessageSize)
// followed by that many bytes. PPID and stream are not carried: Recv
// returns PPID 0 and stream 0, and Send refuses PPID 11 (such a PE has no
// ASAP control channel, RFC 5354 §3.4 "data only"). A frame of length 0 or
// above the maximum ends the connection (Recv fails with
// transport.ErrAssociationLost). The peer closing it cleanly (EOF between
// frames) is transport.ErrPeerClosed, which a Session takes as the PE
// ending the session (ReasonPeerClosed: failover without an unreachable
// report). A PE process that dies usually has its connections closed with
// a FIN too, so over TCP such a PE is found by the registrar's own
// supervision of its registration rather than by reports. Abort closes a
// *net.TCPConn with linger 0 (an RST). LocalAddr and RemoteAddr carry the IP address and
// port with Kind transport.KindSCTPUDP, the zero Kind, which means nothing
// here.
func NetConn(c net.Conn) transport.Conn {
	return &netConn{c: c}
}

type netConn struct {
	c      net.Conn
	rmu    sync.Mutex
	wmu    sync.Mutex
	closed atomic.Bool
	rbuf   [4]byte
}

func (n *netConn) err(op string, err error, ctx context.Context) error {
	switch {
	case n.closed.Load():
		return transport.ErrClosed
	case ctx.Err() != nil:
		return ctx.Err()
	case errors.Is(err, io.EOF) && op == "recv":
		return transport.ErrPeerClosed
	}
	return fmt.Errorf("asap: %s on %v: %w: %w", op, n.c.RemoteAddr(), transport.ErrAssociationLost, err)
}

// deadline makes the connection's I/O end once ctx is done (so that the
// error is ctx's); the returned func undoes it, leaving no deadline.
func deadline(ctx context.Context, set func(time.Time) error) func() {
	done := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		set(time.Unix(1, 0))
		close(done)
	})
	return func() {
		if !stop() {
			<-done
			set(time.Time{})
		}
	}
}

// Send writes one framed message.
func (n *netConn) Send(ctx context.Context, m transport.Message) error {
	switch {
	case n.closed.Load():
		return transport.ErrClosed
	case len(m.Data) == 0:
		return transport.ErrEmptyMessage
	case len(m.Data) > transport.MaxMessageSize:
		return transport.ErrMessageTooLarge
	case m.PPID == transport.PPIDASAP:
		return ErrControlPPID
	}
	n.wmu.Lock()
	defer n.wmu.Unlock()
	defer deadline(ctx, n.c.SetWriteDeadline)()
	b := make([]byte, 4+len(m.Data))
	binary.BigEndian.PutUint32(b, uint32(len(m.Data)))
	copy(b[4:], m.Data)
	if _, err := n.c.Write(b); err != nil {
		return n.err("send", err, ctx)
	}
	return nil
}

// Recv reads one framed message.
func (n *netConn) Recv(ctx context.Context) (transport.Message, error) {
	if n.closed.Load() {
		return transport.Message{}, transport.ErrClosed
	}
	n.rmu.Lock()
	defer n.rmu.Unlock()
	defer deadline(ctx, n.c.SetReadDeadline)()
	if _, err := io.ReadFull(n.c, n.rbuf[:]); err != nil {
		return transport.Message{}, n.err("recv", err, ctx)
	}
	l := binary.BigEndian.Uint32(n.rbuf[:])
	if l == 0 || l > transport.MaxMessageSize {
		n.c.Close()
		return transport.Message{}, fmt.Errorf("asap: recv on %v: frame of %d bytes: %w", n.c.RemoteAddr(), l, transport.ErrAssociationLost)
	}
	data := make([]byte, l)
	if _, err := io.ReadFull(n.c, data); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return transport.Message{}, n.err("recv", err, ctx)
	}
	return transport.Message{Data: data}, nil
}

func addrOfNet(a net.Addr) transport.Addr {
	if a == nil {
		return transport.Addr{}
	}
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return transport.Addr{}
	}
	return transport.Addr{AddrPort: netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())}
}

func (n *netConn) LocalAddr() transport.Addr  { return addrOfNet(n.c.LocalAddr()) }
func (n *netConn) RemoteAddr() transport.Addr { return addrOfNet(n.c.RemoteAddr()) }

// Close closes the connection.
func (n *netConn) Close() error {
	if n.closed.Swap(true) {
		return nil
	}
	return n.c.Close()
}

// Abort closes the connection without lingering.
func (n *netConn) Abort() error {
	if n.closed.Swap(true) {
		return nil
	}
	if tc, ok := n.c.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	n.c.Close()
	return nil
}
