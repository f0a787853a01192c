package sctp_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/pion/logging"
	pionsctp "github.com/pion/sctp"

	"github.com/go-rserpool/rserpool/transport"
	"github.com/go-rserpool/rserpool/transport/sctp"
	"github.com/go-rserpool/rserpool/transport/transporttest"
)

// BenchmarkRoundTrip compares this transport with bare pion/sctp
// associations over connected UDP sockets (transport=pion-raw), the ceiling
// for anything built on pion, and with itself over DTLS
// (transport=sctp-dtls, RFC 8261).
func BenchmarkRoundTrip(b *testing.B) {
	b.Run("transport=sctp", func(b *testing.B) {
		transporttest.BenchmarkRoundTrip(b, factory("127.0.0.1"))
	})
	b.Run("transport=sctp-dtls", func(b *testing.B) {
		transporttest.BenchmarkRoundTrip(b, dtlsFactory("127.0.0.1"))
	})
	b.Run("transport=pion-raw", func(b *testing.B) {
		transporttest.BenchmarkRoundTripFuncs(b, pionRawRoundTrips)
	})
}

var silent = &logging.DefaultLoggerFactory{Writer: io.Discard, DefaultLogLevel: logging.LogLevelDisabled}

// pionRawRoundTrips opens n pion associations, each over its own pair of
// connected UDP sockets on 127.0.0.1, with an echo loop on the server end.
func pionRawRoundTrips(b *testing.B, n int) []transporttest.RoundTripFunc {
	rts := make([]transporttest.RoundTripFunc, n)
	for i := range rts {
		sc, cc := udpPair(b)
		type result struct {
			a   *pionsctp.Association
			err error
		}
		srv := make(chan result, 1)
		go func() {
			a, err := pionsctp.Server(pionsctp.Config{NetConn: sc, LoggerFactory: silent})
			srv <- result{a, err}
		}()
		client, err := pionsctp.Client(pionsctp.Config{NetConn: cc, LoggerFactory: silent})
		if err != nil {
			b.Fatal(err)
		}
		r := <-srv
		if r.err != nil {
			b.Fatal(r.err)
		}
		server := r.a
		var wg sync.WaitGroup
		b.Cleanup(func() {
			_ = client.Close()
			_ = server.Close()
			wg.Wait()
		})
		cs, err := client.OpenStream(0, pionsctp.PayloadTypeUnknown)
		if err != nil {
			b.Fatal(err)
		}
		wg.Add(1)
		go func() { // echo
			defer wg.Done()
			s, err := server.AcceptStream()
			if err != nil {
				return
			}
			buf := make([]byte, 2048)
			for {
				n, ppi, err := s.ReadSCTP(buf)
				if err != nil {
					return
				}
				if _, err := s.WriteSCTP(buf[:n], ppi); err != nil {
					return
				}
			}
		}()
		buf := make([]byte, 2048)
		rts[i] = func(req []byte) error {
			if _, err := cs.WriteSCTP(req, 11); err != nil {
				return err
			}
			n, _, err := cs.ReadSCTP(buf)
			if err != nil {
				return err
			}
			if n != len(req) {
				return errors.New("answer of the wrong size")
			}
			return nil
		}
	}
	return rts
}

// udpPair returns two UDP sockets on 127.0.0.1 connected to each other.
func udpPair(b *testing.B) (*net.UDPConn, *net.UDPConn) {
	lo := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}
	a, err := net.ListenUDP("udp4", lo)
	if err != nil {
		b.Fatal(err)
	}
	c, err := net.DialUDP("udp4", nil, a.LocalAddr().(*net.UDPAddr))
	if err != nil {
		b.Fatal(err)
	}
	a.Close()
	s, err := net.DialUDP("udp4", a.LocalAddr().(*net.UDPAddr), c.LocalAddr().(*net.UDPAddr))
	if err != nil {
		b.Fatal(err)
	}
	return s, c
}

