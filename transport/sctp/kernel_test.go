package sctp

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/go-rserpool/rserpool/internal/leakcheck"
	"github.com/go-rserpool/rserpool/transport"
)

// fakeKernel plays a Linux SCTP peer with RFC 6951 encapsulation: raw SCTP
// packets over a UDP socket.
type fakeKernel struct {
	t    *testing.T
	conn *net.UDPConn
}

func (k *fakeKernel) send(pkt []byte) {
	k.t.Helper()
	if _, err := k.conn.Write(pkt); err != nil {
		k.t.Fatal(err)
	}
}

// await reads packets until one carries a chunk of type typ, and returns
// the packet and the chunk's offset. Other packets (SACKs, heartbeats) are
// skipped.
func (k *fakeKernel) await(typ byte) ([]byte, int) {
	k.t.Helper()
	buf := make([]byte, 1<<16)
	_ = k.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		n, err := k.conn.Read(buf)
		if err != nil {
			k.t.Fatalf("waiting for chunk type %d: %v", typ, err)
		}
		pkt := buf[:n]
		if !checksumOK(pkt) {
			k.t.Fatalf("packet with a bad CRC32c: %x", pkt)
		}
		for off := commonHeaderSize; off+chunkHeaderSize <= n; {
			if pkt[off] == typ {
				return bytes.Clone(pkt), off
			}
			l := int(binary.BigEndian.Uint16(pkt[off+2:]))
			if l < chunkHeaderSize {
				break
			}
			off += pad4(l)
		}
	}
}

// packet builds an SCTP packet from the kernel's port 37248 to port 3863
// with one chunk.
func kernelPacket(vtag uint32, typ, flags byte, value []byte) []byte {
	pkt := make([]byte, commonHeaderSize+chunkHeaderSize, commonHeaderSize+chunkHeaderSize+len(value)+3)
	binary.BigEndian.PutUint16(pkt[0:], 37248)
	binary.BigEndian.PutUint16(pkt[2:], 3863)
	binary.BigEndian.PutUint32(pkt[4:], vtag)
	pkt[12], pkt[13] = typ, flags
	binary.BigEndian.PutUint16(pkt[14:], uint16(chunkHeaderSize+len(value)))
	pkt = append(pkt, value...)
	for len(pkt)%4 != 0 {
		pkt = append(pkt, 0)
	}
	setChecksum(pkt)
	return pkt
}

