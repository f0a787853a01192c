package sctp

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-rserpool/rserpool/internal/leakcheck"
	"github.com/go-rserpool/rserpool/transport"
)

var (
	loopback1 = netip.MustParseAddr("127.0.0.1")
	loopback2 = netip.MustParseAddr("127.0.0.2")
)

// listen opens a listener on 127.0.0.1 with cfg; a cleanup closes it.
func listen(t *testing.T, cfg Config) *Listener {
	t.Helper()
	lst, err := New(cfg).Listen(transport.Addr{Kind: transport.KindSCTPUDP, AddrPort: netip.AddrPortFrom(loopback1, 0)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lst.Close() })
	return lst.(*Listener)
}

// acceptAll accepts until the listener closes; the Conns are closed by a
// cleanup.
func acceptAll(t *testing.T, l *Listener) {
	t.Helper()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []transport.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept(context.Background())
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		wg.Wait()
		for _, c := range conns {
			_ = c.Abort()
		}
	})
}

// dialFrom dials l from the local address from with cfg.
func dialFrom(t *testing.T, from netip.Addr, l *Listener, timeout time.Duration) (transport.Conn, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	c, err := New(Config{LocalAddr: from}).Dial(ctx, l.Addr())
	if err == nil {
		t.Cleanup(func() { _ = c.Abort() })
	}
	return c, err
}

// Finding 6: associations are capped per source address and per listener,
// counting accepted ones until they end; an INIT beyond a cap gets an
// ABORT with "Out of Resource" (RFC 9260 §3.3.10.4), so Dial fails at once
// with ErrOutOfResource instead of timing out. With the limits off (the
// old behaviour) every dial succeeds.
func TestListenerAssociationCaps(t *testing.T) {
	leakcheck.Check(t)
	l := listen(t, Config{MaxAssociationsPerAddr: 3, MaxAssociations: 4})
	acceptAll(t, l)
	var first transport.Conn
	for i := range 3 {
		c, err := dialFrom(t, loopback1, l, 10*time.Second)
		if err != nil {
			t.Fatalf("dial %d from 127.0.0.1: %v", i, err)
		}
		if i == 0 {
			first = c
		}
	}
	if _, err := dialFrom(t, loopback1, l, 10*time.Second); !errors.Is(err, ErrOutOfResource) || !errors.Is(err, transport.ErrAssociationLost) {
		t.Fatalf("4th dial from 127.0.0.1 = %v, want ErrOutOfResource (per-address cap 3)", err)
	}
	if _, err := dialFrom(t, loopback2, l, 10*time.Second); err != nil {
		t.Fatalf("dial from 127.0.0.2: %v", err)
	}
	if _, err := dialFrom(t, loopback2, l, 10*time.Second); !errors.Is(err, ErrOutOfResource) {
		t.Fatalf("5th dial = %v, want ErrOutOfResource (listener cap 4)", err)
	}
	// An association that ends frees its place.
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the closed association to leave the listener", func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		return len(l.assocs) == 3
	})
	if _, err := dialFrom(t, loopback1, l, 10*time.Second); err != nil {
		t.Fatalf("dial after a close: %v", err)
	}
}

// waitFor polls cond for up to 10 s; it checks state that no event
// announces (the listener's books after an association ended).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// flooder sends raw INITs from 127.0.0.1, each from another SCTP source
// port with another initiate tag, as an attacker does who never answers an
// INIT ACK.
type flooder struct {
	conn    *net.UDPConn
	sent    atomic.Int64
	initAck atomic.Int64
	wg      sync.WaitGroup
	stop    chan struct{}
}

func startFlooder(t *testing.T, to netip.AddrPort) *flooder {
	t.Helper()
	uc, err := net.DialUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(loopback1, 0)), net.UDPAddrFromAddrPort(to))
	if err != nil {
		t.Fatal(err)
	}
	f := &flooder{conn: uc, stop: make(chan struct{})}
	f.wg.Add(1)
	go func() { // count the INIT ACKs
		defer f.wg.Done()
		buf := make([]byte, 2048)
		for {
			n, err := uc.Read(buf)
			if err != nil {
				return
			}
			if typ, ok := firstChunkType(buf[:n]); ok && typ == chunkInitAck {
				f.initAck.Add(1)
			}
		}
	}()
	t.Cleanup(f.close)
	return f
}

