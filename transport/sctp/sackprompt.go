package sctp

import (
	"encoding/binary"
	"sync"
	"sync/atomic"
)

// dataFlagImmediate is the I bit of a DATA chunk (RFC 7053 §3, now RFC 9260
// §3.3.1) and of an I-DATA chunk (RFC 8260 §2.1): the receiver should send
// its SACK without delay.
const dataFlagImmediate = 0x08

// sackPrompter lets a graceful shutdown complete without waiting for the
// peer's delayed SACK.
//
// pion's Association.Shutdown sends SHUTDOWN only once all DATA sent is
// acknowledged (RFC 9260 §9.2). After a request/response exchange the
// request is typically unacknowledged: the peer delays its SACK by up to
// 200 ms (RFC 9260 §6.2) and pion bundles no SACK with the answer. So every
// graceful Close waited out the peer's delayed-ack timer.
//
// The wire under an association (dialConn, pktConn) passes every packet
// pion writes through outgoing, which keeps a copy of the last one carrying
// DATA (or I-DATA). When the association starts to shut down, prompt returns that
// packet again with the I bit set on its DATA chunks: a receiver that has
// the chunks already sees duplicates, which RFC 9260 §6.2 says to SACK at
// once, and the I bit asks for the same whether or not it had them (RFC
// 7053 §4.1 names the SHUTDOWN-PENDING state as a reason to set it). DATA
// that pion sends after the shutdown started, still queued when Close was
// called, goes out with the I bit as well. The peer's SACK then lets pion
// send SHUTDOWN one round trip later.
type sackPrompter struct {
	shutting atomic.Bool
	mu       sync.Mutex
	last     []byte // last packet with DATA, as sent; under mu
	prompts  atomic.Uint32
}

// isDataPacket reports whether pkt carries DATA or I-DATA (pion uses I-DATA
// when the peer supports RFC 8260, as pion does). pion puts these chunks in
// packets of their own, so the first chunk tells.
func isDataPacket(pkt []byte) bool {
	typ, ok := firstChunkType(pkt)
	return ok && (typ == chunkData || typ == chunkIData)
}

// outgoing notes pkt, which pion is about to send, and returns the bytes to
// send instead: pkt itself, or once the shutdown started and pkt carries
// DATA, a copy with the I bit set. Only pion's write loop calls it.
func (s *sackPrompter) outgoing(pkt []byte) []byte {
	if !isDataPacket(pkt) {
		return pkt
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.last = append(s.last[:0], pkt...)
	if !s.shutting.Load() {
		return pkt
	}
	setImmediate(s.last)
	return append([]byte(nil), s.last...)
}

// prompt marks the start of the shutdown and returns the packet to send to
// the peer for an immediate SACK, or nil if no DATA was ever sent.
func (s *sackPrompter) prompt() []byte {
	s.shutting.Store(true)
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.last) == 0 {
		return nil
	}
	setImmediate(s.last)
	s.prompts.Add(1)
	return append([]byte(nil), s.last...)
}

// setImmediate sets the I bit of every DATA and I-DATA chunk of pkt and
// recomputes the checksum.
func setImmediate(pkt []byte) {
	for off := commonHeaderSize; off+chunkHeaderSize <= len(pkt); {
		if pkt[off] == chunkData || pkt[off] == chunkIData {
			pkt[off+1] |= dataFlagImmediate
		}
		l := int(binary.BigEndian.Uint16(pkt[off+2:]))
		if l < chunkHeaderSize {
			break
		}
		off += pad4(l)
	}
	setChecksum(pkt)
}
