package sctp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"

	pionsctp "github.com/pion/sctp"

	"github.com/go-rserpool/rserpool/internal/direct"
	"github.com/go-rserpool/rserpool/transport"
)

var (
	_ direct.Sender = (*Conn)(nil)
	_ direct.Pusher = (*Conn)(nil)
)

// recvQueueLen is how many received messages wait for Recv before the
// stream readers stop taking data from pion, which then closes the receive
// window.
const recvQueueLen = 64

// readScratch is the size of the buffer a stream reader first reads into;
// bigger messages get a buffer of their own size.
const readScratch = 2048

// Conn is one SCTP association carried over UDP. It implements
// [transport.Conn]. Its methods are safe for concurrent use.
type Conn struct {
	assoc  *pionsctp.Association
	wire   wireObserver
	local  transport.Addr
	remote transport.Addr
	cfg    *Config
	onEnd  func(*Conn) // called once when Close finishes; may be nil

	recvCh chan transport.Message
	queued atomic.Int64  // bytes of the messages in recvCh
	room   chan struct{} // Recv took a message; capacity 1

	// push is offered each received message while waiting is 0
	// (direct.Pusher); waiting counts the messages sent into recvCh and
	// not yet handed on by Recv's caller (Resume). Both under pushMu.
	pushMu  sync.Mutex
	push    func(transport.Message) bool
	waiting int

	mu      sync.Mutex
	streams map[uint16]*stream
	ending  bool // the association ended; no more stream readers
	readers sync.WaitGroup

	readErr   error         // first error a stream reader saw; under mu
	localErr  error         // why we aborted on our own; under mu
	termErr   error         // set before assocDone is closed
	assocDone chan struct{} // the association ended and every reader stopped
	loopDone  chan struct{} // the accept loop returned

	sup *supervisor // path supervision; nil when turned off

	peer    transport.Identity // verified by DTLS; set before the Conn is handed out
	secured bool               // the association runs over DTLS

	closing   atomic.Bool
	closed    chan struct{} // Close was called
	closeOnce sync.Once
	closeErr  error
}

// stream is one pion stream and the signal that its send buffer drained.
type stream struct {
	s       *pionsctp.Stream
	drained chan struct{}
}

// wireObserver is implemented by the net.Conn under an association: it
// reports what closing chunks the peer sent and when the latest packet
// from the peer arrived (see liveness), and asks the peer for an immediate
// SACK when the association starts to shut down (see sackPrompter).
type wireObserver interface {
	seen() chunkFlags
	lastReceived() int64 // monoNow() of the latest packet from the peer; 0 before any
	promptSack()
}

func newConn(assoc *pionsctp.Association, w wireObserver, local, remote transport.Addr, cfg *Config, onEnd func(*Conn)) (*Conn, error) {
	c := &Conn{
		assoc:     assoc,
		wire:      w,
		local:     local,
		remote:    remote,
		cfg:       cfg,
		onEnd:     onEnd,
		recvCh:    make(chan transport.Message, recvQueueLen),
		room:      make(chan struct{}, 1),
		streams:   make(map[uint16]*stream),
		assocDone: make(chan struct{}),
		loopDone:  make(chan struct{}),
		closed:    make(chan struct{}),
	}
	// Stream 0 always has a reader, so that the end of the association is
	// seen even if the peer never sends anything.
	if _, err := c.stream(0); err != nil {
		assoc.Abort("")
		_ = assoc.Close()
		return nil, err
	}
	c.startSupervision()
	go c.acceptLoop()
	return c, nil
}

// acceptLoop takes the streams the peer opens (pion drops new streams when
// more than 16 wait to be accepted) and gives each one a reader. When the
// association ends it waits for the readers and publishes the final error.
func (c *Conn) acceptLoop() {
	defer close(c.loopDone)
	for {
		s, err := c.assoc.AcceptStream()
		if err != nil {
			break
		}
		if id := int(s.StreamIdentifier()); id >= c.cfg.MaxStreams {
			// Beyond the MIS we advertised (RFC 9260 §5.1.1): no reader
			// for it, and the association goes.
			c.mu.Lock()
			failed := c.localErr != nil
			c.mu.Unlock()
			if !failed {
				c.fail(fmt.Errorf("%w: %w: stream %d (limit %d)", transport.ErrAssociationLost, ErrTooManyStreams, id, c.cfg.MaxStreams))
			}
			continue
		}
		c.mu.Lock()
		if _, ok := c.streams[s.StreamIdentifier()]; !ok && !c.ending {
			c.addStreamLocked(s)
		}
		c.mu.Unlock()
	}
	c.mu.Lock()
	c.ending = true
	c.mu.Unlock()
	c.sup.stop() // nothing left to supervise
	c.readers.Wait()
	c.termErr = c.classify()
	close(c.assocDone)
}

