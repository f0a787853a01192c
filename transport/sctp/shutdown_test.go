package sctp

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"os"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	pionsctp "github.com/pion/sctp"
	"github.com/pion/transport/v5/deadline"

	"github.com/go-rserpool/rserpool/transport"
)

// sackDelay is the delayed-ack timer of RFC 9260 §6.2 ("SACK.Delay", 200 ms
// by default), which is what pion/sctp uses.
const sackDelay = 200 * time.Millisecond

// memPacketConn is one end of an in-memory datagram pipe, so that two pion
// associations can run inside a synctest bubble, where time is fake and only
// advances when every goroutine of the bubble is blocked.
type memPacketConn struct {
	in, out   chan []byte
	closed    chan struct{}
	closeOnce sync.Once
	rd        *deadline.Deadline
}

func memPacketPipe() (*memPacketConn, *memPacketConn) {
	ab, ba := make(chan []byte, 64), make(chan []byte, 64)
	a := &memPacketConn{in: ba, out: ab, closed: make(chan struct{}), rd: deadline.New()}
	b := &memPacketConn{in: ab, out: ba, closed: make(chan struct{}), rd: deadline.New()}
	return a, b
}

func (m *memPacketConn) Read(p []byte) (int, error) {
	select {
	case pkt := <-m.in:
		return copy(p, pkt), nil
	case <-m.closed:
		return 0, net.ErrClosed
	case <-m.rd.Done():
		return 0, os.ErrDeadlineExceeded
	}
}

func (m *memPacketConn) Write(p []byte) (int, error) {
	select {
	case <-m.closed:
		return 0, net.ErrClosed
	case m.out <- append([]byte(nil), p...):
	default: // a full queue drops the datagram, as UDP would
	}
	return len(p), nil
}

func (m *memPacketConn) Close() error {
	m.closeOnce.Do(func() { close(m.closed) })
	return nil
}

func (m *memPacketConn) LocalAddr() net.Addr                { return &net.UDPAddr{} }
func (m *memPacketConn) RemoteAddr() net.Addr               { return &net.UDPAddr{} }
func (m *memPacketConn) SetDeadline(t time.Time) error      { m.rd.Set(t); return nil }
func (m *memPacketConn) SetReadDeadline(t time.Time) error  { m.rd.Set(t); return nil }
func (m *memPacketConn) SetWriteDeadline(_ time.Time) error { return nil }

// memPair returns two established Conns over an in-memory pipe; call it
// inside a synctest bubble.
func memPair(t *testing.T) (c, s *Conn, cw, sw *dialConn) {
	t.Helper()
	a, b := memPacketPipe()
	return pairOver(t, Config{}, a, b)
}

// pairOver runs pion's handshake between a (the client's packets) and b
// (the server's) and wraps both associations in Conns with cfg.
func pairOver(t *testing.T, cfg Config, a, b net.Conn) (c, s *Conn, cw, sw *dialConn) {
	t.Helper()
	full := New(cfg).cfg
	cw, sw = &dialConn{Conn: a}, &dialConn{Conn: b}
	cw.bundle, sw.bundle = newSackBundler(&full, cw.send), newSackBundler(&full, sw.send)
	srv := make(chan *pionsctp.Association, 1)
	go func() {
		as, err := pionsctp.Server(full.pionConfig(sw))
		if err != nil {
			t.Error(err)
		}
		srv <- as
	}()
	ca, err := pionsctp.Client(full.pionConfig(cw))
	if err != nil {
		t.Fatal(err)
	}
	sa := <-srv
	if sa == nil {
		t.FailNow()
	}
	var addr transport.Addr
	if c, err = newConn(ca, cw, addr, addr, &full, nil); err != nil {
		t.Fatal(err)
	}
	if s, err = newConn(sa, sw, addr, addr, &full, nil); err != nil {
		t.Fatal(err)
	}
	return c, s, cw, sw
}

