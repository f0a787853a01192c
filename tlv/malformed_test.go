package tlv

import (
	"errors"
	"testing"
)

// TestMalformed feeds broken input and checks the error kind, the RFC 5354
// cause and the action the caller should take (RFC 5354 §2 action bits,
// RFC 5352 §2.1 / RFC 5353 §2.1 header).
func TestMalformed(t *testing.T) {
	cases := []struct {
		name   string
		enrp   bool
		lim    Limits
		wire   string
		err    error
		cause  CauseCode
		action Action
		typ    ParamType
		off    int
	}{
		{name: "empty", wire: "", err: ErrTruncated, cause: CauseInvalidValues},
		{name: "truncated header", wire: "01 00 00", err: ErrTruncated, cause: CauseInvalidValues, off: 3},
		{name: "length below header", wire: "01 00 0003", err: ErrLength, cause: CauseInvalidValues, off: 2},
		{name: "length beyond buffer", wire: "05 00 0010 |" + gPHPool, err: ErrTruncated, cause: CauseInvalidValues, off: 12},
		{name: "trailing garbage", wire: "05 00 0008 |" + gPHPool, err: ErrLength, cause: CauseInvalidValues, off: 8},
		{name: "param header truncated", wire: "05 00 000e |" + gPHPool + "0009", err: ErrTruncated,
			cause: CauseInvalidValues, action: ActionReport, off: 12},
		{name: "param length below 4", wire: "05 00 000c | 0009 0003 61626300", err: ErrLength,
			cause: CauseInvalidValues, action: ActionReport, typ: ParamPoolHandle, off: 4},
		{name: "param length beyond message", wire: "05 00 000c | 0009 0010 61626300", err: ErrLength,
			cause: CauseInvalidValues, action: ActionReport, typ: ParamPoolHandle, off: 4},
		{name: "trailing bytes shorter than a header", wire: "05 00 000e | 0009 0007 616263 00 | 0000", err: ErrTruncated,
			cause: CauseInvalidValues, action: ActionReport, off: 12},
		{name: "bad padding", wire: "05 00 000a | 0009 0005 61 00", err: ErrPadding,
			cause: CauseInvalidValues, action: ActionReport, typ: ParamPoolHandle, off: 4},
		{name: "bad padding inside transport", wire: "01 00 0034 |" + gPHPool +
			"000a 0028 | 0000002a 00000000 00007530 | 0004 0010 | 1234 0001 | 0001 0007 0a0000 | 00 |" + gPolicyRR,
			err: ErrLength, cause: CauseInvalidValues, action: ActionReport, typ: ParamIPv4Address, off: 36},
		{name: "oversized pool handle", wire: "05 00 002c | 0009 0025 " + "61616161616161616161616161616161616161616161616161616161616161616100000000",
			err: ErrTooLarge, cause: CauseInvalidValues, action: ActionReport, typ: ParamPoolHandle, off: 4},
		{name: "pool handle over custom limit", lim: Limits{MaxPoolHandle: 3}, wire: "05 00 000c |" + gPHPool,
			err: ErrTooLarge, cause: CauseInvalidValues, action: ActionReport, typ: ParamPoolHandle, off: 4},
		{name: "zero-length pool handle", wire: "05 00 0008 | 0009 0004", err: ErrInvalidValue,
			cause: CauseInvalidValues, action: ActionReport, typ: ParamPoolHandle, off: 4},
		{name: "zero-length PE identifier", wire: "02 00 0010 |" + gPHPool + "000e 0004", err: ErrLength,
			cause: CauseInvalidValues, action: ActionReport, typ: ParamPEIdentifier, off: 12},
		{name: "zero-length operation error", wire: "0e 00 0008 | 000c 0004", err: ErrInvalidValue,
			cause: CauseInvalidValues, action: ActionReport, typ: ParamOperationError, off: 4},
		{name: "missing pool handle", wire: "02 00 000c |" + gPEID, err: ErrMissingParam,
			cause: CauseInvalidValues, action: ActionReport, typ: ParamPoolHandle, off: 4},
		{name: "duplicate pool handle", wire: "05 00 0014 |" + gPHPool + gPHPool, err: ErrDuplicateParam,
			cause: CauseInvalidValues, action: ActionReport, typ: ParamPoolHandle, off: 12},
		{name: "unknown ASAP message", wire: "0f 00 0004", err: ErrUnknownMessage,
			cause: CauseUnrecognizedMessage, action: ActionReport},
		{name: "unknown ENRP message", enrp: true, wire: "0b 00 000c | 00000001 00000002", err: ErrUnknownMessage,
			cause: CauseUnrecognizedMessage, action: ActionReport},
		{name: "ENRP too short for IDs", enrp: true, wire: "05 00 0008 | 00000001", err: ErrLength,
			cause: CauseInvalidValues, action: ActionReport, off: 2},
		{name: "unknown param action 00", wire: "05 00 0010 |" + gPHPool + "0123 0004", err: ErrUnrecognizedParam,
			cause: CauseUnrecognizedParameter, action: ActionDiscard, typ: 0x0123, off: 12},
		{name: "unknown param action 01", wire: "05 00 0010 |" + gPHPool + "4123 0004", err: ErrUnrecognizedParam,
			cause: CauseUnrecognizedParameter, action: ActionReport, typ: 0x4123, off: 12},
		{name: "known type with action bits set is unknown", wire: "05 00 0014 |" + gPHPool + "4009 0008 706f6f6c",
			err: ErrUnrecognizedParam, cause: CauseUnrecognizedParameter, action: ActionReport, typ: 0x4009, off: 12},
		{name: "misplaced known param", wire: "05 00 0014 |" + gPHPool + gPEID, err: ErrUnrecognizedParam,
			cause: CauseUnrecognizedParameter, action: ActionDiscard, typ: ParamPEIdentifier, off: 12},
		{name: "bad transport use", wire: "01 00 0034 |" + gPHPool +
			"000a 0028 | 0000002a 00000000 00007530 | 0004 0010 | 1234 0002 |" + gV4 + gPolicyRR,
			err: ErrInvalidValue, cause: CauseInvalidValues, action: ActionReport, typ: ParamSCTPTransport, off: 28},
		{name: "transport without address", wire: "01 00 002c |" + gPHPool +
			"000a 0020 | 0000002a 00000000 00007530 | 0004 0008 | 1234 0001 |" + gPolicyRR,
			err: ErrMissingParam, cause: CauseInvalidValues, action: ActionReport, typ: ParamIPv4Address, off: 28},
		{name: "PE without policy", wire: "01 00 002c |" + gPHPool + "000a 0020 | 0000002a 00000000 00007530 |" + gSCTPv4,
			err: ErrMissingParam, cause: CauseInvalidValues, action: ActionReport, typ: ParamPolicy, off: 12},
		{name: "bad update action", enrp: true, wire: "04 00 0010 | 00000001 00000002 | 0002 0000", err: ErrInvalidValue,
			cause: CauseInvalidValues, action: ActionReport, off: 12},
		{name: "PE before pool handle", enrp: true, wire: "03 00 0034 | 00000001 00000002 |" + gPE, err: ErrInvalidValue,
			cause: CauseInvalidValues, action: ActionReport, typ: ParamPoolElement, off: 12},
		{name: "message over size limit", lim: Limits{MaxMessageSize: 8}, wire: "05 00 000c |" + gPHPool,
			err: ErrTooLarge, cause: CauseInvalidValues, action: ActionDiscard, off: 8},
		{name: "too deep", lim: Limits{MaxDepth: 2}, wire: "01 00 0034 |" + gPHPool + gPE,
			err: ErrTooDeep, cause: CauseInvalidValues, action: ActionDiscard, off: 36},
		{name: "too many params", lim: Limits{MaxParams: 1}, wire: "02 00 0014 |" + gPHPool + gPEID,
			err: ErrTooManyParams, cause: CauseInvalidValues, action: ActionDiscard, typ: ParamPEIdentifier, off: 12},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := hx(c.wire)
			var err error
			if c.enrp {
				var m ENRPMessage
				m, err = c.lim.ParseENRP(b)
				if m != nil {
					t.Fatalf("got message %#v with error", m)
				}
			} else {
				var m ASAPMessage
				m, err = c.lim.ParseASAP(b)
				if m != nil {
					t.Fatalf("got message %#v with error", m)
				}
			}
			if !errors.Is(err, c.err) {
				t.Fatalf("error %v, want %v", err, c.err)
			}
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("error %T is not *ParseError", err)
			}
			if pe.Cause != c.cause || pe.Action != c.action || pe.Type != c.typ || pe.Offset != c.off {
				t.Fatalf("got cause %v action %v type %v offset %d; want %v %v %v %d",
					pe.Cause, pe.Action, pe.Type, pe.Offset, c.cause, c.action, c.typ, c.off)
			}
			if pe.Report() != (c.action == ActionReport) {
				t.Fatalf("Report() = %v", pe.Report())
			}
		})
	}
}

