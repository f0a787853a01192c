package sctp

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/go-rserpool/rserpool/internal/leakcheck"
	"github.com/go-rserpool/rserpool/transport"
)

func fromEndpoint(t *testing.T, e *Listener, to transport.Addr) (transport.Conn, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := e.DialFrom(ctx, to)
	if err == nil {
		t.Cleanup(func() { _ = c.Abort() })
	}
	return c, err
}

// Associations dialled from a listener count towards its MaxAssociations
// (beyond it DialFrom fails with ErrListenerFull, and INITs from peers are
// refused as before) and leave the books when they end; they do not count
// towards MaxAssociationsPerAddr, which bounds what a peer address opens.
func TestDialFromLimits(t *testing.T) {
	leakcheck.Check(t)
	r := listen(t, Config{})
	acceptAll(t, r)

	e := listen(t, Config{MaxAssociations: 2})
	acceptAll(t, e)
	c1, err := fromEndpoint(t, e, r.Addr())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fromEndpoint(t, e, r.Addr()); err != nil {
		t.Fatal(err)
	}
	_, err = fromEndpoint(t, e, r.Addr())
	if !errors.Is(err, ErrListenerFull) || !errors.Is(err, transport.ErrAssociationLost) {
		t.Fatalf("third DialFrom with MaxAssociations 2: %v, want ErrListenerFull", err)
	}
	if _, err := dialFrom(t, loopback1, e, 5*time.Second); !errors.Is(err, ErrOutOfResource) {
		t.Errorf("INIT to a listener full of dialled associations: %v, want ErrOutOfResource", err)
	}
	if err := c1.Abort(); err != nil {
		t.Fatal(err)
	}
	if _, err := fromEndpoint(t, e, r.Addr()); err != nil {
		t.Errorf("DialFrom after one of two associations ended: %v", err)
	}

	p := listen(t, Config{MaxAssociationsPerAddr: 1})
	acceptAll(t, p)
	for i := range 3 {
		if _, err := fromEndpoint(t, p, r.Addr()); err != nil {
			t.Fatalf("DialFrom %d to 127.0.0.1 with MaxAssociationsPerAddr 1: %v", i, err)
		}
	}
	if _, err := dialFrom(t, loopback1, p, 5*time.Second); err != nil {
		t.Errorf("first INIT from 127.0.0.1 beside 3 dialled associations: %v", err)
	}
	if _, err := dialFrom(t, loopback1, p, 5*time.Second); !errors.Is(err, ErrOutOfResource) {
		t.Errorf("second INIT from 127.0.0.1 with MaxAssociationsPerAddr 1: %v, want ErrOutOfResource", err)
	}
}

