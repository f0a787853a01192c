// Package crashhost wraps a transport.Transport as the host of a process
// that can crash, for the demo and the tests that kill pool elements: Crash
// aborts every association made on the host (as the kernel does for a
// process that dies), and from then on the host dials nothing and aborts
// what its listeners accept, so nothing more leaves it and it never
// deregisters.
package crashhost

import (
	"context"
	"errors"
	"sync"

	"github.com/go-rserpool/rserpool/transport"
)

// ErrCrashed is Dial's error on a crashed host.
var ErrCrashed = errors.New("crashhost: host crashed")

// Transport is a host that can crash. Its zero value is not usable: make
// it with New.
type Transport struct {
	transport.Transport
	mu    sync.Mutex
	conns []transport.Conn
	dead  bool
}

// New is a live host on tr.
func New(tr transport.Transport) *Transport { return &Transport{Transport: tr} }

// Kind passes the wrapped transport's kind on (transport.KindReporter);
// 0 when it reports none.
func (t *Transport) Kind() transport.Kind {
	if k, ok := t.Transport.(transport.KindReporter); ok {
		return k.Kind()
	}
	return 0
}

// track keeps c for Crash; false when the host is dead already.
func (t *Transport) track(c transport.Conn) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.dead {
		return false
	}
	t.conns = append(t.conns, c)
	return true
}

// Dial dials on the wrapped transport; it fails with ErrCrashed once the
// host crashed.
func (t *Transport) Dial(ctx context.Context, to transport.Addr) (transport.Conn, error) {
	t.mu.Lock()
	dead := t.dead
	t.mu.Unlock()
	if dead {
		return nil, ErrCrashed
	}
	c, err := t.Transport.Dial(ctx, to)
	if err != nil {
		return nil, err
	}
	if !t.track(c) {
		c.Abort()
		return nil, ErrCrashed
	}
	return c, nil
}

// Listen listens on the wrapped transport; what the listener accepts
// after the crash is aborted.
func (t *Transport) Listen(at transport.Addr) (transport.Listener, error) {
	l, err := t.Transport.Listen(at)
	if err != nil {
		return nil, err
	}
	return &listener{Listener: l, host: t}, nil
}

// Crash aborts every association dialled or accepted on the host; the
// host stays dead. Crashing twice does nothing more.
func (t *Transport) Crash() {
	t.mu.Lock()
	conns := t.conns
	t.conns, t.dead = nil, true
	t.mu.Unlock()
	for _, c := range conns {
		c.Abort()
	}
}

type listener struct {
	transport.Listener
	host *Transport
}

func (l *listener) Accept(ctx context.Context) (transport.Conn, error) {
	for {
		c, err := l.Listener.Accept(ctx)
		if err != nil {
			return nil, err
		}
		if l.host.track(c) {
			return c, nil
		}
		c.Abort()
	}
}
