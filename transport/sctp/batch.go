package sctp

import (
	"fmt"
	"net"
	"net/netip"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"

	"github.com/go-rserpool/rserpool/transport"
)

// A listener's socket carries the datagrams of all its associations, so
// under load several wait in the kernel at once: the listener takes up to
// readBatch of them with one recvmmsg(2) (golang.org/x/net's ReadBatch;
// one datagram per call where the system lacks it) instead of one
// recvfrom(2) each, plus the one that finds the socket empty.

const (
	// readBatch is the most datagrams one read of the listener's socket
	// returns.
	readBatch = 32
	// maxDatagram is the largest datagram the listener passes on: pion
	// reads its packets into buffers of this size (its receiveMTU, 8 KiB)
	// and cannot take bigger ones, so bigger ones are dropped here.
	maxDatagram = 8192
)

// batchReader is the part of ipv4.PacketConn and ipv6.PacketConn that the
// listener uses.
type batchReader interface {
	ReadBatch(ms []ipv4.Message, flags int) (int, error)
}

func newBatchReader(pc *net.UDPConn) batchReader {
	if la, ok := pc.LocalAddr().(*net.UDPAddr); ok && la.IP.To4() == nil {
		return ipv6.NewPacketConn(pc)
	}
	return ipv4.NewPacketConn(pc)
}

// readLoop reads every datagram of the socket, a batch at a time, and
// hands each to its association.
func (l *Listener) readLoop() {
	defer close(l.readDone)
	br := newBatchReader(l.pc)
	ms := make([]ipv4.Message, readBatch)
	for i := range ms {
		ms[i].Buffers = [][]byte{make([]byte, maxDatagram+1)} // +1: to see what is too big
	}
	for {
		n, err := br.ReadBatch(ms, 0)
		if err != nil {
			l.readErr = fmt.Errorf("%w: %w", transport.ErrClosed, err)
			return
		}
		for i := range ms[:n] {
			m := &ms[i]
			ua, ok := m.Addr.(*net.UDPAddr)
			m.Addr = nil
			if !ok || m.N > maxDatagram {
				continue
			}
			from := ua.AddrPort()
			l.dispatch(m.Buffers[0][:m.N], netip.AddrPortFrom(from.Addr().Unmap(), from.Port()))
		}
	}
}
