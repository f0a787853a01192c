package memnet_test

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/go-rserpool/rserpool/transport"
	"github.com/go-rserpool/rserpool/transport/memnet"
)

// Outside step mode, a message over a perfect link (delivered at once,
// without an event) must not overtake one still on its way: one held by a
// partition and scheduled by Heal, or one sent while the link had a delay.
func TestFastPathKeepsOrder(t *testing.T) {
	for _, tc := range []struct {
		name          string
		before, after func(n *memnet.Network, a, b *memnet.Node)
	}{
		{"heal", func(n *memnet.Network, a, b *memnet.Node) { n.Partition([]*memnet.Node{a}, []*memnet.Node{b}) },
			func(n *memnet.Network, a, b *memnet.Node) { n.Heal() }},
		{"link", func(n *memnet.Network, a, b *memnet.Node) { n.SetLink(a, b, memnet.Link{Delay: 10 * time.Millisecond}) },
			func(n *memnet.Network, a, b *memnet.Node) { n.SetLink(a, b, memnet.Link{}) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				n := memnet.New(1, memnet.WithRTO(10*time.Millisecond))
				defer n.Close()
				a, b := n.NewNode(), n.NewNode()
				c, s := openPair(t, a, b)
				ctx := context.Background()
				tc.before(n, a, b)
				c.Send(ctx, transport.Message{PPID: 1, Data: []byte("A")})
				synctest.Wait()
				tc.after(n, a, b)
				c.Send(ctx, transport.Message{PPID: 1, Data: []byte("B")})
				for _, want := range []string{"A", "B"} {
					m, err := s.Recv(ctx)
					if err != nil || string(m.Data) != want {
						t.Fatalf("Recv = %q, %v; want %s", m.Data, err, want)
					}
				}
			})
		})
	}
}

// openPair opens an association from a to a listener on b (closed with
// the test) and returns both ends.
func openPair(t *testing.T, a, b *memnet.Node) (client, server transport.Conn) {
	t.Helper()
	l, err := b.Listen(b.Addr(transport.PortASAP))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	ctx := context.Background()
	c, err := a.Dial(ctx, l.Addr())
	if err != nil {
		t.Fatal(err)
	}
	s, err := l.Accept(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return c, s
}

// Close ends every Recv waiting on the closed end, whether its context can
// end or not (a Recv with one that cannot waits on a plain channel receive).
func TestCloseEndsWaitingReceivers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := memnet.New(1)
		defer n.Close()
		a, b := n.NewNode(), n.NewNode()
		c, _ := openPair(t, a, b)
		cctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		errs := make(chan error, 4)
		for _, ctx := range []context.Context{context.Background(), context.Background(), cctx, cctx} {
			go func() {
				_, err := c.Recv(ctx)
				errs <- err
			}()
		}
		synctest.Wait() // all four wait
		c.Close()
		for range 4 {
			if err := <-errs; !errors.Is(err, transport.ErrClosed) {
				t.Fatalf("Recv after Close: %v, want ErrClosed", err)
			}
		}
	})
}
