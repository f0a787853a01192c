package sctp

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-rserpool/rserpool/internal/leakcheck"
	"github.com/go-rserpool/rserpool/internal/testpki"
	"github.com/go-rserpool/rserpool/transport"
)

// testDTLS returns the DTLS configurations of a listener ("registrar.test")
// and a dialler ("pe.test") that trust each other.
func testDTLS(t testing.TB) (server, client *DTLSConfig) {
	ca := testpki.NewCA(t, "test pool CA")
	server = &DTLSConfig{Certificates: []tls.Certificate{ca.Leaf(t, "registrar.test")}, RootCAs: ca.Pool()}
	client = &DTLSConfig{Certificates: []tls.Certificate{ca.Leaf(t, "pe.test")}, RootCAs: ca.Pool()}
	return server, client
}

// udpProxy relays the datagrams of one client between its own socket and
// a server on loopback, and lets a test see, change, drop and inject the
// client's datagrams.
type udpProxy struct {
	front, back *net.UDPConn // the client talks to front; back is connected to the server

	mu       sync.Mutex
	client   netip.AddrPort            // the client's address, once it sent
	hook     func(pkt []byte) [][]byte // what to forward for a client datagram; nil forwards it
	seen     [][]byte                  // every client datagram, as received
	answered [][]byte                  // every server datagram
	wg       sync.WaitGroup
}

func newUDPProxy(t testing.TB, server netip.AddrPort) *udpProxy {
	t.Helper()
	front, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(loopback1, 0)))
	if err != nil {
		t.Fatal(err)
	}
	back, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(server))
	if err != nil {
		t.Fatal(err)
	}
	p := &udpProxy{front: front, back: back}
	p.wg.Go(func() { // client to server
		buf := make([]byte, 65536)
		for {
			n, from, err := front.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			pkt := append([]byte(nil), buf[:n]...)
			p.mu.Lock()
			p.client = from
			p.seen = append(p.seen, pkt)
			hook := p.hook
			p.mu.Unlock()
			out := [][]byte{pkt}
			if hook != nil {
				out = hook(pkt)
			}
			for _, o := range out {
				_, _ = back.Write(o)
			}
		}
	})
	p.wg.Go(func() { // server to client
		buf := make([]byte, 65536)
		for {
			n, err := back.Read(buf)
			if err != nil {
				return
			}
			p.mu.Lock()
			to := p.client
			p.answered = append(p.answered, append([]byte(nil), buf[:n]...))
			p.mu.Unlock()
			_, _ = front.WriteToUDPAddrPort(buf[:n], to)
		}
	})
	t.Cleanup(func() {
		front.Close()
		back.Close()
		p.wg.Wait()
	})
	return p
}

func (p *udpProxy) addr() transport.Addr {
	return transport.Addr{Kind: transport.KindSCTPUDP, AddrPort: p.front.LocalAddr().(*net.UDPAddr).AddrPort()}
}

func (p *udpProxy) setHook(h func([]byte) [][]byte) {
	p.mu.Lock()
	p.hook = h
	p.mu.Unlock()
}

// inject sends pkt to the server as if the client had.
func (p *udpProxy) inject(pkt []byte) { _, _ = p.back.Write(pkt) }

// clientDatagrams returns the datagrams the client sent so far.
func (p *udpProxy) clientDatagrams() [][]byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([][]byte(nil), p.seen...)
}

// dtlsApplicationData is the content type of a DTLS record with
// application data (RFC 6347 §4.1): here an encrypted SCTP packet.
const dtlsApplicationData = 23

// isBigRecord reports whether pkt is a DTLS application data record (with
// or without a connection ID) of at least n bytes: in these tests, the one
// that carries a DATA chunk.
func isBigRecord(pkt []byte, n int) bool {
	return len(pkt) >= n && (pkt[0] == dtlsApplicationData || pkt[0] == dtlsContentCID)
}

// securePair dials l over the proxy with the client configuration and
// accepts the association.
func securePair(t *testing.T, l *Listener, via transport.Addr, client *DTLSConfig) (c, s *Conn) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	dc, err := New(Config{DTLS: client}).Dial(ctx, via)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { dc.Close() })
	sc, err := l.Accept(ctx)
	if err != nil {
		t.Fatalf("Accept: %v", err)
	}
	t.Cleanup(func() { sc.Close() })
	return dc.(*Conn), sc.(*Conn)
}

