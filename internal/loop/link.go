package loop

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-rserpool/rserpool/transport"
)

// ErrStopped: the loop has stopped.
var ErrStopped = errors.New("loop: stopped")

// SendQueue is how many messages a Link buffers for sending. Beyond it
// Send drops: ASAP and ENRP retransmit on their own timers.
const SendQueue = 256

// Link drives one association for a Loop: a reader goroutine posts each
// received message to the loop, a writer goroutine sends queued ones.
type Link struct {
	conn   transport.Conn
	out    chan transport.Message
	cancel context.CancelFunc
	once   sync.Once
}

// Attach starts driving conn. onRecv runs on the loop for every message;
// onDown runs on the loop once, when the association fails or is closed
// by the peer (not after Close). Both goroutines end when the Link is
// closed or the Loop's context ends; the Link then closes conn.
func (l *Loop) Attach(conn transport.Conn, onRecv func(now time.Time, m transport.Message), onDown func(now time.Time, err error)) *Link {
	ctx, cancel := context.WithCancel(l.ctx)
	k := &Link{conn: conn, out: make(chan transport.Message, SendQueue), cancel: cancel}
	l.Go(func(context.Context) {
		defer conn.Close()
		for {
			select {
			case <-ctx.Done():
				return
			case m := <-k.out:
				if err := conn.Send(ctx, m); err != nil {
					if ctx.Err() == nil {
						k.fail(l, onDown, err)
					}
					return
				}
			}
		}
	})
	l.Go(func(context.Context) {
		for {
			m, err := conn.Recv(ctx)
			if err != nil {
				if ctx.Err() == nil {
					k.fail(l, onDown, err)
				}
				return
			}
			if !l.Post(func(now time.Time) {
				if ctx.Err() == nil {
					onRecv(now, m)
				}
			}) {
				return
			}
		}
	})
	return k
}

func (k *Link) fail(l *Loop, onDown func(time.Time, error), err error) {
	k.once.Do(func() {
		k.cancel()
		k.conn.Close()
		l.Post(func(now time.Time) { onDown(now, err) })
	})
}

// Send queues m; it reports false when the queue is full or the link is
// closed.
func (k *Link) Send(m transport.Message) bool {
	select {
	case k.out <- m:
		return true
	default:
		return false
	}
}

// Conn returns the association.
func (k *Link) Conn() transport.Conn { return k.conn }

// Close stops the link and closes the association; onDown is not called.
func (k *Link) Close() {
	k.once.Do(func() {
		k.cancel()
		k.conn.Close()
	})
}

// Dial dials to on a goroutine owned by the loop, giving up after timeout
// (0: no limit) or when the returned cancel func is called. done runs on
// the loop with the association or the error; after cancel, a late
// association is closed and done is not called.
func (l *Loop) Dial(tr transport.Transport, to transport.Addr, timeout time.Duration, done func(now time.Time, c transport.Conn, err error)) (cancel func()) {
	ctx, stop := context.WithCancel(l.ctx)
	if timeout > 0 {
		ctx, stop = context.WithTimeout(l.ctx, timeout)
	}
	var cancelled atomic.Bool
	l.Go(func(context.Context) {
		defer stop()
		c, err := tr.Dial(ctx, to)
		posted := l.Post(func(now time.Time) {
			if cancelled.Load() {
				if c != nil {
					c.Close()
				}
				return // nobody waits for it any more
			}
			done(now, c, err)
		})
		if !posted && c != nil {
			c.Close()
		}
	})
	return func() {
		cancelled.Store(true)
		stop()
	}
}
