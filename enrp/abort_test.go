package enrp

import (
	"context"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/go-rserpool/rserpool/tlv"
	"github.com/go-rserpool/rserpool/transport"
	"github.com/go-rserpool/rserpool/transport/memnet"
)

// stallListener wraps a listener; the first association it accepts never
// finishes a Send, like a peer that stopped reading behind a full window.
type stallListener struct {
	transport.Listener
	mu       sync.Mutex
	accepted int
}

func (l *stallListener) Accept(ctx context.Context) (transport.Conn, error) {
	c, err := l.Listener.Accept(ctx)
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.accepted++; l.accepted == 1 {
		return &stallConn{Conn: c, closed: make(chan struct{})}, nil
	}
	return c, nil
}

type stallConn struct {
	transport.Conn
	once   sync.Once
	closed chan struct{}
}

func (c *stallConn) Send(ctx context.Context, _ transport.Message) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-c.closed:
		return transport.ErrClosed
	}
}

func (c *stallConn) Close() error {
	c.once.Do(func() { close(c.closed) })
	return c.Conn.Close()
}

func (c *stallConn) Abort() error {
	c.once.Do(func() { close(c.closed) })
	return c.Conn.Abort()
}

// An association whose send queue (Config.SendQueue) fills is aborted:
// the registrar closes it and, as for any lost association, removes the
// PEs registered over it (RFC 5352 §3.7), while other associations keep
// being served.
func TestRegistrarAbortsSlowAssociation(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := t.Context()
		net := memnet.New(1)
		defer net.Close()
		regNode := net.NewNode()
		ln, err := regNode.Listen(regNode.Addr(transport.PortASAP))
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		const queue = 2
		r, err := New(Config{Listener: &stallListener{Listener: ln}, SendQueue: queue, Logger: testLogger(t)})
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- r.Run(ctx) }()
		defer func() {
			r.Close()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		}()

		pe := dial(t, ctx, net.NewNode(), r.Addr()) // the stalled one
		pe.send(ctx, pe.registration("echo", 1, time.Minute))
		synctest.Wait() // its answer sits in the writer, which is stuck
		if s := r.Stats(); s.PEs != 1 || s.Associations != 1 {
			t.Fatalf("after registration: %+v", s)
		}
		// Each resolution queues one answer; the one beyond the queue
		// aborts the association.
		for i := range queue {
			pe.send(ctx, &tlv.HandleResolution{PoolHandle: tlv.PoolHandle("echo")})
			synctest.Wait()
			if s := r.Stats(); s.PEs != 1 || s.Associations != 1 {
				t.Fatalf("after %d queued answers: %+v", i+1, s)
			}
		}
		pe.send(ctx, &tlv.HandleResolution{PoolHandle: tlv.PoolHandle("echo")})
		synctest.Wait()
		if s := r.Stats(); s.PEs != 0 || s.Associations != 0 || s.ASAP.AssocLostRemoved != 1 {
			t.Fatalf("after the queue overflowed: %+v", s)
		}
		if _, err := pe.recvWithin(ctx, time.Second); err == nil {
			t.Error("aborted association still delivers")
		}

		// The registrar still serves others.
		pu := dial(t, ctx, net.NewNode(), r.Addr())
		pu.send(ctx, &tlv.HandleResolution{PoolHandle: tlv.PoolHandle("echo")})
		if hr := recvAs[*tlv.HandleResolutionResponse](pu, ctx); hr.Error.First() != tlv.CauseUnknownPoolHandle {
			t.Errorf("resolution after the abort: %+v", hr)
		}
	})
}
