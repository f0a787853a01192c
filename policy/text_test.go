package policy

import (
	"encoding/json"
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/go-rserpool/rserpool/tlv"
)

// TestTypeText: policy types marshal by name (before: 1073741825 for
// LeastUsed) and read back, unknown codes in hex.
func TestTypeText(t *testing.T) {
	for _, typ := range Types() {
		b, err := typ.MarshalText()
		if err != nil || string(b) != typ.String() {
			t.Fatalf("%v: MarshalText %q, %v", typ, b, err)
		}
		var back Type
		if err := back.UnmarshalText(b); err != nil || back != typ {
			t.Fatalf("%q read back as %v, %v", b, back, err)
		}
	}
	b, _ := json.Marshal(struct{ P Type }{LeastUsed})
	if string(b) != `{"P":"LeastUsed"}` {
		t.Errorf("json: %s", b)
	}
	b, _ = Type(0x4000000f).MarshalText()
	if string(b) != "0x4000000f" {
		t.Errorf("unknown type: %s", b)
	}
	var back Type
	if err := back.UnmarshalText(b); err != nil || back != 0x4000000f {
		t.Errorf("unknown type read back as %v, %v", back, err)
	}
	for _, s := range []string{"", "leastused", "0x", "0x123456789", "Type(0x40000001)", "1073741825"} {
		if err := back.UnmarshalText([]byte(s)); !errors.Is(err, ErrBadText) {
			t.Errorf("%q: %v", s, err)
		}
	}
}

// TestFraction: loads print as the fraction they stand for (before: the
// raw share of 0xffffffff, 1073741824 for a quarter), with as few digits
// as read back to the same wire value.
func TestFraction(t *testing.T) {
	for x, want := range map[uint32]string{
		0:                  "0",
		0x40000000:         "0.25",
		0x80000000:         "0.5",
		MaxLoad:            "1",
		1:                  "0.0000000002",
		MaxLoad - 1:        "0.9999999998",
		FromFraction(0.1):  "0.1",
		FromFraction(0.05): "0.05",
	} {
		if got := string(appendFraction(nil, x)); got != want {
			t.Errorf("%#x: %s, want %s", x, got, want)
		}
	}
	if FromFraction(0.25) != 0x40000000 || FromFraction(-1) != 0 || FromFraction(2) != MaxLoad || Fraction(MaxLoad) != 1 {
		t.Error("FromFraction/Fraction edges")
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 20000 {
		x := rng.Uint32()
		var v Values
		if err := json.Unmarshal(append(append([]byte(`{"Load":`), appendFraction(nil, x)...), '}'), &v); err != nil || v.Load != x {
			t.Fatalf("%#x: %s read back as %#x, %v", x, appendFraction(nil, x), v.Load, err)
		}
	}
}

func TestValuesJSON(t *testing.T) {
	v := Values{Weight: 3, Priority: 2, Load: 0x40000000, LoadDegradation: FromFraction(0.01), LoadDPF: MaxLoad, WeightDPF: 0x80000000, Distance: 20}
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"Weight":3,"Priority":2,"Load":0.25,"LoadDegradation":0.01,"LoadDPF":1,"WeightDPF":0.5,"Distance":20}`
	if string(b) != want {
		t.Fatalf("got  %s\nwant %s", b, want)
	}
	var back Values
	if err := json.Unmarshal(b, &back); err != nil || back != v {
		t.Fatalf("read back %+v, %v", back, err)
	}
	if b, _ := json.Marshal(Values{}); string(b) != "{}" {
		t.Errorf("zero: %s", b)
	}
	for _, s := range []string{`{"Load":1.5}`, `{"Load":-0.1}`, `{"Weight":-1}`, `{"Weight":0.5}`, `{"Colour":1}`, `{"Load":"0.1"}`} {
		if err := json.Unmarshal([]byte(s), &back); err == nil {
			t.Errorf("%s accepted", s)
		}
	}
}

// TestParamJSON: a Pool Member Selection Policy parameter (tlv.Policy,
// inside every tlv.PoolElement) marshals by name with its fields. Before:
// {"Type":1073741826,"Value":"QAAAAAKPXCk="}.
func TestParamJSON(t *testing.T) {
	p := Encode(LeastUsedDegradation, Values{Load: 0x40000000, LoadDegradation: FromFraction(0.01)})
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"Type":"LeastUsedDegradation","Load":0.25,"LoadDegradation":0.01}`; string(b) != want {
		t.Fatalf("got  %s\nwant %s", b, want)
	}
	var back tlv.Policy
	if err := json.Unmarshal(b, &back); err != nil || back.Type != p.Type || string(back.Value) != string(p.Value) {
		t.Fatalf("read back %+v, %v", back, err)
	}
	// Every type, zero fields included (they mean something for the type).
	for _, typ := range Types() {
		p := Encode(typ, Values{})
		b, _ := json.Marshal(p)
		var back tlv.Policy
		if err := json.Unmarshal(b, &back); err != nil || back.Type != p.Type || string(back.Value) != string(p.Value) {
			t.Fatalf("%v: %s read back as %+v, %v", typ, b, back, err)
		}
	}
	if b, _ := json.Marshal(Encode(RoundRobin, Values{})); string(b) != `{"Type":"RoundRobin"}` {
		t.Errorf("RoundRobin: %s", b)
	}
	for _, s := range []string{
		`{"Type":"LeastUsed","Weight":1}`, // not a field of LeastUsed
		`{"Type":"NoSuchPolicy"}`,
		`{"Type":"0x4000000f"}`, // unknown type without its raw value
		`{"Load":0.1}`,
		`{"Type":"LeastUsed","Value":"0102"}`,
		`{"Type":"LeastUsed","Load":2}`,
	} {
		if err := json.Unmarshal([]byte(s), &back); err == nil {
			t.Errorf("%s accepted", s)
		}
	}
	// The raw form of a type this package knows is read as given.
	if err := json.Unmarshal([]byte(`{"Type":"LeastUsed","Value":"0x0102"}`), &back); err != nil || back.Type != uint32(LeastUsed) || string(back.Value) != "\x01\x02" {
		t.Errorf("raw: %+v, %v", back, err)
	}
}

