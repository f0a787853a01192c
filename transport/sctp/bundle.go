package sctp

import (
	"encoding/binary"
	"sync"
	"sync/atomic"
	"time"
)

// chunkSack is the SACK chunk type (RFC 9260 §3.3.4).
const chunkSack = 3

// maxBundledPacket is the largest packet the bundler makes: pion/sctp
// v1.12.1's MTU (1191 bytes, what its own packets never exceed), so that
// a bundled packet fits wherever pion's packets do.
const maxBundledPacket = 1191

// sackBundler lets the next DATA of an association carry the SACK that
// pion/sctp sends on its own.
//
// pion never bundles a SACK with DATA: in a request/response exchange
// every second request makes it send a SACK packet of its own (RFC 9260
// §6.2: at least every second packet is acknowledged), a moment before
// the answer leaves in a packet of its own. So each round trip cost three
// datagrams where two would do. The bundler holds such a SACK for at most
// [Config.SACKHold] and, if the association sends DATA meanwhile, puts the
// SACK chunk in front of the DATA chunks of that packet (control chunks
// first, RFC 9260 §6.10); otherwise the SACK leaves alone when the hold
// ends, well within the 200 ms by which RFC 9260 §6.2 wants a SACK sent.
//
// Only SACKs that a DATA packet is likely to follow are held: the
// association sent DATA since its previous SACK left alone (a receiver of
// a one-way transfer, which sends nothing but SACKs, never waits), and the
// SACK reports no gap and no duplicate (those drive the peer's loss
// recovery, RFC 9260 §7.2.4) and a receive window of at least half the
// configured one (a peer short of window waits for it), and the packet it
// answers did not ask for an immediate SACK with the I bit (RFC 7053 §4.1,
// as our own shutdown does, see sackPrompter). Every packet but
// DATA sends a held SACK out first, so that the order of control chunks
// stays pion's.
type sackBundler struct {
	hold     time.Duration // 0: never hold
	minRwnd  uint32        // a SACK advertising less leaves at once
	send     func([]byte) error
	mu       sync.Mutex
	held     []byte // the SACK packet waiting; empty when none
	buf      []byte // the packet last bundled
	timer    *time.Timer
	sentData bool // DATA left since the last SACK that left alone
	closed   bool
	bundled  uint64      // SACKs that went out with DATA; for tests
	urgent   atomic.Bool // a packet with the I bit arrived; its SACK must not wait
}

// received notes a packet from the peer, with the flags scanChunks found.
func (b *sackBundler) received(f chunkFlags) {
	if f&sawImmediate != 0 {
		b.urgent.Store(true)
	}
}

func newSackBundler(cfg *Config, send func([]byte) error) *sackBundler {
	b := &sackBundler{hold: cfg.SACKHold, send: send}
	if rw := cfg.ReceiveWindow; rw > 0 {
		b.minRwnd = uint32(rw / 2)
	} else {
		b.minRwnd = pionReceiveWindow / 2
	}
	return b
}

// pionReceiveWindow is pion/sctp's default receive buffer (1 MiB), the
// window of an association with a negative Config.ReceiveWindow.
const pionReceiveWindow = 1 << 20

// write sends pkt, one packet pion wrote, holding or bundling SACKs as
// described above. Only the association's write loop calls it.
func (b *sackBundler) write(pkt []byte) error {
	if b.hold <= 0 {
		return b.send(pkt)
	}
	typ, ok := firstChunkType(pkt)
	if !ok {
		return b.send(pkt)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return b.send(pkt)
	}
	urgent := typ == chunkSack && b.urgent.Swap(false)
	switch {
	case typ == chunkSack && b.sentData && !urgent && b.holdable(pkt):
		b.held = append(b.held[:0], pkt...)
		if b.timer == nil {
			b.timer = time.AfterFunc(b.hold, b.expire)
		} else {
			b.timer.Reset(b.hold)
		}
		return nil
	case typ == chunkData || typ == chunkIData:
		if len(b.held) > 0 && len(pkt)+len(b.held)-commonHeaderSize > maxBundledPacket {
			if err := b.flushLocked(); err != nil {
				return err
			}
		}
		b.sentData = true
		if len(b.held) == 0 {
			return b.send(pkt)
		}
		b.timer.Stop()
		b.buf = append(append(append(b.buf[:0], pkt[:commonHeaderSize]...), b.held[commonHeaderSize:]...), pkt[commonHeaderSize:]...)
		b.held = b.held[:0]
		setChecksum(b.buf)
		b.bundled++
		return b.send(b.buf)
	default:
		if typ == chunkSack {
			b.sentData = false
		}
		if err := b.flushLocked(); err != nil {
			return err
		}
		return b.send(pkt)
	}
}

// holdable reports whether the SACK-only packet pkt may wait: a single SACK
// chunk with no gap ack blocks, no duplicate TSNs and a receive window of
// at least minRwnd (RFC 9260 §3.3.4).
func (b *sackBundler) holdable(pkt []byte) bool {
	const sackFixed = chunkHeaderSize + 12 // cumulative TSN ack, a_rwnd, gap and duplicate counts
	ch := pkt[commonHeaderSize:]
	if len(ch) != sackFixed || int(binary.BigEndian.Uint16(ch[2:])) != sackFixed {
		return false
	}
	return binary.BigEndian.Uint32(ch[8:]) >= b.minRwnd &&
		binary.BigEndian.Uint16(ch[12:]) == 0 && binary.BigEndian.Uint16(ch[14:]) == 0
}

// flushLocked sends the held SACK, if any, on its own.
func (b *sackBundler) flushLocked() error {
	if len(b.held) == 0 {
		return nil
	}
	b.timer.Stop()
	b.sentData = false
	err := b.send(b.held)
	b.held = b.held[:0]
	return err
}

// expire sends the held SACK when the hold is over and no DATA took it.
func (b *sackBundler) expire() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.closed {
		_ = b.flushLocked()
	}
}

// close drops a held SACK (the association is over) and stops the timer.
func (b *sackBundler) close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	b.held = b.held[:0]
	if b.timer != nil {
		b.timer.Stop()
	}
}

// bundledCount returns how many SACKs went out with DATA.
func (b *sackBundler) bundledCount() uint64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.bundled
}