func sendRecv(t *testing.T, from, to *Conn, data []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := from.Send(ctx, transport.Message{PPID: transport.PPIDASAP, Data: data}); err != nil {
		t.Fatalf("Send: %v", err)
	}
	m, err := to.Recv(ctx)
	if err != nil {
		t.Fatalf("Recv: %v", err)
	}
	if string(m.Data) != string(data) {
		t.Fatalf("Recv got %.20q..., want %.20q...", m.Data, data)
	}
}

// A tampered DTLS record and a replayed one are dropped by the DTLS layer
// (RFC 6347 §4.1.2.6, §4.1.2.7): SCTP never sees them, the association
// survives, and every message arrives once, intact and in order.
func TestDTLSTamperedAndReplayedRecordsDropped(t *testing.T) {
	leakcheck.Check(t)
	server, client := testDTLS(t)
	l := listen(t, Config{DTLS: server})
	proxy := newUDPProxy(t, l.Addr().AddrPort)
	c, s := securePair(t, l, proxy.addr(), client)
	wire := s.wire.(*secureWire)

	const size = 600
	msg := func(b byte) []byte {
		d := make([]byte, size)
		for i := range d {
			d[i] = b
		}
		return d
	}

	// Capture the record that carries message 1.
	var captured []byte
	var capMu sync.Mutex
	proxy.setHook(func(pkt []byte) [][]byte {
		if isBigRecord(pkt, size) {
			capMu.Lock()
			if captured == nil {
				captured = pkt
			}
			capMu.Unlock()
		}
		return [][]byte{pkt}
	})
	sendRecv(t, c, s, msg('1'))
	capMu.Lock()
	replay := captured
	capMu.Unlock()
	if replay == nil {
		t.Fatal("no record carried message 1")
	}

	// Tamper: the first transmission of message 2 arrives with one
	// ciphertext bit flipped; SCTP retransmits it (RFC 9260 §6.3.3).
	var tampered atomic.Int32
	proxy.setHook(func(pkt []byte) [][]byte {
		if isBigRecord(pkt, size) && tampered.CompareAndSwap(0, 1) {
			bad := append([]byte(nil), pkt...)
			bad[len(bad)-20] ^= 0x40
			return [][]byte{bad}
		}
		return [][]byte{pkt}
	})
	sendRecv(t, c, s, msg('2'))
	if n := tampered.Load(); n != 1 {
		t.Fatalf("%d records tampered, want 1", n)
	}
	proxy.setHook(nil)

	// Replay: the record of message 1 again, three times.
	before := wire.packets.Load()
	for range 3 {
		proxy.inject(replay)
	}
	sendRecv(t, c, s, msg('3'))
	// Message 3 needs one packet from the client; a replayed record that
	// got through would add one each.
	got := wire.packets.Load() - before
	t.Logf("SCTP packets read for message 3 and 3 replayed records: %d", got)
	if got > 2 {
		t.Errorf("the listener's association read %d SCTP packets for one message and 3 replayed records: replays reached SCTP", got)
	}
	sendRecv(t, s, c, []byte("still up"))
	select {
	case m := <-s.recvCh:
		t.Errorf("a further message %.10q arrived", m.Data)
	default:
	}
}

