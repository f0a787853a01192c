// Package directtest checks a transport's fast paths (package direct)
// against their contract: order kept across pushed and received messages,
// the end reported after every message, TrySend's errors matching Send's.
package directtest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/go-rserpool/rserpool/internal/direct"
	"github.com/go-rserpool/rserpool/transport"
	"github.com/go-rserpool/rserpool/transport/transporttest"
)

// Pair opens one association and returns its two ends.
type Pair func(t *testing.T) (a, b transport.Conn)

// Run runs every check on associations from pair; each check is bounded
// by timeout.
func Run(t *testing.T, pair Pair, timeout time.Duration) {
	t.Run("PushKeepsOrder", func(t *testing.T) { pushKeepsOrder(t, pair, timeout) })
	t.Run("TrySend", func(t *testing.T) { trySend(t, pair) })
}

// pushKeepsOrder sends n messages while the receiving end's push function
// refuses some of them (in runs, as a full loop queue would): the
// messages handed on, by push or by Recv followed by Resume, come in the
// order sent, every one of them, both ways of delivery are used, and the
// peer's close is reported after the last.
func pushKeepsOrder(t *testing.T, pair Pair, timeout time.Duration) {
	const n = 300
	a, b := pair(t)
	p, ok := b.(direct.Pusher)
	if !ok {
		t.Fatalf("%T is not a direct.Pusher", b)
	}
	var (
		mu      sync.Mutex
		got     []int
		offers  int
		pushed  int
		fromRcv int
	)
	progress := make(chan struct{}, n)
	record := func(m transport.Message) {
		var i int
		if _, err := fmt.Sscanf(string(m.Data), "m%d", &i); err != nil {
			t.Errorf("unexpected message %q", m.Data)
		}
		got = append(got, i)
		progress <- struct{}{} // room for all n: never blocks
	}
	p.SetPush(func(m transport.Message) bool {
		mu.Lock()
		defer mu.Unlock()
		offers++
		if offers%7 < 3 { // refuse three in every seven offers
			return false
		}
		record(m)
		pushed++
		return true
	})
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	ended := make(chan error, 1)
	go func() {
		for {
			m, err := b.Recv(ctx)
			if err != nil {
				mu.Lock()
				if len(got) != n {
					err = fmt.Errorf("end reported after %d of %d messages: %w", len(got), n, err)
				}
				mu.Unlock()
				ended <- err
				return
			}
			mu.Lock()
			record(m)
			fromRcv++
			mu.Unlock()
			p.Resume()
		}
	}()
	// The first half is paced (each message handed on before the next is
	// sent), so that offers alternate between taken and refused; the
	// second half goes in a burst, so that pushing resumes while messages
	// still wait for Recv.
	for i := range n {
		if err := a.Send(ctx, transport.Message{PPID: 11, Data: fmt.Appendf(nil, "m%d", i)}); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
		if i < n/2 {
			select {
			case <-progress:
			case <-ctx.Done():
				t.Fatalf("message %d not handed on: %v", i, ctx.Err())
			}
		}
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	err := <-ended
	if !errors.Is(err, transport.ErrPeerClosed) {
		t.Fatalf("Recv ended with %v, want ErrPeerClosed after all %d messages", err, n)
	}
	mu.Lock()
	defer mu.Unlock()
	for i, v := range got {
		if v != i {
			t.Fatalf("message %d handed on in place %d (order %v...)", v, i, got[:min(len(got), i+5)])
		}
	}
	if pushed == 0 || fromRcv == 0 {
		t.Errorf("pushed %d, received %d: both paths should have been used", pushed, fromRcv)
	}
	t.Logf("%d pushed, %d through Recv", pushed, fromRcv)
	_ = b.Close()
}

// trySend checks TrySend: a message arrives, and the errors are Send's.
func trySend(t *testing.T, pair Pair) {
	a, b := pair(t)
	s, ok := a.(direct.Sender)
	if !ok {
		t.Fatalf("%T is not a direct.Sender", a)
	}
	data := []byte("hello")
	sent, err := s.TrySend(transport.Message{PPID: 11, Data: data})
	if !sent || err != nil {
		t.Fatalf("TrySend = %v, %v; want true, nil", sent, err)
	}
	data[0] = 'X' // TrySend must not keep it
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m, err := b.Recv(ctx)
	if err != nil || string(m.Data) != "hello" || m.PPID != 11 {
		t.Fatalf("Recv = %q (PPID %d), %v; want hello", m.Data, m.PPID, err)
	}
	if sent, err := s.TrySend(transport.Message{PPID: 11}); !sent || !errors.Is(err, transport.ErrEmptyMessage) {
		t.Errorf("empty: TrySend = %v, %v; want true, ErrEmptyMessage", sent, err)
	}
	big := make([]byte, transport.MaxMessageSize+1)
	if sent, err := s.TrySend(transport.Message{PPID: 11, Data: big}); !sent || !errors.Is(err, transport.ErrMessageTooLarge) {
		t.Errorf("too large: TrySend = %v, %v; want true, ErrMessageTooLarge", sent, err)
	}
	_ = a.Close()
	if sent, err := s.TrySend(transport.Message{PPID: 11, Data: data}); !sent || !errors.Is(err, transport.ErrClosed) {
		t.Errorf("after Close: TrySend = %v, %v; want true, ErrClosed", sent, err)
	}
	_ = b.Close()
}

// Factory makes pairs over the transports of f (transporttest.Connect).
func Factory(f transporttest.Factory) Pair {
	return func(t *testing.T) (transport.Conn, transport.Conn) { return transporttest.Connect(t, f) }
}
