package sctp

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/go-rserpool/rserpool/internal/leakcheck"
	"github.com/go-rserpool/rserpool/transport"
)

// linuxLike plays a Linux kernel SCTP endpoint reached over RFC 6951
// encapsulation, as far as finding 9 needs: it tells associations apart by
// peer IP address and SCTP port pair only (not by UDP port), answers an
// INIT for a new port pair with an INIT ACK and a COOKIE ECHO with a
// COOKIE ACK, and answers an INIT that reuses the SCTP ports of an
// association from another UDP port with an ABORT carrying error cause 14,
// "Restart of an Association with New Encapsulation Port" (RFC 6951 §5.5),
// as Linux does.
type linuxLike struct {
	t    *testing.T
	pc   *net.UDPConn
	port uint16 // the kernel's SCTP port

	mu     sync.Mutex
	assocs map[linuxKey]*linuxAssoc
	wg     sync.WaitGroup
}

type linuxKey struct {
	ip       netip.Addr
	src, dst uint16
}

type linuxAssoc struct {
	udp     netip.AddrPort // where the association's packets come from
	peerTag uint32
	myTag   uint32
	myTSN   uint32
	up      bool
}

func startLinuxLike(t *testing.T, port uint16) *linuxLike {
	t.Helper()
	pc, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(loopback1, 0)))
	if err != nil {
		t.Fatal(err)
	}
	k := &linuxLike{t: t, pc: pc, port: port, assocs: make(map[linuxKey]*linuxAssoc)}
	k.wg.Add(1)
	go k.serve()
	t.Cleanup(func() { pc.Close(); k.wg.Wait() })
	return k
}

func (k *linuxLike) addr() netip.AddrPort { return k.pc.LocalAddr().(*net.UDPAddr).AddrPort() }

func (k *linuxLike) packet(dstPort uint16, vtag uint32, typ, flags byte, value []byte) []byte {
	pkt := kernelPacket(vtag, typ, flags, value)
	putPorts(pkt, k.port, dstPort)
	setChecksum(pkt)
	return pkt
}

func (k *linuxLike) serve() {
	defer k.wg.Done()
	buf := make([]byte, 1<<16)
	for {
		n, from, err := k.pc.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		pkt := buf[:n]
		if n < commonHeaderSize+chunkHeaderSize || !checksumOK(pkt) {
			continue
		}
		key := linuxKey{from.Addr(), binary.BigEndian.Uint16(pkt[0:]), binary.BigEndian.Uint16(pkt[2:])}
		if key.dst != k.port {
			continue
		}
		k.mu.Lock()
		a := k.assocs[key]
		var reply []byte
		switch pkt[commonHeaderSize] {
		case chunkInit:
			peerTag := binary.BigEndian.Uint32(pkt[16:])
			switch {
			case a != nil && a.udp != from:
				cause := []byte{0, 14, 0, 4}
				reply = k.packet(key.src, peerTag, chunkAbort, 0, cause)
			case a == nil:
				a = &linuxAssoc{udp: from, myTag: uint32(0x4000 + len(k.assocs)), myTSN: 1000}
				k.assocs[key] = a
				fallthrough
			default:
				a.peerTag = peerTag
				ack := make([]byte, initFixedSize, initFixedSize+8)
				binary.BigEndian.PutUint32(ack[0:], a.myTag)
				binary.BigEndian.PutUint32(ack[4:], 1<<16)
				binary.BigEndian.PutUint16(ack[8:], 10)
				binary.BigEndian.PutUint16(ack[10:], 10)
				binary.BigEndian.PutUint32(ack[12:], a.myTSN)
				ack = append(ack, param(7, 'c', 'o', 'o', 'k')...) // State Cookie
				reply = k.packet(key.src, peerTag, chunkInitAck, 0, ack)
			}
		case chunkCookieEcho:
			if a != nil && binary.BigEndian.Uint32(pkt[4:]) == a.myTag {
				a.up = true
				reply = k.packet(key.src, a.peerTag, 11, 0, nil) // COOKIE ACK
			}
		}
		k.mu.Unlock()
		if reply != nil {
			_, _ = k.pc.WriteToUDPAddrPort(reply, from)
		}
	}
}

// sendData sends one DATA chunk (RFC 9260 §3.3.1) on every established
// association, naming the association's SCTP source port, to the UDP
// address the association's packets came from, and returns those ports.
func (k *linuxLike) sendData() []uint16 {
	k.mu.Lock()
	defer k.mu.Unlock()
	var ports []uint16
	for key, a := range k.assocs {
		if !a.up {
			continue
		}
		msg := []byte(fmt.Sprintf("to %d", key.src))
		data := make([]byte, 12, 12+len(msg))
		binary.BigEndian.PutUint32(data[0:], a.myTSN)
		binary.BigEndian.PutUint32(data[8:], transport.PPIDASAP)
		a.myTSN++
		_, _ = k.pc.WriteToUDPAddrPort(k.packet(key.src, a.peerTag, chunkData, 0x03, append(data, msg...)), a.udp)
		ports = append(ports, key.src)
	}
	return ports
}

// Finding 9: two associations from one Transport to one kernel SCTP
// endpoint. Before the fix both came from SCTP port 5000 and the kernel
// aborted the second (cause 14); now each has its own port, both are
// established, and what the kernel sends on each reaches that one.
func TestTwoAssociationsToOneKernelEndpoint(t *testing.T) {
	leakcheck.Check(t)
	const sctpPort = 3863
	k := startLinuxLike(t, sctpPort)
	tr := New(Config{KernelEncapsulationPort: k.addr().Port()})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	to := transport.Addr{Kind: transport.KindSCTP, AddrPort: netip.AddrPortFrom(loopback1, sctpPort)}
	var conns []transport.Conn
	for i := range 2 {
		c, err := tr.Dial(ctx, to)
		if err != nil {
			t.Fatalf("association %d: %v", i+1, err)
		}
		defer c.Abort()
		conns = append(conns, c)
	}
	ports := k.sendData()
	if len(ports) != 2 || ports[0] == ports[1] {
		t.Fatalf("kernel has associations from SCTP ports %v, want two different ones", ports)
	}
	got := map[string]bool{}
	for _, c := range conns {
		m, err := c.Recv(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got[string(m.Data)] = true
	}
	for _, p := range ports {
		if !got[fmt.Sprintf("to %d", p)] {
			t.Errorf("the message to port %d did not arrive (got %v)", p, got)
		}
	}
}
