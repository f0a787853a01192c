package loop

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"github.com/go-rserpool/rserpool/internal/direct"
	"github.com/go-rserpool/rserpool/transport"
)

// ErrStopped: the loop has stopped.
var ErrStopped = errors.New("loop: stopped")

// SendQueue is how many messages a Link made by Attach buffers for
// sending. Beyond it Send fails: ASAP and ENRP retransmit on their own
// timers, and a driver that cannot afford to lose a message aborts the
// association instead (see AttachQueue).
const SendQueue = 256

// Link drives one association for a Loop: a reader goroutine posts each
// received message to the loop, a writer goroutine sends queued ones.
//
// Nothing the loop calls on a Link waits for the network or a peer: Close
// and Abort only set flags and cancel a context, and Send queues, or sends
// at once when the Conn can do that without waiting (direct.Sender), which
// takes only the transport's own short locks. The association itself is torn
// down by the Link's writer goroutine (owned by the Loop) when it stops,
// so a graceful close that waits for a slow or dead peer never holds up
// the loop. A failure is reported to the loop by the reader goroutine
// through the loop's queue, behind the messages received before it,
// while holding nothing the loop may wait for.
type Link struct {
	l      *Loop
	conn   transport.Conn
	out    chan transport.Message
	onRecv func(now time.Time, m transport.Message)
	onDown func(now time.Time, err error)
	ctx    context.Context // ends with Close, Abort or a failure; Send fails then
	cancel context.CancelFunc
	// closed is set by Close or Abort, or on the loop just before onDown:
	// received messages still queued after it are dropped. Those received
	// before a failure are handled before onDown runs.
	closed atomic.Bool
	// abort makes the writer end the association with Conn.Abort instead
	// of Conn.Close.
	abort atomic.Bool
	// failed holds the first error that ended the association.
	failed atomic.Pointer[error]
	// direct is conn's TrySend, or nil; queued counts the messages in
	// out and in the writer's hands, so that Send goes around the writer
	// only when nothing it was given earlier is still on its way.
	direct direct.Sender
	cheap  bool // direct is a direct.Cheap
	queued atomic.Int64
}

// Attach starts driving conn with a send queue of SendQueue messages.
// onRecv runs on the loop for every message; onDown runs on the loop once,
// when the association fails or is closed by the peer (not after Close or
// Abort). Both goroutines end when the Link is closed or the Loop's
// context ends; the Link then ends conn: with Conn.Abort after Abort or a
// failure, else with a graceful Conn.Close, on the Link's own goroutine.
func (l *Loop) Attach(conn transport.Conn, onRecv func(now time.Time, m transport.Message), onDown func(now time.Time, err error)) *Link {
	return l.AttachQueue(conn, SendQueue, onRecv, onDown)
}

// AttachQueue is Attach with a send queue of queue messages (SendQueue
// when queue <= 0).
func (l *Loop) AttachQueue(conn transport.Conn, queue int, onRecv func(now time.Time, m transport.Message), onDown func(now time.Time, err error)) *Link {
	if queue <= 0 {
		queue = SendQueue
	}
	ctx, cancel := context.WithCancel(l.ctx)
	k := &Link{l: l, conn: conn, out: make(chan transport.Message, queue), onRecv: onRecv, onDown: onDown, ctx: ctx, cancel: cancel}
	k.direct, _ = conn.(direct.Sender)
	_, k.cheap = conn.(direct.Cheap)
	// A Conn that can push received messages hands them to the loop's
	// queue itself while it has room, without a hand-over to the reader
	// goroutine below, which then only sees what did not fit and the end
	// of the association.
	pusher, _ := conn.(direct.Pusher)
	if pusher != nil {
		pusher.SetPush(func(m transport.Message) bool {
			if k.closed.Load() {
				return true // dropped, as the loop would drop it
			}
			return l.tryPut(work{k: k, m: m})
		})
	}
	// The writer waits on the queue alone (cheaper than a select with
	// ctx.Done for every message). When ctx ends it is woken by an empty
	// message; if the queue is full then, it is not waiting, and it sees
	// ctx at the next message it takes.
	context.AfterFunc(ctx, func() {
		select {
		case k.out <- transport.Message{}:
		default:
		}
	})
	l.Go(func(context.Context) {
		defer k.teardown()
		for {
			m := <-k.out
			if ctx.Err() != nil {
				return
			}
			if err := conn.Send(ctx, m); err != nil {
				if ctx.Err() == nil {
					k.fail(err)
				}
				return
			}
			k.queued.Add(-1)
		}
	})
	l.Go(func(context.Context) {
		for {
			m, err := conn.Recv(ctx)
			if err != nil {
				if ctx.Err() == nil {
					k.fail(err)
				}
				break
			}
			// The loop skips it if the Link is closed by then.
			if !l.put(work{k: k, m: m}) {
				return
			}
			if pusher != nil {
				pusher.Resume()
			}
		}
		// Failed (here or in the writer), not closed: tell the loop,
		// after the messages received before. This goroutine holds
		// nothing, so waiting for room in the queue cannot deadlock.
		if k.failed.Load() != nil {
			l.put(work{k: k, down: true})
		}
	})
	return k
}

// fail records the first failure and stops the Link; it never blocks.
func (k *Link) fail(err error) {
	if k.failed.CompareAndSwap(nil, &err) {
		k.cancel()
	}
}

// down runs on the loop: the failure's report, unless the Link was closed
// meanwhile.
func (k *Link) down(now time.Time) {
	if !k.closed.Swap(true) {
		k.onDown(now, *k.failed.Load())
	}
}