// A Linux kernel peer associates with the listener (RFC 9260 §5.1, over
// RFC 6951 encapsulation), sends an ASAP message, receives an ENRP one and
// is shut down gracefully (RFC 9260 §9.2). The INIT is the real one a Linux
// 6.1 kernel sent; without RewriteInit pion/sctp discards it.
func TestLinuxKernelPeer(t *testing.T) {
	leakcheck.Check(t)
	tr := New(Config{})
	lst, err := tr.Listen(transport.Addr{Kind: transport.KindSCTPUDP, AddrPort: netip.MustParseAddrPort("127.0.0.1:0")})
	if err != nil {
		t.Fatal(err)
	}
	defer lst.Close()
	uc, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(lst.Addr().AddrPort))
	if err != nil {
		t.Fatal(err)
	}
	defer uc.Close()
	k := &fakeKernel{t: t, conn: uc}

	init := loadLinuxInit(t)
	const kernelTag = 0x81ed66e3 // Initiate Tag of the captured INIT
	kernelTSN := binary.BigEndian.Uint32(init[28:])
	k.send(init)

	// INIT ACK: to the kernel's tag, ports swapped (RFC 9260 §5.1, §8.5).
	ack, off := k.await(2)
	if got := binary.BigEndian.Uint32(ack[4:]); got != kernelTag {
		t.Fatalf("INIT ACK verification tag %#x, want the INIT's initiate tag %#x", got, kernelTag)
	}
	if src, dst := binary.BigEndian.Uint16(ack[0:]), binary.BigEndian.Uint16(ack[2:]); src != 3863 || dst != 37248 {
		t.Fatalf("INIT ACK ports %d->%d, want 3863->37248", src, dst)
	}
	ourTag := binary.BigEndian.Uint32(ack[off+4:])
	var cookie []byte
	end := off + int(binary.BigEndian.Uint16(ack[off+2:]))
	for p := off + chunkHeaderSize + initFixedSize; p+4 <= end; {
		typ, l := binary.BigEndian.Uint16(ack[p:]), int(binary.BigEndian.Uint16(ack[p+2:]))
		if l < 4 {
			break
		}
		if typ == 7 { // State Cookie
			cookie = ack[p+4 : p+l]
		}
		p += pad4(l)
	}
	if cookie == nil {
		t.Fatal("INIT ACK without a State Cookie")
	}
	k.send(kernelPacket(ourTag, chunkCookieEcho, 0, cookie))
	k.await(11) // COOKIE ACK

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := lst.Accept(ctx)
	if err != nil {
		t.Fatalf("Accept: %v", err)
	}
	defer c.Close()

	// DATA (RFC 9260 §3.3.1): B and E flags, TSN, stream 0, SSN 0, PPID 11.
	msg := []byte("ASAP from the kernel")
	data := make([]byte, 12, 12+len(msg))
	binary.BigEndian.PutUint32(data[0:], kernelTSN)
	binary.BigEndian.PutUint32(data[8:], transport.PPIDASAP)
	k.send(kernelPacket(ourTag, chunkData, 0x03, append(data, msg...)))
	m, err := c.Recv(ctx)
	if err != nil || m.PPID != transport.PPIDASAP || !bytes.Equal(m.Data, msg) {
		t.Fatalf("Recv = %+v, %v; want PPID 11 %q", m, err, msg)
	}

	if err := c.Send(ctx, transport.Message{PPID: transport.PPIDENRP, Stream: 0, Data: []byte("ENRP to the kernel")}); err != nil {
		t.Fatal(err)
	}
	pkt, off := k.await(chunkData)
	if got := binary.BigEndian.Uint32(pkt[4:]); got != kernelTag {
		t.Errorf("DATA verification tag %#x, want %#x", got, kernelTag)
	}
	if ppid := binary.BigEndian.Uint32(pkt[off+12:]); ppid != transport.PPIDENRP {
		t.Errorf("DATA PPID %d, want 12", ppid)
	}
	ourTSN := binary.BigEndian.Uint32(pkt[off+4:])
	// SACK it (RFC 9260 §3.3.4) so that the shutdown need not wait.
	sack := make([]byte, 12)
	binary.BigEndian.PutUint32(sack[0:], ourTSN)
	binary.BigEndian.PutUint32(sack[4:], 1<<16)
	k.send(kernelPacket(ourTag, 3, 0, sack))

	// Graceful close: SHUTDOWN, answered with SHUTDOWN ACK, finished by
	// SHUTDOWN COMPLETE (RFC 9260 §9.2).
	closed := make(chan error, 1)
	go func() { closed <- c.Close() }()
	k.await(chunkShutdown)
	k.send(kernelPacket(ourTag, chunkShutdownAck, 0, nil))
	sc, _ := k.await(chunkShutdownComplete)
	if got := binary.BigEndian.Uint32(sc[4:]); got != kernelTag {
		t.Errorf("SHUTDOWN COMPLETE verification tag %#x, want %#x", got, kernelTag)
	}
	if err := <-closed; err != nil {
		t.Errorf("Close: %v", err)
	}
}

