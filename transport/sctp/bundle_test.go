package sctp

import (
	"bytes"
	"context"
	"encoding/binary"
	"net/netip"
	"testing"
	"testing/synctest"
	"time"

	"github.com/go-rserpool/rserpool/transport"
)

// sackPacket builds a SACK-only packet (RFC 9260 §3.3.4) with the given
// a_rwnd and gap ack block count, with a valid CRC32c.
func sackPacket(cumTSN, rwnd uint32, gaps uint16) []byte {
	n := chunkHeaderSize + 12 + 4*int(gaps)
	pkt := make([]byte, commonHeaderSize+n)
	copy(pkt, []byte{0x13, 0x88, 0x13, 0x88, 1, 2, 3, 4})
	ch := pkt[commonHeaderSize:]
	ch[0] = chunkSack
	binary.BigEndian.PutUint16(ch[2:], uint16(n))
	binary.BigEndian.PutUint32(ch[4:], cumTSN)
	binary.BigEndian.PutUint32(ch[8:], rwnd)
	binary.BigEndian.PutUint16(ch[12:], gaps)
	setChecksum(pkt)
	return pkt
}

// dataOnly builds a packet with one I-DATA chunk of size payload bytes.
func dataOnly(payload int) []byte {
	n := chunkHeaderSize + 16 + payload
	pkt := make([]byte, commonHeaderSize+pad4(n))
	copy(pkt, []byte{0x13, 0x88, 0x13, 0x88, 1, 2, 3, 4})
	pkt[commonHeaderSize] = chunkIData
	pkt[commonHeaderSize+1] = 0x03
	binary.BigEndian.PutUint16(pkt[commonHeaderSize+2:], uint16(n))
	setChecksum(pkt)
	return pkt
}

// chunkTypes lists the chunk types of pkt in order.
func chunkTypes(pkt []byte) []byte {
	var types []byte
	for off := commonHeaderSize; off+chunkHeaderSize <= len(pkt); {
		types = append(types, pkt[off])
		l := int(binary.BigEndian.Uint16(pkt[off+2:]))
		if l < chunkHeaderSize {
			break
		}
		off += pad4(l)
	}
	return types
}

// recorder is the wire under a bundler in these tests. The bundler sends
// under its lock, so sent needs no lock of its own.
type recorder struct{ sent [][]byte }

func (r *recorder) send(pkt []byte) error {
	r.sent = append(r.sent, append([]byte(nil), pkt...))
	return nil
}

// count returns len(r.sent) under b's lock, which every send happens in.
func (r *recorder) count(b *sackBundler) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(r.sent)
}

func newTestBundler(hold time.Duration) (*sackBundler, *recorder) {
	cfg := Config{SACKHold: hold}.withDefaults()
	r := &recorder{}
	return newSackBundler(&cfg, r.send), r
}

// After DATA went out, the SACK pion sends next waits and leaves in front
// of the next DATA chunk, in one packet with a valid checksum and the
// DATA packet's common header (RFC 9260 §6.10: control chunks first).
func TestSACKBundledWithNextData(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b, r := newTestBundler(0)
		defer b.close()
		first, sack, next := dataOnly(100), sackPacket(7, DefaultReceiveWindow, 0), dataOnly(100)
		for _, pkt := range [][]byte{first, sack, next} {
			if err := b.write(pkt); err != nil {
				t.Fatal(err)
			}
		}
		if len(r.sent) != 2 {
			t.Fatalf("sent %d packets, want 2 (DATA, then SACK+DATA)", len(r.sent))
		}
		got := r.sent[1]
		if want := []byte{chunkSack, chunkIData}; !bytes.Equal(chunkTypes(got), want) {
			t.Errorf("bundled packet has chunks %v, want %v", chunkTypes(got), want)
		}
		if !checksumOK(got) {
			t.Error("bundled packet has a bad CRC32c")
		}
		if !bytes.Equal(got[:8], next[:8]) {
			t.Errorf("common header %x, want the DATA packet's %x", got[:8], next[:8])
		}
		if !bytes.Equal(got[commonHeaderSize:len(sack)], sack[commonHeaderSize:]) ||
			!bytes.Equal(got[len(sack):], next[commonHeaderSize:]) {
			t.Error("bundled packet is not the SACK chunk followed by the DATA chunk")
		}
		if b.bundledCount() != 1 {
			t.Errorf("bundledCount = %d, want 1", b.bundledCount())
		}
		time.Sleep(time.Second) // fake time: no hold timer sends the SACK again
		if n := r.count(b); n != 2 {
			t.Errorf("sent %d packets after the hold, want still 2", n)
		}
	})
}

// A held SACK that no DATA takes leaves alone when the hold ends, not
// before; the next SACK after it, with no DATA sent in between, is not
// held at all.
func TestSACKHoldEnds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b, r := newTestBundler(0)
		defer b.close()
		_ = b.write(dataOnly(10))
		_ = b.write(sackPacket(1, DefaultReceiveWindow, 0))
		time.Sleep(DefaultSACKHold - time.Microsecond)
		if n := r.count(b); n != 1 {
			t.Fatalf("sent %d packets before the hold ended, want 1", n)
		}
		time.Sleep(2 * time.Microsecond)
		if r.count(b) != 2 || chunkTypes(r.sent[1])[0] != chunkSack {
			t.Fatalf("after the hold sent %d packets, want the SACK as the second", len(r.sent))
		}
		if len(r.sent[1]) != len(sackPacket(1, 0, 0)) {
			t.Error("the SACK did not leave alone")
		}
		_ = b.write(sackPacket(2, DefaultReceiveWindow, 0))
		if len(r.sent) != 3 {
			t.Errorf("a SACK with no DATA sent since the last one waited (sent %d, want 3)", len(r.sent))
		}
	})
}