// classify turns the way the association ended into a transport error.
func (c *Conn) classify() error {
	c.mu.Lock()
	readErr, localErr := c.readErr, c.localErr
	c.mu.Unlock()
	seen := c.wire.seen()
	switch {
	case localErr != nil:
		return localErr
	case c.closing.Load():
		return transport.ErrClosed
	case seen&sawAbort != 0:
		// An ABORT is the COMMUNICATION LOST notification of RFC 9260 §10.2.
		return fmt.Errorf("%w: peer sent ABORT", transport.ErrAssociationLost)
	case seen&sawShutdown != 0:
		// SHUTDOWN COMPLETE notification (RFC 9260 §9.2, §10.2).
		return transport.ErrPeerClosed
	case readErr != nil:
		return fmt.Errorf("%w: %w", transport.ErrAssociationLost, readErr)
	default:
		return transport.ErrAssociationLost
	}
}

// stream returns the stream with identifier id, opening it if needed.
func (c *Conn) stream(id uint16) (*stream, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if st, ok := c.streams[id]; ok {
		return st, nil
	}
	if c.ending {
		return nil, c.endErrLocked()
	}
	s, err := c.assoc.OpenStream(id, pionsctp.PayloadTypeUnknown)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", transport.ErrAssociationLost, err)
	}
	return c.addStreamLocked(s), nil
}

func (c *Conn) endErrLocked() error {
	if c.closing.Load() {
		return transport.ErrClosed
	}
	return transport.ErrAssociationLost
}

func (c *Conn) addStreamLocked(s *pionsctp.Stream) *stream {
	st := &stream{s: s, drained: make(chan struct{}, 1)}
	s.SetBufferedAmountLowThreshold(uint64(c.cfg.SendBuffer) / 2)
	s.OnBufferedAmountLow(func() {
		select {
		case st.drained <- struct{}{}:
		default:
		}
	})
	c.streams[s.StreamIdentifier()] = st
	c.readers.Add(1)
	go c.readStream(s)
	return st
}

// readStream moves the messages of one stream into recvCh until the
// association ends.
func (c *Conn) readStream(s *pionsctp.Stream) {
	defer c.readers.Done()
	id := s.StreamIdentifier()
	scratch := make([]byte, readScratch)
	for {
		if !c.waitRoom() {
			return
		}
		n, ppi, err := s.ReadSCTP(scratch)
		var data []byte
		switch {
		case err == nil:
			data = make([]byte, n)
			copy(data, scratch[:n])
		case errors.Is(err, io.ErrShortBuffer) && n <= transport.MaxMessageSize:
			data = make([]byte, n)
			if n, ppi, err = s.ReadSCTP(data); err != nil {
				c.readerFailed(err)
				return
			}
			data = data[:n]
		case errors.Is(err, io.ErrShortBuffer):
			c.fail(fmt.Errorf("%w: peer sent %d bytes (limit %d)", transport.ErrMessageTooLarge, n, transport.MaxMessageSize))
			return
		default:
			c.readerFailed(err)
			return
		}
		m := transport.Message{PPID: uint32(ppi), Stream: id, Data: data}
		c.pushMu.Lock()
		if c.push != nil && c.waiting == 0 && c.push(m) {
			c.pushMu.Unlock()
			continue
		}
		c.waiting++
		c.pushMu.Unlock()
		c.queued.Add(int64(len(data)))
		select {
		case c.recvCh <- m:
		case <-c.closed:
			return
		}
	}
}

// waitRoom waits until the messages waiting for Recv hold fewer than
// [Config.RecvQueueBytes] bytes, so that what the peer sends beyond that
// stays in pion's receive window and closes it (RFC 9260 §6.2). It
// returns false when the Conn is closed.
func (c *Conn) waitRoom() bool {
	limit := int64(c.cfg.RecvQueueBytes)
	for c.queued.Load() >= limit {
		select {
		case <-c.room:
		case <-c.closed:
			return false
		}
	}
	if c.queued.Load() < limit {
		c.signalRoom() // another reader may wait as well
	}
	return true
}

func (c *Conn) signalRoom() {
	select {
	case c.room <- struct{}{}:
	default:
	}
}