// An out-of-the-blue SHUTDOWN ACK, as a peer retransmits it after we lost
// the association, is answered with SHUTDOWN COMPLETE with the T bit set
// (RFC 9260 §8.4 item 5); other OOTB chunks with an ABORT (item 8).
func TestListenerOOTB(t *testing.T) {
	leakcheck.Check(t)
	lst, err := New(Config{}).Listen(transport.Addr{Kind: transport.KindSCTPUDP, AddrPort: netip.MustParseAddrPort("127.0.0.1:0")})
	if err != nil {
		t.Fatal(err)
	}
	defer lst.Close()
	uc, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(lst.Addr().AddrPort))
	if err != nil {
		t.Fatal(err)
	}
	defer uc.Close()
	k := &fakeKernel{t: t, conn: uc}
	k.send(kernelPacket(0xabcdef01, chunkShutdownAck, 0, nil))
	pkt, off := k.await(chunkShutdownComplete)
	if pkt[off+1]&1 == 0 || binary.BigEndian.Uint32(pkt[4:]) != 0xabcdef01 {
		t.Errorf("SHUTDOWN COMPLETE flags %#x tag %#x; want T bit and the packet's tag", pkt[off+1], binary.BigEndian.Uint32(pkt[4:]))
	}
	k.send(kernelPacket(0x12345678, 3, 0, make([]byte, 12))) // a SACK
	pkt, off = k.await(chunkAbort)
	if pkt[off+1]&1 == 0 || binary.BigEndian.Uint32(pkt[4:]) != 0x12345678 {
		t.Errorf("ABORT flags %#x tag %#x; want T bit and the packet's tag", pkt[off+1], binary.BigEndian.Uint32(pkt[4:]))
	}
}

// Shutdown with a context that is already over falls back to ABORT (RFC
// 9260 §9.1); the peer learns that the association is lost, not closed.
func TestShutdownAbortFallback(t *testing.T) {
	leakcheck.Check(t)
	c, s := pair(t, "127.0.0.1")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := c.(*Conn).Shutdown(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Shutdown(cancelled) = %v, want context.Canceled", err)
	}
	rctx, rcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer rcancel()
	if _, err := s.Recv(rctx); !errors.Is(err, transport.ErrAssociationLost) {
		t.Errorf("peer Recv after ABORT = %v, want ErrAssociationLost", err)
	}
	if _, err := c.Recv(rctx); !errors.Is(err, transport.ErrClosed) {
		t.Errorf("own Recv after Shutdown = %v, want ErrClosed", err)
	}
}

// Graceful Shutdown(ctx) delivers what was sent, then the peer sees
// ErrPeerClosed (RFC 9260 §9.2); on ::1 as well as 127.0.0.1. Once both
// ends and the listener are closed no goroutine is left (leakcheck).
func TestShutdownGraceful(t *testing.T) {
	for _, ip := range []string{"127.0.0.1", "::1"} {
		t.Run(ip, func(t *testing.T) {
			if ip == "::1" && !ipv6Loopback() {
				t.Skip("no IPv6 loopback")
			}
			leakcheck.Check(t)
			c, s := pair(t, ip)
			if !c.LocalAddr().AddrPort.Addr().Is6() == (ip == "::1") {
				t.Errorf("local address %v is not of the family of %s", c.LocalAddr(), ip)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := c.Send(ctx, transport.Message{PPID: 12, Data: []byte("last words")}); err != nil {
				t.Fatal(err)
			}
			if err := c.(*Conn).Shutdown(ctx); err != nil {
				t.Fatalf("Shutdown: %v", err)
			}
			if m, err := s.Recv(ctx); err != nil || string(m.Data) != "last words" {
				t.Fatalf("Recv = %q, %v", m.Data, err)
			}
			if _, err := s.Recv(ctx); !errors.Is(err, transport.ErrPeerClosed) {
				t.Fatalf("Recv after peer Shutdown = %v, want ErrPeerClosed", err)
			}
		})
	}
}

func TestReservedPorts(t *testing.T) {
	tr := New(Config{})
	for _, p := range []uint16{transport.PortASAP, transport.PortENRP} {
		at := transport.Addr{Kind: transport.KindSCTPUDP, AddrPort: netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), p)}
		if _, err := tr.Listen(at); !errors.Is(err, ErrReservedPort) {
			t.Errorf("Listen(%v) = %v, want ErrReservedPort", at, err)
		}
		if _, err := tr.Dial(context.Background(), at); !errors.Is(err, ErrReservedPort) {
			t.Errorf("Dial(%v) = %v, want ErrReservedPort", at, err)
		}
	}
}

