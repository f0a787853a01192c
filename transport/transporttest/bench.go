package transporttest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/go-rserpool/rserpool/transport"
)

// RoundTripSize is the size of the request and of the answer in the
// round-trip benchmark.
const RoundTripSize = 100

// RoundTripAssocs are the association counts BenchmarkRoundTrip runs,
// each as a sub-benchmark "assocs=N".
var RoundTripAssocs = []int{1, 64}

// RoundTripFunc does one request/response on one association: it sends
// req (RoundTripSize bytes) and waits for the peer's answer of the same
// size. Each RoundTripFunc is called from one goroutine at a time.
type RoundTripFunc func(req []byte) error

// BenchmarkRoundTrip measures request/response round trips of a
// RoundTripSize-byte message through the transports f makes, over 1 and
// over 64 concurrent associations on one listener. Each operation is one
// round trip on every association at once; the metric "msgs/s" is round
// trips per second over all associations.
func BenchmarkRoundTrip(b *testing.B, f Factory) {
	BenchmarkRoundTripFuncs(b, func(b *testing.B, n int) []RoundTripFunc {
		return transportRoundTrips(b, f, n)
	})
}

// BenchmarkRoundTripFuncs is the body of BenchmarkRoundTrip for
// associations that are not behind a transport.Transport: setup opens n
// associations with an echo server behind each, registers their cleanup
// on b, and returns one RoundTripFunc per association.
func BenchmarkRoundTripFuncs(b *testing.B, setup func(b *testing.B, n int) []RoundTripFunc) {
	for _, n := range RoundTripAssocs {
		b.Run(fmt.Sprintf("assocs=%d", n), func(b *testing.B) {
			rts := setup(b, n)
			if len(rts) != n {
				b.Fatalf("setup returned %d round trippers, want %d", len(rts), n)
			}
			req := pattern(n, RoundTripSize)
			// One worker per association; each operation starts one round
			// trip on every worker and waits for all of them.
			start := make([]chan struct{}, n)
			done := make(chan error, n)
			var wg sync.WaitGroup
			for i, rt := range rts {
				start[i] = make(chan struct{}, 1)
				wg.Add(1)
				go func() {
					defer wg.Done()
					for range start[i] {
						done <- rt(req)
					}
				}()
			}
			defer func() {
				for _, ch := range start {
					close(ch)
				}
				wg.Wait()
			}()
			b.ReportAllocs()
			b.SetBytes(2 * RoundTripSize * int64(n))
			for b.Loop() {
				for _, ch := range start {
					ch <- struct{}{}
				}
				for range n {
					if err := <-done; err != nil {
						b.Fatal(err)
					}
				}
			}
			b.ReportMetric(float64(b.N)*float64(n)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}

// transportRoundTrips dials n associations to an echo server.
func transportRoundTrips(b *testing.B, f Factory, n int) []RoundTripFunc {
	client, server, at := f(b)
	l, err := server.Listen(at)
	if err != nil {
		b.Fatalf("Listen(%v): %v", at, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	b.Cleanup(func() {
		cancel()
		l.Close()
		wg.Wait()
	})
	wg.Add(1)
	go func() { // accept loop: one echo goroutine per association
		defer wg.Done()
		for {
			s, err := l.Accept(ctx)
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
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
			}()
		}
	}()
	rts := make([]RoundTripFunc, n)
	for i := range rts {
		c, err := client.Dial(ctx, l.Addr())
		if err != nil {
			b.Fatalf("Dial(%v): %v", l.Addr(), err)
		}
		b.Cleanup(func() { c.Close() })
		rts[i] = func(req []byte) error {
			if err := c.Send(ctx, transport.Message{PPID: transport.PPIDASAP, Data: req}); err != nil {
				return err
			}
			m, err := c.Recv(ctx)
			if err != nil {
				return err
			}
			if len(m.Data) != len(req) {
				return errors.New("transporttest: answer of the wrong size")
			}
			return nil
		}
	}
	return rts
}