// DialFrom to a kernel SCTP endpoint sends the INIT from the listener's
// socket with an ephemeral SCTP source port and the endpoint's SCTP port
// as destination; closing the listener ends a DialFrom still in its
// handshake with ErrClosed. Addresses of the other IP family fail at once.
func TestDialFromKernelPortsAndClose(t *testing.T) {
	leakcheck.Check(t)
	raw, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(loopback1, 0)))
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	e := listen(t, Config{KernelEncapsulationPort: raw.LocalAddr().(*net.UDPAddr).AddrPort().Port()})

	if _, err := fromEndpoint(t, e, transport.Addr{Kind: transport.KindSCTPUDP, AddrPort: netip.MustParseAddrPort("[::1]:9899")}); !errors.Is(err, ErrUnsupportedAddr) {
		t.Errorf("DialFrom an IPv4 socket to ::1: %v, want ErrUnsupportedAddr", err)
	}

	const sctpPort = 3863
	done := make(chan error, 1)
	go func() {
		c, err := e.DialFrom(context.Background(), transport.Addr{Kind: transport.KindSCTP, AddrPort: netip.AddrPortFrom(loopback1, sctpPort)})
		if c != nil {
			_ = c.Abort()
		}
		done <- err
	}()
	buf := make([]byte, 2048)
	_ = raw.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, from, err := raw.ReadFromUDPAddrPort(buf)
	if err != nil {
		t.Fatalf("no INIT: %v", err)
	}
	pkt := buf[:n]
	if from.Port() != e.Addr().AddrPort.Port() {
		t.Errorf("INIT from UDP port %d, want the listener's %d", from.Port(), e.Addr().AddrPort.Port())
	}
	src, dst := binary.BigEndian.Uint16(pkt[0:]), binary.BigEndian.Uint16(pkt[2:])
	if typ, _ := firstChunkType(pkt); typ != chunkInit || dst != sctpPort || src < ephemeralFirst || !checksumOK(pkt) {
		t.Errorf("INIT: chunk %d, SCTP ports %d -> %d, checksum ok %v; want INIT from an ephemeral port to %d", typ, src, dst, checksumOK(pkt), sctpPort)
	}
	if _, mis, ok := initStreams(pkt); !ok || mis != DefaultMaxStreams {
		t.Errorf("INIT advertises MIS %d, want %d", mis, DefaultMaxStreams)
	}
	e.Close()
	select {
	case err := <-done:
		if !errors.Is(err, transport.ErrClosed) {
			t.Errorf("DialFrom in its handshake when the listener closed: %v, want ErrClosed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("DialFrom still in its handshake 10 s after the listener closed")
	}
}

// An endpoint asked for at the unspecified address binds Config.LocalAddr,
// the address Dial sends from, so that its associations come from there.
func TestListenEndpointUsesLocalAddr(t *testing.T) {
	leakcheck.Check(t)
	r := listen(t, Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ach := make(chan transport.Conn, 1)
	go func() {
		c, _ := r.Accept(ctx)
		ach <- c
	}()
	ep, err := New(Config{LocalAddr: loopback2}).ListenEndpoint(transport.Addr{Kind: transport.KindSCTPUDP, AddrPort: netip.AddrPortFrom(netip.IPv4Unspecified(), 0)})
	if err != nil {
		t.Fatal(err)
	}
	defer ep.Close()
	if ip := ep.Addr().AddrPort.Addr(); ip != loopback2 {
		t.Errorf("endpoint bound to %v, want Config.LocalAddr %v", ip, loopback2)
	}
	c, err := ep.DialFrom(ctx, r.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Abort()
	s := <-ach
	if s == nil {
		t.Fatal("no association accepted")
	}
	defer s.Abort()
	if got := s.RemoteAddr(); got != ep.Addr() {
		t.Errorf("association from %v, want %v", got, ep.Addr())
	}
}

// DialFromPort's INIT comes from the SCTP port asked for (a kernel peer
// such as RSPLIB's rspregistrar requires the association to use the port
// we advertise), and a second dial on the same port pair while the first
// association is on the socket is refused with ErrPortPairInUse (RFC 9260
// §1.4: the port pair names the association) without a packet sent.
func TestDialFromPortFixedSourcePort(t *testing.T) {
	leakcheck.Check(t)
	raw, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(loopback1, 0)))
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	e := listen(t, Config{KernelEncapsulationPort: raw.LocalAddr().(*net.UDPAddr).AddrPort().Port()})
	l := e
	to := transport.Addr{Kind: transport.KindSCTP, AddrPort: netip.AddrPortFrom(loopback1, 9901)}
	const srcPort = 9900

	if _, err := l.DialFromPort(context.Background(), to, 0); !errors.Is(err, ErrUnsupportedAddr) {
		t.Errorf("DialFromPort from SCTP port 0: %v, want ErrUnsupportedAddr", err)
	}
	done := make(chan error, 1)
	go func() {
		c, err := l.DialFromPort(context.Background(), to, srcPort)
		if c != nil {
			_ = c.Abort()
		}
		done <- err
	}()
	buf := make([]byte, 2048)
	_ = raw.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, _, err := raw.ReadFromUDPAddrPort(buf)
	if err != nil {
		t.Fatalf("no INIT: %v", err)
	}
	pkt := bytes.Clone(buf[:n])
	src, dst := binary.BigEndian.Uint16(pkt[0:]), binary.BigEndian.Uint16(pkt[2:])
	if typ, _ := firstChunkType(pkt); typ != chunkInit || src != srcPort || dst != 9901 || !checksumOK(pkt) {
		t.Errorf("INIT: chunk %d, SCTP ports %d -> %d, checksum ok %v; want INIT %d -> 9901", typ, src, dst, checksumOK(pkt), srcPort)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if c, err := l.DialFromPort(ctx, to, srcPort); !errors.Is(err, ErrPortPairInUse) {
		if c != nil {
			_ = c.Abort()
		}
		t.Errorf("second DialFromPort on the same SCTP port pair: %v, want ErrPortPairInUse", err)
	}
	_ = raw.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	for {
		n, _, err := raw.ReadFromUDPAddrPort(buf)
		if err != nil {
			break
		}
		// Retransmissions of the first INIT only: a second association
		// would have its own Initiate Tag.
		if typ, _ := firstChunkType(buf[:n]); typ != chunkInit || n < commonHeaderSize+8 || !bytes.Equal(buf[commonHeaderSize+4:commonHeaderSize+8], pkt[commonHeaderSize+4:commonHeaderSize+8]) {
			t.Errorf("packet after the refused dial: %x", buf[:n])
		}
	}
	e.Close()
	select {
	case err := <-done:
		if !errors.Is(err, transport.ErrClosed) {
			t.Errorf("DialFromPort in its handshake when the listener closed: %v, want ErrClosed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("DialFromPort still in its handshake 10 s after the listener closed")
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for k := range l.assocs {
		t.Errorf("association %+v still on the socket", k)
	}
}