// BenchmarkDialClose measures a short-lived association as internal/echo
// uses one: dial, one 100-byte request and its answer, graceful Close.
func BenchmarkDialClose(b *testing.B) {
	tr := sctp.New(sctp.Config{})
	l, err := tr.Listen(transport.Addr{Kind: transport.KindSCTPUDP, AddrPort: netip.MustParseAddrPort("127.0.0.1:0")})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() {
		cancel()
		l.Close()
		wg.Wait()
	}()
	wg.Go(func() { // one echo goroutine per association
		for {
			s, err := l.Accept(ctx)
			if err != nil {
				return
			}
			wg.Go(func() {
				defer s.Close()
				for {
					m, err := s.Recv(ctx)
					if err != nil {
						return
					}
					if err := s.Send(ctx, m); err != nil {
						return
					}
				}
			})
		}
	})
	req := transport.Message{PPID: transport.PPIDASAP, Data: make([]byte, transporttest.RoundTripSize)}
	b.ReportAllocs()
	for b.Loop() {
		c, err := tr.Dial(ctx, l.Addr())
		if err != nil {
			b.Fatal(err)
		}
		if err := c.Send(ctx, req); err != nil {
			b.Fatal(err)
		}
		if _, err := c.Recv(ctx); err != nil {
			b.Fatal(err)
		}
		if err := c.Close(); err != nil {
			b.Fatal(err)
		}
	}
}

// benchTransports are the configurations the handshake and memory
// benchmarks compare: plain SCTP over UDP, and SCTP over DTLS with mutual
// certificate authentication (ECDSA P-256 leaves of one CA).
func benchTransports(b *testing.B) []benchTransport {
	p := newPKI(b)
	plain := sctp.New(sctp.Config{})
	return []benchTransport{
		{"transport=sctp", plain, plain},
		{"transport=sctp-dtls", sctp.New(sctp.Config{DTLS: &p.client}), sctp.New(sctp.Config{DTLS: &p.server})},
	}
}

// benchTransport is one configuration: the pool user's transport and the
// listener's.
type benchTransport struct {
	name           string
	client, server *sctp.Transport
}

// listen listens on the server's transport at a free loopback port, until
// the benchmark ends.
func (tc benchTransport) listen(b *testing.B) transport.Listener {
	l, err := tc.server.Listen(transport.Addr{Kind: transport.KindSCTPUDP, AddrPort: netip.MustParseAddrPort("127.0.0.1:0")})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { l.Close() })
	return l
}

// open opens an association from the client's transport to l: both ends,
// once Dial and Accept returned.
func (tc benchTransport) open(b *testing.B, ctx context.Context, l transport.Listener) (c, s transport.Conn) {
	c, err := tc.client.Dial(ctx, l.Addr())
	if err != nil {
		b.Fatal(err)
	}
	s, err = l.Accept(ctx)
	if err != nil {
		b.Fatal(err)
	}
	return c, s
}

// BenchmarkHandshake measures opening an association on loopback until
// both ends have it (Dial and Accept return), and aborting it: the SCTP
// four-way handshake, after the DTLS handshake (with its HelloVerifyRequest
// round trip and ECDHE and ECDSA operations on both sides) for sctp-dtls.
// Besides the mean (ns/op, which includes the aborts) it reports the
// median of Dial and Accept alone (p50-ns/handshake).
func BenchmarkHandshake(b *testing.B) {
	for _, tc := range benchTransports(b) {
		b.Run(tc.name, func(b *testing.B) {
			l := tc.listen(b)
			ctx := context.Background()
			var took []time.Duration
			b.ReportAllocs()
			for b.Loop() {
				start := time.Now()
				c, s := tc.open(b, ctx, l)
				took = append(took, time.Since(start))
				_ = c.Abort()
				_ = s.Abort()
			}
			// The median handshake, which a stall of the machine (the
			// mean's outliers) does not move.
			slices.Sort(took)
			b.ReportMetric(float64(took[len(took)/2].Nanoseconds()), "p50-ns/handshake")
		})
	}
}

// BenchmarkAssociationMemory reports the heap one established association
// holds, both ends together (B/assoc): the heap in use after opening
// assocsPerRound associations on loopback, less the heap before, divided
// by their number.
func BenchmarkAssociationMemory(b *testing.B) {
	const assocsPerRound = 32
	for _, tc := range benchTransports(b) {
		b.Run(tc.name, func(b *testing.B) {
			l := tc.listen(b)
			ctx := context.Background()
			var total float64
			rounds := 0
			for b.Loop() {
				before := heapInUse()
				conns := make([]transport.Conn, 0, 2*assocsPerRound)
				for range assocsPerRound {
					c, s := tc.open(b, ctx, l)
					conns = append(conns, c, s)
				}
				total += float64(heapInUse()-before) / assocsPerRound
				rounds++
				for _, c := range conns {
					_ = c.Abort()
				}
			}
			b.ReportMetric(total/float64(rounds), "B/assoc")
		})
	}
}

// heapInUse is the heap in use after a collection; the second one also
// empties the sync.Pools, whose contents the first only moves aside.
func heapInUse() int64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}