// took accounts for a message Recv returns.
func (c *Conn) took(m transport.Message) (transport.Message, error) {
	c.queued.Add(-int64(len(m.Data)))
	c.signalRoom()
	return m, nil
}

func (c *Conn) readerFailed(err error) {
	c.mu.Lock()
	if c.readErr == nil {
		c.readErr = err
	}
	c.mu.Unlock()
}

// fail aborts the association on our own initiative, for a reason that
// Recv and Send report afterwards.
func (c *Conn) fail(err error) {
	c.mu.Lock()
	if c.localErr == nil {
		c.localErr = err
	}
	c.mu.Unlock()
	go c.assoc.Abort(err.Error()) // Abort waits for the read loop, which may be calling us
}

// supervisionFailed aborts the association because path supervision found
// that the peer stopped answering (RFC 9260 §8.1), and releases it: the
// ABORT goes out, pion's goroutines and the stream readers stop, and the
// net.Conn closes. Recv and Send then fail with err. It runs on the
// supervision timer's goroutine.
func (c *Conn) supervisionFailed(err error) {
	c.mu.Lock()
	if c.localErr == nil {
		c.localErr = err
	}
	c.mu.Unlock()
	c.assoc.Abort("peer stopped answering")
	_ = c.assoc.Close()
}

// SetPush offers f the messages received from now on (direct.Pusher).
func (c *Conn) SetPush(f func(transport.Message) bool) {
	c.pushMu.Lock()
	c.push = f
	c.pushMu.Unlock()
}

// Resume counts one message Recv returned as handed on (direct.Pusher).
func (c *Conn) Resume() {
	c.pushMu.Lock()
	if c.waiting > 0 {
		c.waiting--
	}
	c.pushMu.Unlock()
}

// TrySend is Send when the stream's send buffer has room (direct.Sender):
// pion queues the message without waiting; with the buffer full it sends
// nothing and reports false.
func (c *Conn) TrySend(m transport.Message) (bool, error) {
	st, err := c.sendable(context.Background(), m)
	if err != nil {
		return true, err
	}
	if st.s.BufferedAmount() > uint64(c.cfg.SendBuffer) {
		return false, nil
	}
	return true, c.write(st, m)
}

// sendable checks m and the association and returns m's stream.
func (c *Conn) sendable(ctx context.Context, m transport.Message) (*stream, error) {
	switch {
	case len(m.Data) > transport.MaxMessageSize:
		return nil, fmt.Errorf("%w: %d bytes (limit %d)", transport.ErrMessageTooLarge, len(m.Data), transport.MaxMessageSize)
	case len(m.Data) == 0:
		return nil, transport.ErrEmptyMessage
	}
	if err := c.endedErr(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return c.stream(m.Stream)
}

func (c *Conn) write(st *stream, m transport.Message) error {
	if _, err := st.s.WriteSCTP(m.Data, pionsctp.PayloadProtocolIdentifier(m.PPID)); err != nil {
		if e := c.endedErr(); e != nil {
			return e
		}
		return fmt.Errorf("%w: %w", transport.ErrAssociationLost, err)
	}
	return nil
}

// Send sends one whole message on stream m.Stream with payload protocol
// identifier m.PPID. It returns once pion has queued the message; it blocks
// only while more than [Config.SendBuffer] bytes of the stream await
// acknowledgement, until ctx is done. Messages larger than
// [transport.MaxMessageSize] fail with [transport.ErrMessageTooLarge], empty
// ones with [transport.ErrEmptyMessage].
func (c *Conn) Send(ctx context.Context, m transport.Message) error {
	st, err := c.sendable(ctx, m)
	if err != nil {
		return err
	}
	for st.s.BufferedAmount() > uint64(c.cfg.SendBuffer) {
		select {
		case <-st.drained:
		case <-ctx.Done():
			return ctx.Err()
		case <-c.assocDone:
			return c.termErr
		case <-c.closed:
			return transport.ErrClosed
		}
	}
	return c.write(st, m)
}

// endedErr returns the error for using a closed or ended association, or nil.
// Once Close, Shutdown or Abort has started, that is ErrClosed.
func (c *Conn) endedErr() error {
	if c.closing.Load() {
		return transport.ErrClosed
	}
	select {
	case <-c.assocDone:
		return c.termErr
	default:
	}
	return nil
}

// Recv returns the next message from any stream, in order within each
// stream. Once the association has ended and every message received before
// has been returned, Recv fails with [transport.ErrPeerClosed] after a
// graceful SHUTDOWN by the peer, [transport.ErrAssociationLost] after an
// ABORT or a failure, and [transport.ErrClosed] after Close.
func (c *Conn) Recv(ctx context.Context) (transport.Message, error) {
	select {
	case m := <-c.recvCh:
		return c.took(m)
	default:
	}
	select {
	case m := <-c.recvCh:
		return c.took(m)
	case <-c.assocDone:
		select {
		case m := <-c.recvCh:
			return c.took(m)
		default:
			return transport.Message{}, c.termErr
		}
	case <-c.closed:
		return transport.Message{}, transport.ErrClosed
	case <-ctx.Done():
		return transport.Message{}, ctx.Err()
	}
}

// LocalAddr returns the local UDP address of the association.
func (c *Conn) LocalAddr() transport.Addr { return c.local }

// RemoteAddr returns the peer's UDP address (Kind [transport.KindSCTPUDP]),
// or its kernel SCTP address (Kind [transport.KindSCTP]) if it was dialed
// as one.
func (c *Conn) RemoteAddr() transport.Addr { return c.remote }

// Close ends the association gracefully, as [Conn.Shutdown] does, waiting at
// most [Config.ShutdownTimeout] for the peer before it aborts.
func (c *Conn) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), c.cfg.ShutdownTimeout)
	defer cancel()
	return c.Shutdown(ctx)
}