// TestUnknownParamActions checks the four action-bit values of an unknown
// parameter (RFC 5354 §2): 00 and 01 stop (see TestMalformed), 10 skips, 11
// skips and is listed by Unrecognized; both re-encode byte for byte.
func TestUnknownParamActions(t *testing.T) {
	// Handle resolution with an unknown param before the pool handle, and
	// one inside the SCTP transport of a registration's PE.
	for _, c := range []struct {
		typ      string
		reported bool
	}{{"8123", false}, {"c123", true}} {
		wire := hx("05 00 0014 |" + c.typ + "0008 01020304 |" + gPHPool)
		m, err := ParseASAP(wire)
		mustNoErr(t, err)
		hr := m.(*HandleResolution)
		mustEqual(t, []RawParam{{Type: ParamType(wire[4])<<8 | 0x23, Value: wire[8:12], Index: 0}}, hr.Unknown)
		checkEncode(t, wire, m)
		got := Unrecognized(m)
		if (len(got) == 1) != c.reported {
			t.Fatalf("type %s: Unrecognized = %v", c.typ, got)
		}

		reg := hx("01 00 003c |" + gPHPool + "000a 0030 | 0000002a 00000000 00007530 | 0004 0018 | 1234 0001 |" +
			gV4 + c.typ + "0008 aabbccdd |" + gPolicyRR)
		m, err = ParseASAP(reg)
		mustNoErr(t, err)
		checkEncode(t, reg, m)
		got = Unrecognized(m)
		if (len(got) == 1) != c.reported {
			t.Fatalf("nested type %s: Unrecognized = %v", c.typ, got)
		}
		if c.reported {
			oe := UnrecognizedError(got)
			mustEqual(t, CauseUnrecognizedParameter, oe.First())
			mustEqual(t, hx(c.typ+"0008 aabbccdd"), oe.Causes[0].Info)
		}
	}
}