// clientHandshakeDatagrams runs one DTLS association through a proxy and
// returns the datagrams the client sent, first its ClientHello, then the
// ClientHello with the listener's cookie, then the rest of its flights.
func clientHandshakeDatagrams(t testing.TB, server, client *DTLSConfig) [][]byte {
	t.Helper()
	lst, err := New(Config{DTLS: server}).Listen(transport.Addr{Kind: transport.KindSCTPUDP, AddrPort: netip.AddrPortFrom(loopback1, 0)})
	if err != nil {
		t.Fatal(err)
	}
	defer lst.Close()
	proxy := newUDPProxy(t, lst.Addr().AddrPort)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := New(Config{DTLS: client}).Dial(ctx, proxy.addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s, err := lst.Accept(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	d := proxy.clientDatagrams()
	if len(d) < 2 || !isClientHello(d[0]) || !isClientHello(d[1]) {
		t.Fatalf("the client's first datagrams are not two ClientHellos")
	}
	return d
}

// A flood of ClientHellos from sources that never answer the
// HelloVerifyRequest holds at most Backlog handshakes, never gets past the
// cookie exchange, and does not lock out a genuine peer: its handshake
// evicts theirs.
func TestDTLSClientHelloFlood(t *testing.T) {
	leakcheck.Check(t)
	server, client := testDTLS(t)
	hello := clientHandshakeDatagrams(t, server, client)[0]
	const backlog = 8
	l := listen(t, Config{DTLS: server, Backlog: backlog})
	to := net.UDPAddrFromAddrPort(l.Addr().AddrPort)
	var flooders []*net.UDPConn
	for range 64 {
		u, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(loopback2, 0)))
		if err != nil {
			t.Skipf("cannot bind 127.0.0.2: %v", err)
		}
		t.Cleanup(func() { u.Close() })
		flooders = append(flooders, u)
	}
	flood := func() {
		for _, u := range flooders {
			_, _ = u.WriteToUDP(hello, to)
		}
	}
	flood()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { // keep flooding while the genuine peer dials, for a bounded number of rounds
		for range 200 {
			select {
			case <-stop:
				return
			default:
			}
			flood()
			l.mu.Lock()
			if l.handshakes > backlog {
				t.Errorf("%d handshakes in progress, backlog %d", l.handshakes, backlog)
			}
			l.mu.Unlock()
		}
	})
	c, err := New(Config{DTLS: client}).Dial(ctx, l.Addr())
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatalf("a genuine peer during the flood: %v", err)
	}
	defer c.Close()
	s, err := l.Accept(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if id, ok := transport.PeerIdentityOf(s); !ok || id.Name != "pe.test" {
		t.Errorf("accepted %v, %v", id, ok)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for k, p := range l.assocs {
		if k.peer.Addr() == loopback2 && p.seen()&sawCookieEcho != 0 {
			t.Errorf("a flooding source %v got past the cookie exchange", k.peer)
		}
	}
	if l.handshakes > backlog {
		t.Errorf("%d handshakes in progress, backlog %d", l.handshakes, backlog)
	}
	t.Logf("ClientHellos turned away: %d; handshakes held: %d", l.initsTurnedAway.Load(), l.handshakes)
}

// FuzzDTLSListener feeds datagrams to a DTLS listener's receive path, as
// from two peers: random bytes and mutations of a real client's handshake
// datagrams. Nothing panics, and once the listener is closed it holds no
// association and its goroutines and pion/dtls's have stopped.
func FuzzDTLSListener(f *testing.F) {
	// Goroutines are checked once every input has run (per input they
	// would be in the fuzzing engine's own goroutines' way).
	leakcheck.Check(f)
	server, client := testDTLS(f)
	for _, d := range clientHandshakeDatagrams(f, server, client) {
		f.Add(d)
	}
	f.Add([]byte{})
	f.Add([]byte{dtlsContentHandshake, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 12, dtlsClientHello, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Add([]byte{dtlsApplicationData, 0xfe, 0xfd, 0, 1, 0, 0, 0, 0, 0, 1, 0, 3, 1, 2, 3})
	f.Fuzz(func(t *testing.T, data []byte) {
		l := listen(t, Config{DTLS: server})
		a, b := netip.AddrPortFrom(loopback2, 40000), netip.AddrPortFrom(loopback2, 40001)
		l.dispatch(data, a)
		l.dispatch(data, a) // the association it opened, if any, sees it again
		l.dispatch(data[:len(data)/2], b)
		l.dispatch(data, b)
		l.Close()
		l.mu.Lock()
		defer l.mu.Unlock()
		if len(l.assocs) != 0 || l.handshakes != 0 || len(l.sources) != 0 || len(l.byPeer) != 0 {
			t.Errorf("after Close the listener holds %d associations, %d handshakes, %d sources, %d peers", len(l.assocs), l.handshakes, len(l.sources), len(l.byPeer))
		}
	})
}

// DTLSConfig.HandshakeTimeout bounds a handshake on both sides: a dialler
// whose peer never answers fails with a HandshakeError that nobody
// refused, and a listener whose peer stops after the cookie exchange drops
// the handshake and reports it.
func TestDTLSHandshakeTimeout(t *testing.T) {
	leakcheck.Check(t)
	server, client := testDTLS(t)
	const bound = 300 * time.Millisecond

	silent, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(loopback1, 0)))
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	impatient := *client
	impatient.HandshakeTimeout = bound
	_, err = New(Config{DTLS: &impatient}).Dial(context.Background(),
		transport.Addr{Kind: transport.KindSCTPUDP, AddrPort: silent.LocalAddr().(*net.UDPAddr).AddrPort()})
	var he *HandshakeError
	if !errors.As(err, &he) || he.RefusedBy != SideNone || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Dial to a silent peer = %v, want a HandshakeError refused by nobody, wrapping the deadline", err)
	}

	strict := *server
	strict.HandshakeTimeout = bound
	failures := make(chan error, 1)
	strict.OnHandshakeFailure = func(err error) { failures <- err }
	l := listen(t, Config{DTLS: &strict})
	proxy := newUDPProxy(t, l.Addr().AddrPort)
	var sent atomic.Int32
	proxy.setHook(func(pkt []byte) [][]byte {
		if sent.Add(1) > 2 { // the ClientHello and its cookie echo, then nothing
			return nil
		}
		return [][]byte{pkt}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if _, err := New(Config{DTLS: client}).Dial(ctx, proxy.addr()); err == nil {
		t.Fatal("Dial through a proxy that drops the client's flights succeeded")
	}
	select {
	case err := <-failures:
		if !errors.As(err, &he) || he.RefusedBy != SideNone || !he.Server {
			t.Errorf("listener's failure %v, want a timeout refused by nobody", err)
		}
		t.Log(err)
	case <-time.After(10 * time.Second):
		t.Fatal("the listener did not give the handshake up")
	}
	l.wg.Wait() // the handshake goroutine has cleaned up
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.assocs) != 0 || l.handshakes != 0 {
		t.Errorf("after the timeout the listener holds %d associations, %d handshakes", len(l.assocs), l.handshakes)
	}
}

// Over DTLS no ASAP or ENRP plaintext crosses the wire: a message's bytes
// appear in no datagram either way. Plain SCTP, the control, shows them.
func TestDTLSNoPlaintextOnWire(t *testing.T) {
	leakcheck.Check(t)
	server, client := testDTLS(t)
	marker := []byte("ASAP registration of pool handle secret-pool-7")
	for _, tc := range []struct {
		name     string
		srv, cli *DTLSConfig
		visible  bool
	}{{"dtls", server, client, false}, {"plain", nil, nil, true}} {
		t.Run(tc.name, func(t *testing.T) {
			l := listen(t, Config{DTLS: tc.srv})
			proxy := newUDPProxy(t, l.Addr().AddrPort)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			dc, err := New(Config{DTLS: tc.cli}).Dial(ctx, proxy.addr())
			if err != nil {
				t.Fatal(err)
			}
			sc, err := l.Accept(ctx)
			if err != nil {
				t.Fatal(err)
			}
			c, s := dc.(*Conn), sc.(*Conn)
			sendRecv(t, c, s, marker)
			sendRecv(t, s, c, marker)
			_ = c.Close()
			_ = s.Close()
			proxy.mu.Lock()
			defer proxy.mu.Unlock()
			found := 0
			for _, d := range append(append([][]byte(nil), proxy.seen...), proxy.answered...) {
				if bytes.Contains(d, marker) {
					found++
				}
			}
			if (found > 0) != tc.visible {
				t.Errorf("the message is in %d of %d datagrams on the wire", found, len(proxy.seen)+len(proxy.answered))
			}
		})
	}
}

// Two DTLS endpoints dialling each other at once would be two DTLS clients
// on one 5-tuple. The peer here is a bare socket that has received our
// ClientHello and sends one of its own: the end with the higher UDP port
// gives its dial up (it fails with ErrPortPairInUse) and answers the
// peer's ClientHello instead; the other keeps its dial and ignores it.
func TestDTLSCrossedDials(t *testing.T) {
	leakcheck.Check(t)
	server, client := testDTLS(t)
	hello := clientHandshakeDatagrams(t, server, client)[0]
	for _, yield := range []bool{true, false} {
		name := map[bool]string{true: "higher port yields", false: "lower port keeps"}[yield]
		t.Run(name, func(t *testing.T) {
			lst, err := New(Config{DTLS: server}).ListenEndpoint(transport.Addr{Kind: transport.KindSCTPUDP, AddrPort: netip.AddrPortFrom(loopback1, 0)})
			if err != nil {
				t.Fatal(err)
			}
			l := lst.(*Listener)
			t.Cleanup(func() { l.Close() })
			// A peer socket on the side of our port the case needs.
			var peer *net.UDPConn
			for range 50 {
				u, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(loopback1, 0)))
				if err != nil {
					t.Fatal(err)
				}
				if p := u.LocalAddr().(*net.UDPAddr).AddrPort().Port(); (p < l.addr.AddrPort.Port()) == yield {
					peer = u
					break
				}
				u.Close()
			}
			if peer == nil {
				t.Skip("no free port on the needed side")
			}
			t.Cleanup(func() { peer.Close() })
			peerAddr := peer.LocalAddr().(*net.UDPAddr).AddrPort()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			dialErr := make(chan error, 1)
			go func() {
				c, err := l.DialFrom(ctx, transport.Addr{Kind: transport.KindSCTPUDP, AddrPort: peerAddr})
				if c != nil {
					c.Abort()
				}
				dialErr <- err
			}()
			buf := make([]byte, 2048)
			n, _, err := peer.ReadFromUDPAddrPort(buf) // our ClientHello: the dial is under way
			if err != nil || !isClientHello(buf[:n]) {
				t.Fatalf("the peer got %d bytes (%v), want our ClientHello", n, err)
			}
			l.dispatch(hello, peerAddr) // the peer's crossing ClientHello
			l.mu.Lock()
			p := l.byPeer[peerAddr]
			l.mu.Unlock()
			if p == nil {
				t.Fatal("no association with the peer")
			}
			if yield {
				if p.outbound {
					t.Error("the dial was kept, want it given up for the peer's")
				}
				if err := <-dialErr; !errors.Is(err, ErrPortPairInUse) {
					t.Errorf("the given-up DialFrom = %v, want ErrPortPairInUse", err)
				}
				return
			}
			if !p.outbound {
				t.Error("the dial was given up, want it kept")
			}
			cancel()
			if err := <-dialErr; !errors.Is(err, context.Canceled) {
				t.Errorf("DialFrom = %v, want it still waiting for the peer until cancelled", err)
			}
		})
	}
}