// A graceful Close right after a request/response exchange. RFC 9260 §9.2:
// SHUTDOWN goes out once all DATA sent is acknowledged, and the peer may
// delay the SACK of the request by SACK.Delay (§6.2). Close asks for the
// SACK at once (the last DATA again with the I bit, RFC 9260 §3.3.1 and
// RFC 7053), so the exchange completes without any timer firing: in the
// synctest bubble the fake clock does not move. Without the prompt the
// clock advances exactly by the peer's delayed-ack timer. The peer still
// gets the whole exchange: its Recv returns ErrPeerClosed, not a loss.
func TestCloseDoesNotWaitForDelayedSack(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, s, cw, _ := memPair(t)
		ctx := context.Background()
		req := transport.Message{PPID: transport.PPIDASAP, Data: []byte("request")}
		if err := c.Send(ctx, req); err != nil {
			t.Fatal(err)
		}
		m, err := s.Recv(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Send(ctx, m); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Recv(ctx); err != nil {
			t.Fatal(err)
		}
		synctest.Wait() // every packet handled; both delayed-ack timers run
		if c.assoc.BufferedAmount() == 0 {
			t.Fatal("the request is already acknowledged; the test does not exercise the delayed SACK")
		}

		start := time.Now()
		if err := c.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		if waited := time.Since(start); waited >= sackDelay {
			t.Errorf("Close waited %v of fake time: it needed the peer's delayed-ack timer", waited)
		}
		if n := cw.sack.prompts.Load(); n != 1 {
			t.Errorf("Close prompted the peer for a SACK %d times, want 1", n)
		}
		if _, err := s.Recv(ctx); !errors.Is(err, transport.ErrPeerClosed) {
			t.Errorf("peer Recv after Close = %v, want ErrPeerClosed", err)
		}
		if err := s.Close(); err != nil {
			t.Errorf("peer Close: %v", err)
		}
		// synctest.Test fails if a goroutine of the bubble is left.
	})
}

// With nothing unacknowledged, Close has nothing to prompt and still shuts
// down gracefully (RFC 9260 §9.2).
func TestCloseIdleNoPrompt(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, s, cw, _ := memPair(t)
		start := time.Now()
		if err := c.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		if waited := time.Since(start); waited >= sackDelay {
			t.Errorf("Close waited %v of fake time", waited)
		}
		if n := cw.sack.prompts.Load(); n != 0 {
			t.Errorf("Close prompted %d times with nothing outstanding", n)
		}
		if _, err := s.Recv(context.Background()); !errors.Is(err, transport.ErrPeerClosed) {
			t.Errorf("peer Recv after Close = %v, want ErrPeerClosed", err)
		}
		_ = s.Close()
	})
}

// dataPacket builds a packet with a DATA chunk followed by one of type
// other, with a valid CRC32c.
func dataPacket(first, other byte) []byte {
	pkt := make([]byte, commonHeaderSize+2*(chunkHeaderSize+16))
	off := commonHeaderSize
	pkt[off], pkt[off+1] = first, 0x03 // B and E bits
	binary.BigEndian.PutUint16(pkt[off+2:], chunkHeaderSize+16)
	off += chunkHeaderSize + 16
	pkt[off] = other
	binary.BigEndian.PutUint16(pkt[off+2:], chunkHeaderSize+16)
	setChecksum(pkt)
	return pkt
}

// The prompter keeps the last DATA or I-DATA packet, sends it back with the
// I bit (0x08, RFC 9260 §3.3.1, RFC 8260 §2.1) and a valid CRC32c, leaves
// other chunks alone, and once the shutdown started sets the I bit on DATA
// that pion sends later without touching pion's buffer.
func TestSackPrompter(t *testing.T) {
	var p sackPrompter
	if got := p.prompt(); got != nil {
		t.Fatalf("prompt before any DATA = %x, want nil", got)
	}
	var q sackPrompter
	sack := dataPacket(3, 0) // a SACK packet is not DATA
	if out := q.outgoing(sack); &out[0] != &sack[0] {
		t.Error("outgoing copied a packet without DATA")
	}
	for _, typ := range []byte{chunkData, chunkIData} {
		var p sackPrompter
		pkt := dataPacket(typ, chunkShutdown)
		orig := append([]byte(nil), pkt...)
		if out := p.outgoing(pkt); &out[0] != &pkt[0] {
			t.Errorf("type %d: outgoing before shutdown did not send pion's packet as is", typ)
		}
		got := p.prompt()
		if got == nil {
			t.Fatalf("type %d: no prompt after DATA", typ)
		}
		if got[commonHeaderSize+1] != 0x03|dataFlagImmediate {
			t.Errorf("type %d: flags %#x, want I, B and E", typ, got[commonHeaderSize+1])
		}
		if o := commonHeaderSize + chunkHeaderSize + 16; got[o+1] != 0 {
			t.Errorf("type %d: the chunk after DATA got flags %#x", typ, got[o+1])
		}
		if !checksumOK(got) {
			t.Errorf("type %d: prompt has a bad CRC32c", typ)
		}
		if string(pkt) != string(orig) {
			t.Errorf("type %d: prompt changed pion's packet", typ)
		}
		later := dataPacket(typ, chunkData)
		out := p.outgoing(later)
		if &out[0] == &later[0] || out[commonHeaderSize+1]&dataFlagImmediate == 0 ||
			out[commonHeaderSize+chunkHeaderSize+16+1]&dataFlagImmediate == 0 || !checksumOK(out) {
			t.Errorf("type %d: DATA after the shutdown started = %x, want a copy with I bits and a valid CRC32c", typ, out)
		}
	}
}