// teardown ends the association, on the writer goroutine: at once after
// Abort or a failure (the association is over, or the peer is not worth
// waiting for), else gracefully (RFC 9260 §9.2), which may wait for the
// peer up to the bound the transport documents. A Send refused for the
// message alone (too large, empty) leaves a working association: it is
// closed gracefully too.
func (k *Link) teardown() {
	if k.abort.Load() {
		k.conn.Abort()
		return
	}
	if p := k.failed.Load(); p != nil && !errors.Is(*p, transport.ErrMessageTooLarge) && !errors.Is(*p, transport.ErrEmptyMessage) {
		k.conn.Abort()
		return
	}
	k.conn.Close()
}

// Send queues m, which the Link owns from then on. It reports false,
// without blocking, when the queue is full or the link is closed or has
// failed. When nothing is queued before it and the Conn can send without
// waiting (direct.Sender), m is sent at once, on the caller's goroutine;
// a failure then ends the Link as a failure of the writer would: Send
// reports true, as for a message queued that the writer then fails to
// send, and Err says why.
func (k *Link) Send(m transport.Message) bool {
	return k.send(m, false)
}

// SendCopy is Send for a message whose Data the caller keeps: Data is
// copied only if the message has to be queued.
func (k *Link) SendCopy(m transport.Message) bool {
	return k.send(m, true)
}

func (k *Link) send(m transport.Message, borrowed bool) bool {
	if k.ctx.Err() != nil {
		return false
	}
	// Around the writer only when that keeps order (nothing queued before
	// m) and does not hold up other work: a send the loop makes itself
	// delays what waits in its queue, while the writer would make it on
	// another core, unless the send costs no more than the hand-over.
	if k.direct != nil && k.queued.Load() == 0 && (k.cheap || len(k.l.work) == 0) {
		sent, err := k.direct.TrySend(m)
		if err != nil {
			k.fail(err)
			return true // as if queued: the failure is reported as the writer's would be
		}
		if sent {
			return true
		}
	}
	if len(k.out) == cap(k.out) {
		return false // full: no copy for a message refused
	}
	if borrowed {
		m.Data = append([]byte(nil), m.Data...)
	}
	k.queued.Add(1)
	select {
	case k.out <- m:
		return true
	default:
		k.queued.Add(-1)
		return false
	}
}

// Err returns the error that ended the association (its report to onDown
// may still be on its way), or nil.
func (k *Link) Err() error {
	if p := k.failed.Load(); p != nil {
		return *p
	}
	return nil
}

// Conn returns the association.
func (k *Link) Conn() transport.Conn { return k.conn }

// Close stops the link; its writer goroutine then closes the association
// gracefully (Conn.Close), without holding up the caller. onDown is not
// called, and messages received but not yet handled are dropped. Close
// never blocks, so the loop may call it.
func (k *Link) Close() {
	k.closed.Store(true)
	k.cancel()
}

// Abort is Close, but the association is ended with Conn.Abort (RFC 9260
// §9.1): nothing still queued is sent, and nobody waits for the peer. A
// driver aborts an association that cannot keep up with its send queue
// this way. Abort after Close does not cut short a graceful close the
// writer has already begun.
func (k *Link) Abort() {
	k.abort.Store(true)
	k.Close()
}

// Accept accepts associations from ln on a goroutine owned by the loop,
// until the Loop's context ends. onConn runs on the loop with each one (if
// the loop stops first, the association is closed). When Accept fails
// otherwise, onErr runs on the loop once and accepting stops. The Loop
// does not close ln.
func (l *Loop) Accept(ln transport.Listener, onConn func(now time.Time, c transport.Conn), onErr func(now time.Time, err error)) {
	l.Go(func(ctx context.Context) {
		for {
			c, err := ln.Accept(ctx)
			if err != nil {
				if ctx.Err() == nil {
					l.Post(func(now time.Time) { onErr(now, err) })
				}
				return
			}
			if !l.put(work{f: func(now time.Time) { onConn(now, c) }, c: c}) {
				c.Abort() // never served: nobody waits for its peer
				return
			}
		}
	})
}

// Dial dials to on a goroutine owned by the loop, giving up after timeout
// (0: no limit) or when the returned cancel func is called. done runs on
// the loop with the association or the error; after cancel, or when the
// loop stops first, a late association is closed and done is not called.
func (l *Loop) Dial(tr transport.Transport, to transport.Addr, timeout time.Duration, done func(now time.Time, c transport.Conn, err error)) (cancel func()) {
	return l.DialWith(tr.Dial, to, timeout, done)
}

// DialWith is Dial with the dial function given, for example an
// endpoint's DialFrom (transport.Endpoint).
func (l *Loop) DialWith(dial func(ctx context.Context, to transport.Addr) (transport.Conn, error), to transport.Addr, timeout time.Duration, done func(now time.Time, c transport.Conn, err error)) (cancel func()) {
	ctx, stop := context.WithCancel(l.ctx)
	if timeout > 0 {
		ctx, stop = context.WithTimeout(l.ctx, timeout)
	}
	var cancelled atomic.Bool
	l.Go(func(context.Context) {
		defer stop()
		c, err := dial(ctx, to)
		if err != nil {
			c = nil // a dial that failed gives no association, whatever it returned
		}
		posted := l.put(work{f: func(now time.Time) {
			if cancelled.Load() {
				if c != nil {
					c.Abort() // on the loop: it must not wait for the peer
				}
				return // nobody waits for it any more
			}
			done(now, c, err)
		}, c: c})
		if !posted && c != nil {
			c.Abort()
		}
	})
	return func() {
		cancelled.Store(true)
		stop()
	}
}