func ipv6Loopback() bool {
	c, err := net.ListenUDP("udp6", &net.UDPAddr{IP: net.IPv6loopback})
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// pair returns a dialed and an accepted Conn on ip; cleanups close them
// and the listener.
func pair(t *testing.T, ip string) (transport.Conn, transport.Conn) {
	t.Helper()
	tr := New(Config{})
	lst, err := tr.Listen(transport.Addr{Kind: transport.KindSCTPUDP, AddrPort: netip.AddrPortFrom(netip.MustParseAddr(ip), 0)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lst.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	acc := make(chan transport.Conn, 1)
	go func() {
		s, err := lst.Accept(ctx)
		if err != nil {
			t.Error(err)
		}
		acc <- s
	}()
	c, err := tr.Dial(ctx, lst.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	s := <-acc
	if s == nil {
		t.FailNow()
	}
	t.Cleanup(func() { s.Close() })
	return c, s
}

// Dialing a KindSCTP address goes to the encapsulation port with the
// address's port as SCTP destination port; our own listener, which accepts
// any SCTP port pair, plays the kernel here. Each association gets an SCTP
// source port of its own from the ephemeral range (finding 9: with pion's
// fixed 5000 for both, a Linux kernel takes the second association from
// the same host for a restart with a new encapsulation port and aborts it,
// RFC 6951 §5.5), and each one's replies reach it.
func TestDialKernelAddress(t *testing.T) {
	leakcheck.Check(t)
	lst, err := New(Config{}).Listen(transport.Addr{Kind: transport.KindSCTPUDP, AddrPort: netip.MustParseAddrPort("127.0.0.1:0")})
	if err != nil {
		t.Fatal(err)
	}
	defer lst.Close()
	l := lst.(*Listener)
	tr := New(Config{KernelEncapsulationPort: l.Addr().AddrPort.Port()})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	to := transport.Addr{Kind: transport.KindSCTP, AddrPort: netip.MustParseAddrPort("127.0.0.1:4242")}
	var dialed, accepted [2]transport.Conn
	for i := range dialed {
		c, err := tr.Dial(ctx, to)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if c.RemoteAddr() != to {
			t.Errorf("RemoteAddr %v, want %v", c.RemoteAddr(), to)
		}
		s, err := lst.Accept(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		dialed[i], accepted[i] = c, s
	}
	l.mu.Lock()
	ports := map[uint16]bool{}
	for k := range l.assocs {
		if k.localPort != 4242 {
			t.Errorf("SCTP destination port %d, want 4242", k.localPort)
		}
		if k.peerPort < 49152 {
			t.Errorf("SCTP source port %d, want one from the ephemeral range 49152-65535", k.peerPort)
		}
		ports[k.peerPort] = true
	}
	l.mu.Unlock()
	if len(ports) != 2 {
		t.Fatalf("two associations to one kernel endpoint used SCTP source ports %v; want two different ports", ports)
	}
	for i, c := range dialed {
		s := accepted[i]
		if s.RemoteAddr().AddrPort != c.LocalAddr().AddrPort {
			t.Fatalf("accepted %v for dialed %v", s.RemoteAddr(), c.LocalAddr())
		}
		msg := fmt.Sprintf("translated %d", i)
		if err := c.Send(ctx, transport.Message{PPID: 11, Data: []byte(msg)}); err != nil {
			t.Fatal(err)
		}
		if m, err := s.Recv(ctx); err != nil || string(m.Data) != msg {
			t.Fatalf("Recv = %q, %v; want %q", m.Data, err, msg)
		}
		back := fmt.Sprintf("back %d", i)
		if err := s.Send(ctx, transport.Message{PPID: 11, Data: []byte(back)}); err != nil {
			t.Fatal(err)
		}
		if m, err := c.Recv(ctx); err != nil || string(m.Data) != back {
			t.Fatalf("Recv = %q, %v; want %q", m.Data, err, back)
		}
	}
	for _, c := range dialed {
		c.Close()
	}
	tr.ports.mu.Lock()
	defer tr.ports.mu.Unlock()
	if n := len(tr.ports.inUse); n != 0 {
		t.Errorf("source ports of %d hosts still taken after Close", n)
	}
}
