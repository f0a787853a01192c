package sctp

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/go-rserpool/rserpool/transport"
)

// floodMemory opens n associations to a listener with cfg whose Conns are
// never read, has each peer send msgSize-byte messages round robin on
// streams streams until the receiver stops taking them (a Send blocks for
// two seconds), and returns the growth of the heap per association (both
// ends, as both are in this process) and the bytes each one took in.
func floodMemory(t *testing.T, cfg Config, n, streams, msgSize int) (perAssoc uint64, sent int64) {
	t.Helper()
	l := listen(t, cfg)
	heap := func() uint64 {
		runtime.GC()
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapInuse
	}
	before := heap()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sender := New(Config{SendBuffer: 16 << 10})
	var servers, clients []transport.Conn
	defer func() {
		for _, c := range append(clients, servers...) {
			_ = c.Abort()
		}
	}()
	for range n {
		c, err := sender.Dial(ctx, l.Addr())
		if err != nil {
			t.Fatal(err)
		}
		clients = append(clients, c)
		s, err := l.Accept(ctx)
		if err != nil {
			t.Fatal(err)
		}
		servers = append(servers, s)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	msg := make([]byte, msgSize)
	const stall = 2 * time.Second
	const most = 64 << 20 // per association
	for _, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			total := 0
			for total < most {
				sctx, scancel := context.WithTimeout(ctx, stall)
				err := c.Send(sctx, transport.Message{PPID: 11, Stream: uint16(total / msgSize % streams), Data: msg})
				scancel()
				if err != nil {
					if !errors.Is(err, context.DeadlineExceeded) {
						t.Error(err)
					}
					break
				}
				total += msgSize
			}
			mu.Lock()
			sent += int64(total)
			mu.Unlock()
		}()
	}
	wg.Wait()
	after := heap()
	if after < before {
		return 0, sent
	}
	return (after - before) / uint64(n), sent
}

// Finding 6, receive buffers: a peer sending as fast as it can into a Conn
// that is never read makes it hold at most ReceiveWindow + RecvQueueBytes
// (+ one message per stream reader), not pion's 1 MiB window plus 64
// messages plus one message per stream it opens (limits off below, the
// old behaviour: about 9 MiB per association with 64 streams).
func TestFloodMemory(t *testing.T) {
	const n, size = 8, transport.MaxMessageSize
	if !testing.Short() {
		off := Config{ReceiveWindow: -1, RecvQueueBytes: -1, MaxStreams: -1}
		per, in := floodMemory(t, off, n, 64, size)
		t.Logf("limits off, 64 streams: %d KiB heap per flooding association, %d KiB taken in", per>>10, in/n>>10)
	}
	per, in := floodMemory(t, Config{}, n, DefaultMaxStreams, size)
	t.Logf("defaults, %d streams: %d KiB heap per flooding association, %d KiB taken in", DefaultMaxStreams, per>>10, in/n>>10)
	if want := DefaultReceiveWindow + DefaultRecvQueueBytes; in/n > int64(want+DefaultMaxStreams*size) {
		t.Errorf("an association took in %d bytes; want at most %d + one message per stream", in/n, want)
	}
	// The rest is the two ends' fixed state and the sender's buffers.
	if bound := uint64(DefaultReceiveWindow + DefaultRecvQueueBytes + DefaultMaxStreams*size + 2<<20); per > bound {
		t.Errorf("%d KiB heap per flooding association, want at most %d KiB", per>>10, bound>>10)
	}
}
