// Package echo is the tiny application protocol the example programs
// speak between a pool user and a pool element: the pool user sends one
// message, the pool element answers with the same bytes prefixed by its
// name. It runs over any transport.Conn (user-space SCTP in the examples),
// next to ASAP, which only finds the pool element.
package echo

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-rserpool/rserpool/asap"
	"github.com/go-rserpool/rserpool/transport"
)

// PPID is the SCTP payload protocol identifier of echo messages. 0 means
// "not specified" (RFC 9260 §3.3.1): echo is no registered protocol.
const PPID uint32 = 0

// Serve answers every message on every association ln accepts with
// name + ": " + message, until ctx ends or ln is closed. It then closes
// the associations it accepted gracefully and waits for their goroutines.
func Serve(ctx context.Context, ln transport.Listener, name string) error {
	return (&Server{Name: name}).Serve(ctx, ln)
}

// Server is an echo server that can also be made to fail: Kill aborts
// its associations at once, as if its process had died, and Freeze makes
// it hang.
type Server struct {
	Name string

	mu     sync.Mutex
	conns  map[transport.Conn]struct{}
	killed bool
	frozen atomic.Bool
}

// Serve is like the function Serve.
func (s *Server) Serve(ctx context.Context, ln transport.Listener) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		c, err := ln.Accept(ctx)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, transport.ErrClosed) {
				return nil
			}
			return err
		}
		if !s.track(c) {
			Abort(c)
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer s.untrack(c)
			s.serveConn(ctx, c)
		}()
	}
}

// Kill aborts every association the server holds and refuses new ones;
// the host closes the listener.
func (s *Server) Kill() {
	s.mu.Lock()
	s.killed = true
	conns := make([]transport.Conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		Abort(c)
	}
}

// Freeze makes the server hang: it keeps its associations and accepts new
// ones, but answers nothing any more, like a process that is stuck.
func (s *Server) Freeze() { s.frozen.Store(true) }

func (s *Server) track(c transport.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.killed {
		return false
	}
	if s.conns == nil {
		s.conns = map[transport.Conn]struct{}{}
	}
	s.conns[c] = struct{}{}
	return true
}

func (s *Server) untrack(c transport.Conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

func (s *Server) serveConn(ctx context.Context, c transport.Conn) {
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() }) // unblock Send too
	defer stop()
	for {
		m, err := c.Recv(ctx)
		if err != nil {
			return
		}
		if s.frozen.Load() {
			continue
		}
		reply := append([]byte(s.Name+": "), m.Data...)
		if err := c.Send(ctx, transport.Message{PPID: PPID, Stream: m.Stream, Data: reply}); err != nil {
			return
		}
	}
}

// Request sends msg on c and waits for the answer. It returns the name of
// the pool element that answered and the echoed text.
func Request(ctx context.Context, c transport.Conn, msg string) (from, text string, err error) {
	if err := c.Send(ctx, transport.Message{PPID: PPID, Data: []byte(msg)}); err != nil {
		return "", "", err
	}
	m, err := c.Recv(ctx)
	if err != nil {
		return "", "", err
	}
	from, text, ok := strings.Cut(string(m.Data), ": ")
	if !ok {
		return "", "", fmt.Errorf("echo: malformed answer %q", m.Data)
	}
	return from, text, nil
}

// Answer is the outcome of Call.
type Answer struct {
	From string // the answering PE's name
	PE   uint32 // its PE Identifier
	Text string // the echoed text
	// Failed lists the PEs that failed during this call, in order; each
	// was reported unreachable to the registrar before the next was tried.
	Failed []uint32
}

// MaxTries bounds the PEs one Call tries.
const MaxTries = 8

// Call sends msg to a PE of the pool and returns its answer. pu.Dial picks
// the PE with the pool's policy (resolving the handle when its cache is
// stale) and fails over when a PE cannot be reached; Call adds failover
// when a reached PE fails during the exchange or does not answer within
// timeout: it reports the PE unreachable (RFC 5352 §3.5), which drops it
// from pu's cache, and tries the next one.
func Call(ctx context.Context, pu *asap.PoolUser, handle []byte, msg string, timeout time.Duration) (Answer, error) {
	var a Answer
	var last error
	for range MaxTries {
		c, pe, err := pu.Dial(ctx, handle)
		if err != nil {
			if last != nil {
				err = fmt.Errorf("%w (after %w)", err, last)
			}
			return a, err
		}
		rctx, cancel := context.WithTimeout(ctx, timeout)
		from, text, err := Request(rctx, c, msg)
		cancel()
		if err == nil {
			c.Close()
			a.From, a.PE, a.Text = from, pe.ID, text
			return a, nil
		}
		Abort(c)
		if ctx.Err() != nil {
			return a, ctx.Err()
		}
		last = fmt.Errorf("PE 0x%08x: %w", pe.ID, err)
		a.Failed = append(a.Failed, pe.ID)
		if err := pu.ReportUnreachable(ctx, handle, pe.ID); err != nil {
			return a, err
		}
	}
	return a, fmt.Errorf("echo: %d PEs failed, last: %w", MaxTries, last)
}

// Abort ends c at once (an SCTP ABORT where the transport offers one): a
// failed PE gets no graceful shutdown to wait for.
func Abort(c transport.Conn) {
	if s, ok := c.(interface{ Shutdown(context.Context) error }); ok {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_ = s.Shutdown(ctx)
		return
	}
	_ = c.Close()
}