// burst sends n INITs.
func (f *flooder) burst(n int) {
	pkt := buildInit(param(0x8000), param(0xc000))
	for range n {
		i := f.sent.Add(1)
		binary.BigEndian.PutUint16(pkt[0:], uint16(1+i%65000))
		binary.BigEndian.PutUint32(pkt[16:], uint32(0x10000+i))
		setChecksum(pkt)
		_, _ = f.conn.Write(pkt)
	}
}

// run floods at about perMilli INITs per millisecond until close.
func (f *flooder) run(perMilli int) {
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-f.stop:
				return
			case <-tick.C:
				f.burst(perMilli)
			}
		}
	}()
}

func (f *flooder) close() {
	select {
	case <-f.stop:
		return
	default:
	}
	close(f.stop)
	f.conn.Close()
	f.wg.Wait()
}

// Finding 7: a flood of INITs from 127.0.0.1 (about 2,000 a second, none
// ever answered with a COOKIE ECHO) must not keep an honest peer on
// 127.0.0.2 from associating. The flooder is held to
// MaxHandshakesPerAddr handshakes. Before the fix the flood filled the
// 1,024-entry backlog and the honest Dial failed.
func TestINITFloodDoesNotLockOut(t *testing.T) {
	testINITFlood(t, Config{})
}

// Finding 7, many sources: with no per-address handshake cap (an attacker
// with many addresses gets the same), a full backlog evicts a handshake
// that has no COOKIE ECHO yet instead of refusing the honest newcomer.
func TestINITFloodEvictsPendingHandshake(t *testing.T) {
	testINITFlood(t, Config{Backlog: 64, MaxHandshakesPerAddr: -1})
}

func testINITFlood(t *testing.T, cfg Config) {
	leakcheck.Check(t)
	l := listen(t, cfg)
	acceptAll(t, l)
	f := startFlooder(t, l.Addr().AddrPort)
	backlog := l.cfg.Backlog
	f.run(2)
	// The flood has taken hold once it has sent more INITs than the
	// backlog holds and the listener turns INITs away or has its backlog
	// full.
	waitFor(t, "the flood to fill the listener", func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		return f.sent.Load() > int64(backlog+100) && (l.initsTurnedAway.Load() > 0 || l.handshakes+l.queued >= backlog)
	})
	var took time.Duration
	var err error
	for range 3 {
		start := time.Now()
		_, err = dialFrom(t, loopback2, l, 8*time.Second)
		took = max(took, time.Since(start))
		if err != nil {
			break
		}
	}
	f.close()
	l.mu.Lock()
	hs := l.handshakes
	l.mu.Unlock()
	t.Logf("flood: %d INITs sent, %d INIT ACKs; 3 honest dials from 127.0.0.2: err %v, slowest %v; %d handshakes pending",
		f.sent.Load(), f.initAck.Load(), err, took.Round(time.Millisecond), hs)
	if err != nil {
		t.Fatalf("honest Dial from 127.0.0.2 during an INIT flood from 127.0.0.1: %v", err)
	}
	if hs > backlog {
		t.Errorf("%d handshakes pending, backlog %d", hs, backlog)
	}
}

// Finding 6, streams: the listener advertises MaxStreams as the MIS of its
// INIT ACK and ReceiveWindow as its a_rwnd (RFC 9260 §3.3.3), and Dial
// advertises MaxStreams in its INIT (§3.3.2).
func TestAdvertisedLimits(t *testing.T) {
	leakcheck.Check(t)
	l := listen(t, Config{MaxStreams: 7, ReceiveWindow: 300000})
	uc, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(l.Addr().AddrPort))
	if err != nil {
		t.Fatal(err)
	}
	defer uc.Close()
	k := &fakeKernel{t: t, conn: uc}
	k.send(loadLinuxInit(t)) // MIS 65535
	ack, _ := k.await(chunkInitAck)
	if _, mis, _ := initStreams(ack); mis != 7 {
		t.Errorf("INIT ACK MIS %d, want 7", mis)
	}
	if rwnd := binary.BigEndian.Uint32(ack[commonHeaderSize+chunkHeaderSize+4:]); rwnd != 300000 {
		t.Errorf("INIT ACK a_rwnd %d, want 300000", rwnd)
	}

	// Dial towards a socket that only reads.
	pc, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(loopback1, 0)))
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = New(Config{MaxStreams: 5}).Dial(ctx, transport.Addr{Kind: transport.KindSCTPUDP, AddrPort: pc.LocalAddr().(*net.UDPAddr).AddrPort()})
	}()
	defer func() { cancel(); <-done }()
	buf := make([]byte, 2048)
	_ = pc.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, _, err := pc.ReadFromUDPAddrPort(buf)
	if err != nil {
		t.Fatal(err)
	}
	if _, mis, ok := initStreams(buf[:n]); !ok || mis != 5 || !checksumOK(buf[:n]) {
		t.Errorf("INIT MIS %d (INIT %v, checksum ok %v), want 5", mis, ok, checksumOK(buf[:n]))
	}
}