// SACKs that the peer's loss recovery or window needs, SACKs answering
// the I bit, and every SACK with SACKHold negative leave at once; a
// packet other than DATA sends a held SACK out first.
func TestSACKNotHeld(t *testing.T) {
	cases := []struct {
		name   string
		hold   time.Duration
		sack   []byte
		urgent bool
	}{
		{"gap", 0, sackPacket(1, DefaultReceiveWindow, 1), false},
		{"small window", 0, sackPacket(1, DefaultReceiveWindow/2-1, 0), false},
		{"I bit", 0, sackPacket(1, DefaultReceiveWindow, 0), true},
		{"off", -1, sackPacket(1, DefaultReceiveWindow, 0), false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b, r := newTestBundler(tc.hold)
			defer b.close()
			_ = b.write(dataOnly(10))
			if tc.urgent {
				b.received(scanChunks(immediateData()))
			}
			_ = b.write(tc.sack)
			if len(r.sent) != 2 || !bytes.Equal(r.sent[1], tc.sack) {
				t.Fatalf("sent %d packets, want the DATA and then the SACK unchanged", len(r.sent))
			}
		})
	}
	t.Run("flushed by other chunk", func(t *testing.T) {
		b, r := newTestBundler(0)
		defer b.close()
		_ = b.write(dataOnly(10))
		sack := sackPacket(1, DefaultReceiveWindow, 0)
		_ = b.write(sack)
		hb := sackPacket(0, 0, 0)
		hb[commonHeaderSize] = 4 // HEARTBEAT
		setChecksum(hb)
		_ = b.write(hb)
		if len(r.sent) != 3 || !bytes.Equal(r.sent[1], sack) || !bytes.Equal(r.sent[2], hb) {
			t.Fatalf("sent %d packets, want DATA, the held SACK, then the HEARTBEAT", len(r.sent))
		}
	})
	t.Run("too big to bundle", func(t *testing.T) {
		b, r := newTestBundler(0)
		defer b.close()
		_ = b.write(dataOnly(10))
		sack := sackPacket(1, DefaultReceiveWindow, 0)
		_ = b.write(sack)
		big := dataOnly(maxBundledPacket - commonHeaderSize - chunkHeaderSize - 16)
		_ = b.write(big)
		if len(r.sent) != 3 || !bytes.Equal(r.sent[1], sack) || !bytes.Equal(r.sent[2], big) {
			t.Fatalf("sent %d packets, want DATA, the SACK, then the full DATA packet apart", len(r.sent))
		}
	})
}

func immediateData() []byte {
	pkt := dataOnly(10)
	pkt[commonHeaderSize+1] |= dataFlagImmediate
	return pkt
}

// wireBundler returns the bundler of the wire under c.
func wireBundler(t *testing.T, c transport.Conn) *sackBundler {
	switch w := c.(*Conn).wire.(type) {
	case *dialConn:
		return w.bundle
	case *pktConn:
		return w.bundle
	case *secureWire:
		return w.bundle
	}
	t.Fatalf("no bundler under %T", c.(*Conn).wire)
	return nil
}

// Over loopback, plain and over DTLS, a request/response exchange carries
// the SACKs in the answers: with a hold longer than any answer takes,
// about every second request's SACK goes out with the answer, and every
// second answer's with the next request, and the messages arrive intact.
func TestSACKBundledOverLoopback(t *testing.T) {
	serverDTLS, clientDTLS := testDTLS(t)
	for _, tc := range []struct {
		name           string
		server, client Config
	}{
		{"plain", Config{}, Config{}},
		{"dtls", Config{DTLS: serverDTLS}, Config{DTLS: clientDTLS}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.server.SACKHold, tc.client.SACKHold = 10*time.Second, 10*time.Second
			l, err := New(tc.server).Listen(transport.Addr{Kind: transport.KindSCTPUDP, AddrPort: netip.MustParseAddrPort("127.0.0.1:0")})
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			c, err := New(tc.client).Dial(ctx, l.Addr())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			s, err := l.Accept(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			const rounds = 40
			for i := range rounds {
				req := bytes.Repeat([]byte{byte(i)}, 100)
				if err := c.Send(ctx, transport.Message{PPID: transport.PPIDASAP, Data: req}); err != nil {
					t.Fatal(err)
				}
				m, err := s.Recv(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(m.Data, req) {
					t.Fatalf("round %d: server got %x", i, m.Data[:4])
				}
				if err := s.Send(ctx, m); err != nil {
					t.Fatal(err)
				}
				a, err := c.Recv(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(a.Data, req) {
					t.Fatalf("round %d: client got %x", i, a.Data[:4])
				}
			}
			// pion acknowledges every second packet (RFC 9260 §6.2): about
			// one SACK per two requests, the first before any answer left.
			if got := wireBundler(t, s).bundledCount(); got < rounds/2-2 {
				t.Errorf("listener side bundled %d SACKs in %d rounds, want at least %d", got, rounds, rounds/2-2)
			}
			if got := wireBundler(t, c).bundledCount(); got < rounds/2-2 {
				t.Errorf("dialler side bundled %d SACKs in %d rounds, want at least %d", got, rounds, rounds/2-2)
			}
		})
	}
}