// TestFinalParamWithoutPadding: a final parameter without its padding is
// accepted; re-encoding adds the padding and Message Length
// counts it.
func TestFinalParamWithoutPadding(t *testing.T) {
	in := hx("05 00 000b | 0009 0007 616263")
	m, err := ParseASAP(in)
	mustNoErr(t, err)
	mustEqual(t, PoolHandle("abc"), m.(*HandleResolution).PoolHandle)
	checkEncode(t, hx("05 00 000c | 0009 0007 616263 00"), m)
	// The same with the pad byte sent but not counted.
	m, err = ParseASAP(hx("05 00 000b | 0009 0007 616263 00"))
	mustNoErr(t, err)
	mustEqual(t, PoolHandle("abc"), m.(*HandleResolution).PoolHandle)
}

// TestAppendTooLarge: Append refuses a message whose length does not fit.
func TestAppendTooLarge(t *testing.T) {
	m := &CookieMessage{Cookie: make([]byte, MaxMessageLen)}
	if _, err := Append(nil, m); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Append: %v", err)
	}
	b, err := Marshal(&CookieMessage{Cookie: []byte("x")})
	mustNoErr(t, err)
	mustEqual(t, hx("0b 00 000c | 000d 0005 78 000000"), b)
}

func TestCauseCodeString(t *testing.T) {
	mustEqual(t, "Unknown Pool Handle", CauseUnknownPoolHandle.String())
	mustEqual(t, "CauseCode(0x10)", CauseCode(0x10).String())
	e := &OperationError{Causes: []Cause{{Code: CauseLackOfResources}, {Code: CauseInvalidValues}}}
	mustEqual(t, CauseLackOfResources, e.First())
	mustEqual(t, true, e.Has(CauseInvalidValues))
	mustEqual(t, "rserpool operation error: Lack of Resources, Invalid Values", e.Error())
}