func FuzzTypeText(f *testing.F) {
	for _, s := range []string{"LeastUsed", "0x40000001", "0x", "", "0xffffffff0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var typ Type
		if typ.UnmarshalText([]byte(s)) != nil {
			return
		}
		b, _ := typ.MarshalText()
		var back Type
		if err := back.UnmarshalText(b); err != nil || back != typ {
			t.Fatalf("%q -> %v -> %q -> %v, %v", s, typ, b, back, err)
		}
	})
}

// FuzzParamJSON: any JSON either fails cleanly or gives a policy whose
// JSON form reads back to the same parameter.
func FuzzParamJSON(f *testing.F) {
	for _, s := range []string{
		`{"Type":"LeastUsedDegradation","Load":0.25,"LoadDegradation":0.01}`,
		`{"Type":"0x4000000f","Value":"0x01020304"}`, `{"Type":"RoundRobin"}`,
		`{"Type":"WeightedRandomDPF","Weight":1,"WeightDPF":1e-9,"Distance":5}`, `[]`, `{"Load":1e400}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var p tlv.Policy
		if json.Unmarshal(b, &p) != nil {
			return
		}
		out, err := json.Marshal(p)
		if err != nil {
			t.Fatalf("%s: marshal: %v", b, err)
		}
		var back tlv.Policy
		if err := json.Unmarshal(out, &back); err != nil || back.Type != p.Type || string(back.Value) != string(p.Value) {
			t.Fatalf("%s -> %s -> %+v, %v", b, out, back, err)
		}
	})
}
