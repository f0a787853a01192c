package memnet_test

import (
	"testing"
	"time"

	"github.com/go-rserpool/rserpool/internal/direct/directtest"
	"github.com/go-rserpool/rserpool/transport"
	"github.com/go-rserpool/rserpool/transport/memnet"
	"github.com/go-rserpool/rserpool/transport/transporttest"
)

func factory(opts ...memnet.Option) transporttest.Factory {
	return func(t testing.TB) (client, server transport.Transport, listenAt transport.Addr) {
		n := memnet.New(1, opts...)
		t.Cleanup(func() { n.Close() })
		return n.NewNode(), n.NewNode(), transport.Addr{Kind: transport.KindMem}
	}
}

func TestConformance(t *testing.T) {
	t.Run("links=perfect", func(t *testing.T) {
		transporttest.Run(t, factory())
	})
	// Delay, jitter and loss on real timers: order per stream must hold
	// while streams overtake each other and losses turn into delay.
	t.Run("links=lossy", func(t *testing.T) {
		transporttest.Run(t, factory(
			memnet.WithLink(memnet.Link{Loss: 0.05, Delay: 50 * time.Microsecond, Jitter: 200 * time.Microsecond}),
			memnet.WithRTO(time.Millisecond)))
	})
}

func BenchmarkRoundTrip(b *testing.B) {
	b.Run("transport=memnet", func(b *testing.B) {
		transporttest.BenchmarkRoundTrip(b, factory())
	})
}

// TestDirect checks memnet's fast paths for the driver loop (TrySend,
// SetPush and Resume of package direct), over a perfect link and a lossy
// one whose messages go through the event queue.
func TestDirect(t *testing.T) {
	t.Run("links=perfect", func(t *testing.T) {
		directtest.Run(t, directtest.Factory(factory()), 10*time.Second)
	})
	t.Run("links=lossy", func(t *testing.T) {
		directtest.Run(t, directtest.Factory(factory(
			memnet.WithLink(memnet.Link{Loss: 0.05, Delay: 50 * time.Microsecond, Jitter: 200 * time.Microsecond}),
			memnet.WithRTO(time.Millisecond))), 10*time.Second)
	})
}
