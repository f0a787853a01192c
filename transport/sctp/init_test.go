package sctp

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"testing"
)

func loadLinuxInit(t testing.TB) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/linux-sctp-init.bin")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// initParams lists the parameter types of the INIT chunk that starts pkt.
func initParams(t testing.TB, pkt []byte) []uint16 {
	t.Helper()
	end := commonHeaderSize + int(binary.BigEndian.Uint16(pkt[commonHeaderSize+2:]))
	var types []uint16
	for off := commonHeaderSize + chunkHeaderSize + initFixedSize; off < end; {
		plen := int(binary.BigEndian.Uint16(pkt[off+2:]))
		if plen < 4 || off+plen > end {
			t.Fatalf("bad parameter length %d at %d", plen, off)
		}
		types = append(types, binary.BigEndian.Uint16(pkt[off:]))
		off += pad4(plen)
	}
	return types
}

// The captured Linux 6.1 INIT carries Supported Address Types (0x000c),
// whose high bits 00 tell a receiver that does not know it to discard the
// packet (RFC 9260 §3.2.1). RewriteInit drops it, keeps ECN (0x8000) and
// Forward-TSN-Supported (0xc000), fixes the chunk length and the CRC32c
// (RFC 9260 §6.8) and leaves every fixed field alone.
func TestRewriteInitLinuxFixture(t *testing.T) {
	orig := loadLinuxInit(t)
	if !checksumOK(orig) {
		t.Fatal("fixture checksum invalid")
	}
	pkt := bytes.Clone(orig)
	out, changed, err := RewriteInit(pkt)
	if err != nil || !changed {
		t.Fatalf("RewriteInit = changed %v, err %v; want changed, nil", changed, err)
	}
	if got, want := len(out), len(orig)-8; got != want {
		t.Errorf("length %d, want %d (one 8-byte parameter fewer)", got, want)
	}
	if got := binary.BigEndian.Uint16(out[14:]); got != 28 {
		t.Errorf("INIT chunk length %d, want 28", got)
	}
	if got, want := initParams(t, out), []uint16{0x8000, 0xc000}; !equalU16(got, want) {
		t.Errorf("parameters %#04x, want %#04x", got, want)
	}
	if !checksumOK(out) {
		t.Error("CRC32c of the rewritten packet is invalid")
	}
	// Ports, verification tag, chunk type/flags and the 16 fixed INIT bytes.
	if !bytes.Equal(out[:8], orig[:8]) || !bytes.Equal(out[12:14], orig[12:14]) || !bytes.Equal(out[16:32], orig[16:32]) {
		t.Error("fixed fields changed")
	}
	// A second pass has nothing left to do.
	if _, changed, err := RewriteInit(out); changed || err != nil {
		t.Errorf("second RewriteInit = changed %v, err %v; want unchanged", changed, err)
	}
}

func equalU16(a, b []uint16) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// buildInit makes an INIT packet with the given raw parameters (each
// padded as RFC 9260 §3.2.1 requires, except that the last one's padding
// is not counted in the chunk length).
func buildInit(params ...[]byte) []byte {
	pkt := make([]byte, commonHeaderSize+chunkHeaderSize+initFixedSize)
	binary.BigEndian.PutUint16(pkt[0:], 40000)
	binary.BigEndian.PutUint16(pkt[2:], 9899)
	pkt[12] = chunkInit
	binary.BigEndian.PutUint32(pkt[16:], 0x01020304) // initiate tag
	binary.BigEndian.PutUint32(pkt[20:], 0x10000)    // a_rwnd
	binary.BigEndian.PutUint16(pkt[24:], 10)
	binary.BigEndian.PutUint16(pkt[26:], 10)
	binary.BigEndian.PutUint32(pkt[28:], 77)
	chunkLen := chunkHeaderSize + initFixedSize
	for i, p := range params {
		pkt = append(pkt, p...)
		chunkLen += len(p)
		if i < len(params)-1 {
			for len(pkt)%4 != 0 {
				pkt = append(pkt, 0)
				chunkLen++
			}
		}
	}
	for len(pkt)%4 != 0 {
		pkt = append(pkt, 0)
	}
	binary.BigEndian.PutUint16(pkt[14:], uint16(chunkLen))
	setChecksum(pkt)
	return pkt
}

func param(typ uint16, value ...byte) []byte {
	p := make([]byte, 4, 4+len(value))
	binary.BigEndian.PutUint16(p, typ)
	binary.BigEndian.PutUint16(p[2:], uint16(4+len(value)))
	return append(p, value...)
}

