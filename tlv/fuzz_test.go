package tlv

import (
	"bytes"
	"reflect"
	"testing"
)

// roundTrip checks the property every decoder must have: whatever parses
// re-encodes with Len() equal to the bytes written, and the re-encoded form
// parses to a message that encodes to the very same bytes.
func roundTrip[M interface {
	Len() int
	AppendTo([]byte) []byte
}](t *testing.T, m M, parse func([]byte) (M, error)) {
	b1 := m.AppendTo(nil)
	if len(b1) != m.Len() {
		t.Fatalf("Len() = %d, wrote %d", m.Len(), len(b1))
	}
	if len(b1)%4 != 0 {
		t.Fatalf("length %d not a multiple of 4", len(b1))
	}
	m2, err := parse(b1)
	if err != nil {
		t.Fatalf("re-parse of %x: %v", b1, err)
	}
	b2 := m2.AppendTo(nil)
	if !bytes.Equal(b1, b2) {
		t.Fatalf("unstable:\n%x\n%x", b1, b2)
	}
}

func addSeeds(f *testing.F, ms ...Message) {
	for _, m := range ms {
		f.Add(m.AppendTo(nil))
	}
}

func FuzzParseASAP(f *testing.F) {
	for _, m := range sampleASAP() {
		addSeeds(f, m)
	}
	f.Add(hx("01 00 003c |" + gPHPool + "c001 0005 | 7a 000000" + gPE))
	f.Fuzz(fuzzMessage(ParseASAP))
}

func FuzzParseENRP(f *testing.F) {
	for _, m := range sampleENRP() {
		addSeeds(f, m)
	}
	f.Fuzz(fuzzMessage(ParseENRP))
}

// fuzzMessage is the body of the message fuzz targets: whatever parses
// must round-trip (roundTrip) and Unrecognized must not panic on it.
func fuzzMessage[M Message](parse func([]byte) (M, error)) func(*testing.T, []byte) {
	return func(t *testing.T, b []byte) {
		m, err := parse(b)
		if err != nil {
			return
		}
		roundTrip(t, m, parse)
		_ = Unrecognized(m)
	}
}

func FuzzParseParam(f *testing.F) {
	for _, s := range []string{gV4, gV6, gSCTPv46, gPolicyRR, gPHabc, gPE, gPEASAP, gPEID, gOpErr, gCookie,
		gServerInfo, "000f 0006 beef 0000", "803f 0008 00000010", "c123 0004", "0003 0014 | 0050 0000 | 00000007 |" + gV4} {
		f.Add(hx(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		p, n, err := ParseParam(b)
		if err != nil {
			return
		}
		if n > len(b) || n < 4 {
			t.Fatalf("n = %d for %d bytes", n, len(b))
		}
		roundTrip(t, p, func(b []byte) (Param, error) {
			p, _, err := ParseParam(b)
			return p, err
		})
	})
}

// FuzzParseHandleResolution: on every input ParseHandleResolution agrees
// with ParseASAP (same message or both an error), into a struct that held
// another message before.
func FuzzParseHandleResolution(f *testing.F) {
	for _, m := range sampleASAP() {
		addSeeds(f, m)
	}
	f.Add(hx("05 00 0014 |" + gPHabc + "803f 0008 00000010"))
	f.Fuzz(func(t *testing.T, b []byte) {
		want, werr := ParseASAP(b)
		got := HandleResolution{PoolHandle: PoolHandle("stale"), Items: 9, HasItems: true, Unknown: []RawParam{{Type: 0xc123}}}
		err := Limits{}.ParseHandleResolution(b, &got)
		hr, isHR := want.(*HandleResolution)
		switch {
		case werr != nil || !isHR:
			if err == nil {
				t.Fatalf("ParseHandleResolution took % x, which ParseASAP parses as %T, %v", b, want, werr)
			}
		case err != nil:
			t.Fatalf("ParseHandleResolution(% x) = %v; ParseASAP parsed it", b, err)
		case !reflect.DeepEqual(&got, hr):
			t.Fatalf("ParseHandleResolution(% x) = %+v, ParseASAP %+v", b, got, *hr)
		}
	})
}