// Finding 6, streams: a peer that sends on more streams than advertised
// gets the association aborted with ErrTooManyStreams; no reader is
// started for a stream beyond the cap. Before the fix every new stream got
// a goroutine (31,000 streams were reached).
func TestStreamCap(t *testing.T) {
	leakcheck.Check(t)
	l := listen(t, Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := New(Config{}).Dial(ctx, l.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Abort()
	sc, err := l.Accept(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Abort()
	s := sc.(*Conn)
	const streams = 300
	for i := range streams {
		if err := c.Send(ctx, transport.Message{PPID: 11, Stream: uint16(i), Data: []byte("x")}); err != nil {
			break // the peer aborted
		}
	}
	var err2 error
	for err2 == nil {
		_, err2 = s.Recv(ctx)
	}
	s.mu.Lock()
	n := len(s.streams)
	s.mu.Unlock()
	t.Logf("peer sent on %d streams; %d readers started; Recv: %v", streams, n, err2)
	if !errors.Is(err2, ErrTooManyStreams) || !errors.Is(err2, transport.ErrAssociationLost) {
		t.Errorf("Recv = %v, want ErrTooManyStreams", err2)
	}
	if n > DefaultMaxStreams {
		t.Errorf("%d stream readers, want at most %d", n, DefaultMaxStreams)
	}
}

// Finding 7: a handshake that never gets its COOKIE ECHO is dropped after
// CookieEchoTimeout, long before HandshakeTimeout.
func TestCookieEchoTimeout(t *testing.T) {
	leakcheck.Check(t)
	l := listen(t, Config{CookieEchoTimeout: 100 * time.Millisecond, HandshakeTimeout: time.Hour})
	uc, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(l.Addr().AddrPort))
	if err != nil {
		t.Fatal(err)
	}
	defer uc.Close()
	k := &fakeKernel{t: t, conn: uc}
	k.send(loadLinuxInit(t))
	k.await(chunkInitAck)
	waitFor(t, "the handshake without COOKIE ECHO to be dropped", func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		return l.handshakes == 0 && len(l.assocs) == 0 && len(l.sources) == 0
	})
}

// Finding 6 with the defaults: one address gets DefaultMaxAssociationsPerAddr
// associations, and the INITs beyond are refused (before: every one of
// 2,000 was accepted).
func TestListenerDefaultPerAddrCap(t *testing.T) {
	if testing.Short() {
		t.Skip("opens 300 associations")
	}
	leakcheck.Check(t)
	l := listen(t, Config{})
	acceptAll(t, l)
	const dials = DefaultMaxAssociationsPerAddr + 44
	var ok, refused, other atomic.Int64
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	tr := New(Config{})
	var mu sync.Mutex
	var conns []transport.Conn
	for range dials {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			c, err := tr.Dial(ctx, l.Addr())
			switch {
			case err == nil:
				ok.Add(1)
				mu.Lock()
				conns = append(conns, c)
				mu.Unlock()
			case errors.Is(err, ErrOutOfResource):
				refused.Add(1)
			default:
				other.Add(1)
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	for _, c := range conns {
		_ = c.Abort()
	}
	t.Logf("%d dials from 127.0.0.1: %d associated, %d refused with Out of Resource", dials, ok.Load(), refused.Load())
	if ok.Load() != DefaultMaxAssociationsPerAddr || refused.Load() != dials-DefaultMaxAssociationsPerAddr {
		t.Errorf("%d associated and %d refused, want %d and %d", ok.Load(), refused.Load(), DefaultMaxAssociationsPerAddr, dials-DefaultMaxAssociationsPerAddr)
	}
}