// IPv4 (5), IPv6 (6) and Host Name (11) Address parameters go as well
// (RFC 9260 §3.3.2.1); others stay in order, and an odd-length last
// parameter keeps its unpadded length in the chunk length.
func TestRewriteInitAddressParams(t *testing.T) {
	ecn := param(0x8000)
	odd := param(0x8123, 1, 2, 3) // unknown, skip-bits 10, length 7
	pkt := buildInit(
		param(paramIPv4Address, 127, 0, 0, 1),
		ecn,
		param(paramIPv6Address, make([]byte, 16)...),
		param(paramHostNameAddress, 'h', 'o', 's', 't', 0),
		param(paramSupportedAddressTypes, 0, 5, 0, 6),
		odd,
	)
	out, changed, err := RewriteInit(pkt)
	if err != nil || !changed {
		t.Fatalf("RewriteInit = changed %v, err %v", changed, err)
	}
	if got, want := initParams(t, out), []uint16{0x8000, 0x8123}; !equalU16(got, want) {
		t.Errorf("parameters %#04x, want %#04x", got, want)
	}
	if got, want := int(binary.BigEndian.Uint16(out[14:])), chunkHeaderSize+initFixedSize+4+7; got != want {
		t.Errorf("chunk length %d, want %d", got, want)
	}
	if len(out)%4 != 0 || !checksumOK(out) {
		t.Errorf("packet of %d bytes, checksum ok %v; want padded and valid", len(out), checksumOK(out))
	}
	if got := out[len(out)-8:]; !bytes.Equal(got, []byte{0x81, 0x23, 0, 7, 1, 2, 3, 0}) {
		t.Errorf("last parameter bytes %x", got)
	}
}

func TestRewriteInitLeavesOthersAlone(t *testing.T) {
	plain := buildInit(param(0x8000), param(0xc000))
	if out, changed, err := RewriteInit(bytes.Clone(plain)); changed || err != nil || !bytes.Equal(out, plain) {
		t.Errorf("INIT without address parameters: changed %v, err %v", changed, err)
	}
	data := bytes.Clone(plain)
	data[12] = chunkData
	if out, changed, err := RewriteInit(data); changed || err != nil || !bytes.Equal(out, data) {
		t.Errorf("DATA packet: changed %v, err %v", changed, err)
	}
	for _, short := range [][]byte{nil, make([]byte, 12), make([]byte, 15)} {
		if _, changed, err := RewriteInit(short); changed || err != nil {
			t.Errorf("%d-byte packet: changed %v, err %v", len(short), changed, err)
		}
	}
}

// A corrupted INIT must not come out with a valid checksum (RFC 9260 §6.8:
// the receiver discards packets with an invalid CRC32c).
func TestRewriteInitBadChecksum(t *testing.T) {
	pkt := loadLinuxInit(t)
	pkt[20] ^= 0xff
	if _, changed, err := RewriteInit(pkt); !errors.Is(err, ErrBadChecksum) || changed {
		t.Errorf("corrupted INIT: changed %v, err %v; want ErrBadChecksum", changed, err)
	}
}

func TestRewriteInitMalformed(t *testing.T) {
	base := loadLinuxInit(t)
	cases := map[string]func([]byte){
		"chunk longer than packet": func(p []byte) { binary.BigEndian.PutUint16(p[14:], 200) },
		"chunk shorter than INIT":  func(p []byte) { binary.BigEndian.PutUint16(p[14:], 12) },
		"parameter length 2":       func(p []byte) { binary.BigEndian.PutUint16(p[34:], 2) },
		"parameter past the chunk": func(p []byte) { binary.BigEndian.PutUint16(p[34:], 60) },
	}
	for name, mutate := range cases {
		pkt := bytes.Clone(base)
		mutate(pkt)
		if _, _, err := RewriteInit(pkt); !errors.Is(err, ErrMalformedPacket) {
			t.Errorf("%s: err %v, want ErrMalformedPacket", name, err)
		}
	}
}

func FuzzRewriteInit(f *testing.F) {
	f.Add(loadLinuxInit(f))
	f.Add(buildInit(param(paramIPv4Address, 1, 2, 3, 4), param(0x8001, 9)))
	f.Add(buildInit())
	f.Fuzz(func(t *testing.T, pkt []byte) {
		in := bytes.Clone(pkt)
		out, changed, err := RewriteInit(pkt)
		if err != nil || !changed {
			if !bytes.Equal(out, in) {
				t.Fatal("packet modified although not rewritten")
			}
			return
		}
		if !checksumOK(out) || len(out) > len(in) {
			t.Fatalf("rewritten packet: checksum ok %v, %d bytes from %d", checksumOK(out), len(out), len(in))
		}
		for _, typ := range initParams(t, out) {
			if stripParam(typ) {
				t.Fatalf("parameter %#04x survived", typ)
			}
		}
		if _, again, err := RewriteInit(out); again || err != nil {
			t.Fatalf("second rewrite: changed %v, err %v", again, err)
		}
	})
}
