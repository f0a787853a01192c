package sctp

import (
	"encoding/binary"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/go-rserpool/rserpool/transport"
)

// ootbData is an out-of-the-blue DATA packet of size bytes with
// verification tag tag, which a listener answers with an ABORT carrying
// the same tag (RFC 9260 §8.4, item 8).
func ootbData(tag uint32, size int) []byte {
	pkt := make([]byte, size)
	binary.BigEndian.PutUint16(pkt[0:], 7000)
	binary.BigEndian.PutUint16(pkt[2:], 7001)
	binary.BigEndian.PutUint32(pkt[4:], tag)
	pkt[commonHeaderSize] = chunkData
	binary.BigEndian.PutUint16(pkt[commonHeaderSize+2:], uint16(min(size-commonHeaderSize, 0xffff)))
	setChecksum(pkt)
	return pkt
}

// TestListenerReadsBursts checks the listener's batched reads: a burst of
// datagrams, more than one read takes, is answered datagram by datagram
// in order, over IPv4 and IPv6, and a datagram too big for pion (more
// than its 8 KiB receive buffer) is dropped while the next one is served.
func TestListenerReadsBursts(t *testing.T) {
	for _, lo := range []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("::1")} {
		t.Run(lo.String(), func(t *testing.T) {
			if lo.Is6() && !ipv6Loopback() {
				t.Skip("no IPv6 loopback (::1) on this machine")
			}
			lst, err := New(Config{}).Listen(transport.Addr{Kind: transport.KindSCTPUDP, AddrPort: netip.AddrPortFrom(lo, 0)})
			if err != nil {
				t.Fatal(err)
			}
			defer lst.Close()
			c, err := net.DialUDP(udpNetwork(lo), nil, net.UDPAddrFromAddrPort(lst.Addr().AddrPort))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
			const burst = 3*readBatch + 5
			var sent []uint32
			for i := range uint32(burst) {
				if _, err := c.Write(ootbData(i+1, 100)); err != nil {
					t.Fatal(err)
				}
				sent = append(sent, i+1)
			}
			if _, err := c.Write(ootbData(0xbad, maxDatagram+1)); err != nil {
				t.Fatal(err)
			}
			if _, err := c.Write(ootbData(0x900d, maxDatagram)); err != nil {
				t.Fatal(err)
			}
			sent = append(sent, 0x900d)
			buf := make([]byte, 2048)
			for _, want := range sent {
				n, err := c.Read(buf)
				if err != nil {
					t.Fatalf("waiting for the ABORT with tag %#x: %v", want, err)
				}
				if n < commonHeaderSize+chunkHeaderSize || buf[commonHeaderSize] != chunkAbort {
					t.Fatalf("answer %x, want an ABORT", buf[:n])
				}
				if got := binary.BigEndian.Uint32(buf[4:]); got != want {
					t.Fatalf("ABORT with tag %#x, want %#x", got, want)
				}
			}
		})
	}
}