func TestDTLSFirstClientHello(t *testing.T) {
	server, client := testDTLS(t)
	d := clientHandshakeDatagrams(t, server, client)
	if !isFirstClientHello(d[0]) {
		t.Error("the client's first ClientHello is not taken for one")
	}
	if isFirstClientHello(d[1]) {
		t.Error("the ClientHello with the cookie is taken for a first one")
	}
	for n := range len(d[0]) {
		_ = isFirstClientHello(d[0][:n]) // no panic on a truncated one
	}
}

// BenchmarkSpoofedClientHello reports what a ClientHello from a source
// that never answers the HelloVerifyRequest (a spoofed one) makes a DTLS
// listener hold until it is evicted or CookieEchoTimeout drops it: heap
// (B/hello) and goroutines (goroutines/hello), over spoofedPerRound
// sources at once.
func BenchmarkSpoofedClientHello(b *testing.B) {
	const spoofedPerRound = 200
	server, client := testDTLS(b)
	hello := clientHandshakeDatagrams(b, server, client)[0]
	var heap, gor float64
	rounds := 0
	for b.Loop() {
		lst, err := New(Config{DTLS: server}).Listen(transport.Addr{Kind: transport.KindSCTPUDP, AddrPort: netip.AddrPortFrom(loopback1, 0)})
		if err != nil {
			b.Fatal(err)
		}
		l := lst.(*Listener)
		before, g0 := heapAfterGC(), runtime.NumGoroutine()
		for i := range spoofedPerRound {
			l.dispatch(hello, netip.AddrPortFrom(loopback2, uint16(20000+i)))
		}
		// dispatch registers each handshake before it returns; their
		// goroutines start at once (the collections in heapAfterGC give
		// them time to get to their HelloVerifyRequest).
		l.mu.Lock()
		n := l.handshakes
		l.mu.Unlock()
		if n != spoofedPerRound {
			b.Fatalf("%d handshakes, want %d", n, spoofedPerRound)
		}
		heap += float64(heapAfterGC()-before) / spoofedPerRound
		gor += float64(runtime.NumGoroutine()-g0) / spoofedPerRound
		rounds++
		l.Close()
	}
	b.ReportMetric(heap/float64(rounds), "B/hello")
	b.ReportMetric(gor/float64(rounds), "goroutines/hello")
}

func heapAfterGC() int64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}