// Shutdown ends the association with the SHUTDOWN exchange of RFC 9260 §9.2:
// data already sent is delivered and acknowledged first. If ctx ends before
// the exchange completes, or the association cannot shut down gracefully,
// Shutdown sends an ABORT (RFC 9260 §9.1) instead. Either way, when Shutdown
// returns the association's goroutines have stopped and Recv and Send fail
// with [transport.ErrClosed]. Shutdown returns ctx's error if it had to
// abort because ctx ended, and nil otherwise; later calls return the first
// call's result.
func (c *Conn) Shutdown(ctx context.Context) error {
	c.end(ctx, false)
	return c.closeErr
}

// Abort ends the association at once with an ABORT chunk (RFC 9260 §9.1),
// without waiting for the peer. It implements [transport.Conn.Abort]; a
// later Close or Shutdown returns nil.
func (c *Conn) Abort() error {
	c.abort()
	return nil
}

// abort ends the association at once with an ABORT.
func (c *Conn) abort() { c.end(nil, true) }

// end ends the association once: gracefully within ctx, or with an ABORT.
// It returns when the association's goroutines have stopped.
func (c *Conn) end(ctx context.Context, abort bool) {
	c.closeOnce.Do(func() {
		c.closing.Store(true)
		c.sup.wait() // no HEARTBEATs during the shutdown (RFC 9260 §8.3)
		if abort {
			select {
			case <-c.assocDone: // already over: nothing to say to the peer
			default:
				c.assoc.Abort("")
			}
		} else {
			c.closeErr = c.shutdown(ctx)
		}
		close(c.closed)
		_ = c.assoc.Close()
		<-c.loopDone
		if c.onEnd != nil {
			c.onEnd(c)
		}
	})
}

func (c *Conn) shutdown(ctx context.Context) error {
	select {
	case <-c.assocDone:
		return nil // already over: nothing to say to the peer
	default:
	}
	if ctx.Err() != nil {
		c.assoc.Abort("")
		return ctx.Err()
	}
	if c.assoc.BufferedAmount() > 0 {
		// SHUTDOWN waits until all our DATA is acknowledged; do not let
		// the peer's delayed-ack timer hold it up.
		c.wire.promptSack()
	}
	err := c.assoc.Shutdown(ctx)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, pionsctp.ErrShutdownNonEstablished):
		// The peer started a shutdown of its own, or the association is
		// ending: let it finish.
		select {
		case <-c.assocDone:
			return nil
		case <-ctx.Done():
		}
	}
	c.assoc.Abort("")
	return ctx.Err()
}

// PeerIdentity returns the peer's identity as its certificate verified in
// the DTLS handshake ([transport.PeerIdentifier]), and false for a plain
// SCTP association or a DTLS peer that presented no certificate (allowed by
// [ClientAuthVerifyIfGiven] and [ClientAuthNone]).
func (c *Conn) PeerIdentity() (transport.Identity, bool) {
	if !c.secured || c.peer.IsZero() {
		return transport.Identity{}, false
	}
	return c.peer, true
}

// Secured reports whether the association runs over DTLS.
func (c *Conn) Secured() bool { return c.secured }

var (
	_ transport.Conn           = (*Conn)(nil)
	_ transport.PeerIdentifier = (*Conn)(nil)
)
