package sctp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// SCTP wire constants (RFC 9260 §3).
const (
	commonHeaderSize = 12 // source port, destination port, verification tag, checksum
	chunkHeaderSize  = 4  // type, flags, length
	initFixedSize    = 16 // initiate tag, a_rwnd, OS, MIS, initial TSN (RFC 9260 §3.3.2)

	chunkData             = 0
	chunkInit             = 1
	chunkInitAck          = 2
	chunkAbort            = 6
	chunkShutdown         = 7
	chunkShutdownAck      = 8
	chunkError            = 9
	chunkCookieEcho       = 10
	chunkShutdownComplete = 14
	chunkIData            = 64 // RFC 8260 §2.1; pion negotiates it by default

	// INIT parameters that carry or restrict the peer's transport addresses
	// (RFC 9260 §3.3.2.1). Their two high type bits are 00, "stop processing
	// and discard the packet", for a receiver that does not know them, which
	// is what pion/sctp v1.12.1 does.
	paramIPv4Address           = 0x0005
	paramIPv6Address           = 0x0006
	paramHostNameAddress       = 0x000b
	paramSupportedAddressTypes = 0x000c

	// causeOutOfResource is the "Out of Resource" error cause (RFC 9260
	// §3.3.10.4).
	causeOutOfResource = 4
)

// Errors returned by [RewriteInit] for packets that are not well-formed.
var (
	// ErrMalformedPacket reports an SCTP packet whose lengths do not add up.
	ErrMalformedPacket = errors.New("sctp: malformed SCTP packet")
	// ErrBadChecksum reports an SCTP packet whose CRC32c does not match.
	ErrBadChecksum = errors.New("sctp: SCTP packet CRC32c mismatch")
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// packetChecksum computes the CRC32c of an SCTP packet with its checksum
// field taken as zero (RFC 9260 §6.8, Appendix A).
func packetChecksum(pkt []byte) uint32 {
	var zero [4]byte
	c := crc32.Update(0, castagnoli, pkt[:8])
	c = crc32.Update(c, castagnoli, zero[:])
	return crc32.Update(c, castagnoli, pkt[commonHeaderSize:])
}

// checksumOK reports whether pkt carries a valid CRC32c. The checksum is
// stored in the byte order the CRC32c algorithm produces it (RFC 9260
// Appendix A), which reads as little-endian.
func checksumOK(pkt []byte) bool {
	return binary.LittleEndian.Uint32(pkt[8:]) == packetChecksum(pkt)
}

func setChecksum(pkt []byte) {
	binary.LittleEndian.PutUint32(pkt[8:], packetChecksum(pkt))
}

// firstChunkType returns the type of the first chunk of an SCTP packet, or
// false if the packet is too short to hold a common header and a chunk header.
func firstChunkType(pkt []byte) (byte, bool) {
	if len(pkt) < commonHeaderSize+chunkHeaderSize {
		return 0, false
	}
	return pkt[commonHeaderSize], true
}

func pad4(n int) int { return (n + 3) &^ 3 }

// RewriteInit makes an INIT from a multi-homing capable peer (a Linux kernel,
// for instance) acceptable to pion/sctp. It removes the IPv4 Address, IPv6
// Address, Host Name Address and Supported Address Types parameters from the
// INIT chunk that starts pkt and recomputes the CRC32c. pion/sctp is
// single-homed and answers from the address the packet came from, which RFC
// 9260 §5.1.2 allows an endpoint to do when it ignores the address list.
//
// The rewrite happens in place; the result is a prefix of pkt. If pkt does
// not start with an INIT chunk, or the INIT has none of those parameters,
// pkt is returned unchanged with changed == false. The checksum is verified
// before it is recomputed, so that a corrupted packet is never made to look
// valid: such a packet yields [ErrBadChecksum]. Length fields that do not add
// up yield [ErrMalformedPacket]. RewriteInit never panics on any input.
func RewriteInit(pkt []byte) (out []byte, changed bool, err error) {
	typ, ok := firstChunkType(pkt)
	if !ok || typ != chunkInit {
		return pkt, false, nil
	}
	chunkStart := commonHeaderSize
	chunkLen := int(binary.BigEndian.Uint16(pkt[chunkStart+2:]))
	if chunkLen < chunkHeaderSize+initFixedSize || chunkStart+chunkLen > len(pkt) {
		return pkt, false, fmt.Errorf("%w: INIT chunk length %d in a %d-byte packet", ErrMalformedPacket, chunkLen, len(pkt))
	}
	chunkEnd := chunkStart + chunkLen
	// Walk the parameters once to validate them and see whether any must go.
	strip := false
	for off := chunkStart + chunkHeaderSize + initFixedSize; off < chunkEnd; {
		if chunkEnd-off < 4 {
			return pkt, false, fmt.Errorf("%w: %d stray bytes after INIT parameters", ErrMalformedPacket, chunkEnd-off)
		}
		ptype := binary.BigEndian.Uint16(pkt[off:])
		plen := int(binary.BigEndian.Uint16(pkt[off+2:]))
		if plen < 4 || off+plen > chunkEnd {
			return pkt, false, fmt.Errorf("%w: INIT parameter 0x%04x length %d at offset %d", ErrMalformedPacket, ptype, plen, off)
		}
		if stripParam(ptype) {
			strip = true
		}
		off += pad4(plen)
	}
	if !strip {
		return pkt, false, nil
	}
	if !checksumOK(pkt) {
		return pkt, false, ErrBadChecksum
	}
	// Compact the kept parameters towards the front, each with its padding.
	w := chunkStart + chunkHeaderSize + initFixedSize
	lastLen := 0 // unpadded length of the last parameter kept
	for off := w; off < chunkEnd; {
		ptype := binary.BigEndian.Uint16(pkt[off:])
		plen := int(binary.BigEndian.Uint16(pkt[off+2:]))
		next := min(off+pad4(plen), chunkEnd)
		if !stripParam(ptype) {
			n := copy(pkt[w:], pkt[off:next])
			for ; n < pad4(plen); n++ { // the last parameter may lack its padding
				pkt[w+n] = 0
			}
			w += n
			lastLen = plen
		}
		off = next
	}
	// The chunk length counts the padding of every parameter but the last
	// (RFC 9260 §3.2).
	newLen := w - chunkStart
	if lastLen > 0 {
		newLen -= pad4(lastLen) - lastLen
	}
	binary.BigEndian.PutUint16(pkt[chunkStart+2:], uint16(newLen))
	// Whatever followed the INIT chunk (nothing, in a valid packet: RFC 9260
	// §6.10 forbids bundling INIT) moves up behind it.
	rest := pkt[min(pad4(chunkEnd-chunkStart)+chunkStart, len(pkt)):]
	w += copy(pkt[w:], rest)
	out = pkt[:w]
	setChecksum(out)
	return out, true, nil
}

func stripParam(t uint16) bool {
	switch t {
	case paramIPv4Address, paramIPv6Address, paramHostNameAddress, paramSupportedAddressTypes:
		return true
	}
	return false
}

// chunkFlags records which association-ending and handshake chunks a
// packet carries.
type chunkFlags uint8

const (
	sawShutdown      chunkFlags = 1 << iota // SHUTDOWN, SHUTDOWN ACK or SHUTDOWN COMPLETE
	sawAbort                                // ABORT
	sawOutOfResource                        // ABORT with the "Out of Resource" cause
	sawCookieEcho                           // COOKIE ECHO
	// sawImmediate: a DATA or I-DATA chunk with the I bit (RFC 7053
	// §3): the sender wants its SACK at once. It describes one packet;
	// the wires keep it out of their flags.
	sawImmediate
)

// scanChunks walks the chunks of pkt and reports the shutdown, abort and
// COOKIE ECHO chunks it carries. It stops at the first malformed chunk
// header.
func scanChunks(pkt []byte) chunkFlags {
	var f chunkFlags
	for off := commonHeaderSize; off+chunkHeaderSize <= len(pkt); {
		l := int(binary.BigEndian.Uint16(pkt[off+2:]))
		switch pkt[off] {
		case chunkShutdown, chunkShutdownAck, chunkShutdownComplete:
			f |= sawShutdown
		case chunkAbort:
			f |= sawAbort
			if hasCause(pkt[off:min(off+l, len(pkt))], causeOutOfResource) {
				f |= sawOutOfResource
			}
		case chunkCookieEcho:
			f |= sawCookieEcho
		case chunkData, chunkIData:
			if pkt[off+1]&dataFlagImmediate != 0 {
				f |= sawImmediate
			}
		}
		if l < chunkHeaderSize {
			break
		}
		off += pad4(l)
	}
	return f
}

// hasCause reports whether the ABORT or ERROR chunk ch carries the error
// cause code (RFC 9260 §3.3.10).
func hasCause(ch []byte, code uint16) bool {
	for off := chunkHeaderSize; off+4 <= len(ch); {
		if binary.BigEndian.Uint16(ch[off:]) == code {
			return true
		}
		l := int(binary.BigEndian.Uint16(ch[off+2:]))
		if l < 4 {
			return false
		}
		off += pad4(l)
	}
	return false
}

// limitInboundStreams lowers the Number of Inbound Streams (MIS) of the
// INIT or INIT ACK chunk that starts pkt to mis (RFC 9260 §3.3.2, §3.3.3)
// and reports whether it changed it. The caller recomputes the checksum.
func limitInboundStreams(pkt []byte, mis uint16) bool {
	typ, ok := firstChunkType(pkt)
	if !ok || (typ != chunkInit && typ != chunkInitAck) || mis == 0 ||
		len(pkt) < commonHeaderSize+chunkHeaderSize+initFixedSize {
		return false
	}
	f := pkt[commonHeaderSize+chunkHeaderSize+10:]
	if binary.BigEndian.Uint16(f) <= mis {
		return false
	}
	binary.BigEndian.PutUint16(f, mis)
	return true
}

// initStreams returns the Number of Outbound Streams (OS) and of Inbound
// Streams (MIS) of the INIT or INIT ACK chunk that starts pkt.
func initStreams(pkt []byte) (os, mis uint16, ok bool) {
	typ, ok := firstChunkType(pkt)
	if !ok || (typ != chunkInit && typ != chunkInitAck) ||
		len(pkt) < commonHeaderSize+chunkHeaderSize+initFixedSize {
		return 0, 0, false
	}
	f := pkt[commonHeaderSize+chunkHeaderSize+8:]
	return binary.BigEndian.Uint16(f), binary.BigEndian.Uint16(f[2:]), true
}

// refuseInit builds the ABORT that refuses the INIT starting pkt for lack
// of resources: the INIT's ports swapped, its Initiate Tag as verification
// tag and the T bit clear (RFC 9260 §8.5.1 rule B: the peer's tag is
// known), and one "Out of Resource" error cause (RFC 9260 §3.3.10.4). It
// returns nil if pkt is too short to be an INIT.
func refuseInit(pkt []byte) []byte {
	typ, ok := firstChunkType(pkt)
	if !ok || typ != chunkInit || len(pkt) < commonHeaderSize+chunkHeaderSize+initFixedSize {
		return nil
	}
	out := make([]byte, commonHeaderSize+chunkHeaderSize+4)
	binary.BigEndian.PutUint16(out[0:], binary.BigEndian.Uint16(pkt[2:])) // our port
	binary.BigEndian.PutUint16(out[2:], binary.BigEndian.Uint16(pkt[0:])) // their port
	copy(out[4:8], pkt[commonHeaderSize+chunkHeaderSize:])                // Initiate Tag
	out[12] = chunkAbort
	binary.BigEndian.PutUint16(out[14:], chunkHeaderSize+4)
	binary.BigEndian.PutUint16(out[16:], causeOutOfResource)
	binary.BigEndian.PutUint16(out[18:], 4)
	setChecksum(out)
	return out
}

// ootbReply builds the answer to an out-of-the-blue packet, one that belongs
// to no association (RFC 9260 §8.4): SHUTDOWN COMPLETE to a SHUTDOWN ACK,
// nothing to ABORT, SHUTDOWN COMPLETE, ERROR or COOKIE ECHO, and an ABORT
// otherwise. Both answers set the T bit and reflect the packet's own
// verification tag (RFC 9260 §8.5.1). It returns nil when no answer is due.
func ootbReply(pkt []byte) []byte {
	typ, ok := firstChunkType(pkt)
	if !ok {
		return nil
	}
	var reply byte
	switch typ {
	case chunkShutdownAck:
		reply = chunkShutdownComplete
	case chunkAbort, chunkShutdownComplete, chunkError, chunkCookieEcho, chunkInit:
		// COOKIE ECHO and INIT are handled by the caller; ERROR and the
		// closing chunks are never answered.
		return nil
	default:
		reply = chunkAbort
	}
	out := make([]byte, commonHeaderSize+chunkHeaderSize)
	binary.BigEndian.PutUint16(out[0:], binary.BigEndian.Uint16(pkt[2:])) // our port
	binary.BigEndian.PutUint16(out[2:], binary.BigEndian.Uint16(pkt[0:])) // their port
	copy(out[4:8], pkt[4:8])
	out[12] = reply
	out[13] = 0x01 // T bit: the verification tag is the receiver's own
	binary.BigEndian.PutUint16(out[14:], chunkHeaderSize)
	setChecksum(out)
	return out
}
