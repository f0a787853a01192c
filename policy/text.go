package policy

// Text and JSON forms of policy types and values, for logs and status
// pages (none of this is on the selection path). Load, Load Degradation,
// Load DPF and Weight DPF are fractions of 0xffffffff on the wire
// (RFC 5356 §4.2-§4.4, §5); their text form is that fraction as a
// decimal, 0.25 for 0x40000000, with as few digits as read back to the
// same wire value.

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"

	"github.com/go-rserpool/rserpool/internal/policyjson"
	"github.com/go-rserpool/rserpool/tlv"
)

func init() {
	policyjson.Marshal = marshalParam
	policyjson.Unmarshal = unmarshalParam
}

// Fraction returns a Load, Load Degradation or DPF wire value as the
// fraction it stands for: x / MaxLoad, 0.25 for 0x40000000.
func Fraction(x uint32) float64 { return float64(x) / MaxLoad }

// FromFraction returns the wire value of fraction f of MaxLoad (rounded to
// the nearest): 0x40000000 for 0.25. f is clamped to [0, 1]; NaN gives 0.
func FromFraction(f float64) uint32 {
	switch {
	case !(f > 0): // also NaN
		return 0
	case f >= 1:
		return MaxLoad
	}
	return uint32(math.Round(f * MaxLoad))
}

// appendFraction appends x's fraction with the fewest decimals (at most
// 10, which always suffice: the wire step is 2.3e-10) that FromFraction
// maps back to x.
func appendFraction(b []byte, x uint32) []byte {
	f := Fraction(x)
	for prec := 1; prec < 10; prec++ {
		s := strconv.FormatFloat(f, 'f', prec, 64)
		if v, _ := strconv.ParseFloat(s, 64); FromFraction(v) == x {
			return append(b, trimZeros(s)...)
		}
	}
	return append(b, trimZeros(strconv.FormatFloat(f, 'f', 10, 64))...)
}

// trimZeros drops trailing zeros of a decimal ("1.0" -> "1").
func trimZeros(s string) string {
	for len(s) > 1 && s[len(s)-1] == '0' {
		s = s[:len(s)-1]
	}
	if s[len(s)-1] == '.' {
		s = s[:len(s)-1]
	}
	return s
}

// fraction reports whether f is a fraction of MaxLoad on the wire.
func (f Field) fraction() bool {
	switch f {
	case FieldLoad, FieldLoadDegradation, FieldLoadDPF, FieldWeightDPF:
		return true
	}
	return false
}

func appendField(b []byte, f Field, x uint32) []byte {
	b = append(b, '"')
	b = append(b, fieldNames[f]...)
	b = append(b, '"', ':')
	if f.fraction() {
		return appendFraction(b, x)
	}
	return strconv.AppendUint(b, uint64(x), 10)
}

// MarshalText implements encoding.TextMarshaler: the policy's name
// ("LeastUsed"), or "0x" and 8 hex digits for a code this package does
// not know.
func (t Type) MarshalText() ([]byte, error) {
	if inf := infoOf(t); inf != nil {
		return []byte(inf.name), nil
	}
	return fmt.Appendf(nil, "0x%08x", uint32(t)), nil
}

// ErrBadText is returned (wrapped) for text that is not a policy type
// or policy values.
var ErrBadText = errors.New("policy: malformed text value")

// UnmarshalText implements encoding.TextUnmarshaler: a name as String
// gives it, or "0x" and up to 8 hex digits.
func (t *Type) UnmarshalText(b []byte) error {
	if v, ok := ParseType(string(b)); ok {
		*t = v
		return nil
	}
	s := string(b)
	if len(s) > 2 && len(s) <= 10 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X') {
		if v, err := strconv.ParseUint(s[2:], 16, 32); err == nil {
			*t = Type(v)
			return nil
		}
	}
	return fmt.Errorf("%w: policy type %q", ErrBadText, b)
}

// MarshalJSON implements json.Marshaler: the fields that are not zero, by
// their Go names, loads and DPFs as fractions:
// {"Load":0.25,"LoadDegradation":0.01}.
func (v Values) MarshalJSON() ([]byte, error) {
	b := []byte{'{'}
	for f := FieldWeight; f <= FieldDistance; f++ {
		if x := f.get(&v); x != 0 {
			if len(b) > 1 {
				b = append(b, ',')
			}
			b = appendField(b, f, x)
		}
	}
	return append(b, '}'), nil
}

// valuesJSON reads Values: absent fields stay nil.
type valuesJSON struct {
	Weight, Priority, Distance                *uint32
	Load, LoadDegradation, LoadDPF, WeightDPF *float64
}

func (j *valuesJSON) ptr(f Field) (u *uint32, fr *float64) {
	switch f {
	case FieldWeight:
		return j.Weight, nil
	case FieldPriority:
		return j.Priority, nil
	case FieldDistance:
		return j.Distance, nil
	case FieldLoad:
		return nil, j.Load
	case FieldLoadDegradation:
		return nil, j.LoadDegradation
	case FieldLoadDPF:
		return nil, j.LoadDPF
	default:
		return nil, j.WeightDPF
	}
}

// values converts j; only want's fields may be set unless want is nil.
func (j *valuesJSON) values(t Type, want []Field) (Values, error) {
	var v Values
	for f := FieldWeight; f <= FieldDistance; f++ {
		u, fr := j.ptr(f)
		if u == nil && fr == nil {
			continue
		}
		if want != nil && !hasField(want, f) {
			return Values{}, fmt.Errorf("%w: policy %v has no %v field", ErrBadText, t, f)
		}
		if u != nil {
			f.set(&v, *u)
			continue
		}
		if !(*fr >= 0 && *fr <= 1) {
			return Values{}, fmt.Errorf("%w: %v %v is not a fraction in [0, 1]", ErrBadText, f, *fr)
		}
		f.set(&v, FromFraction(*fr))
	}
	return v, nil
}

func hasField(fs []Field, f Field) bool {
	for _, g := range fs {
		if g == f {
			return true
		}
	}
	return false
}

func decodeStrict(b []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return err
	}
	if d.More() {
		return fmt.Errorf("%w: data after the JSON value", ErrBadText)
	}
	return nil
}

// UnmarshalJSON implements json.Unmarshaler (MarshalJSON's form). A load
// or DPF outside [0, 1], or a field this type does not have, is an error.
func (v *Values) UnmarshalJSON(b []byte) error {
	var j valuesJSON
	if err := decodeStrict(b, &j); err != nil {
		return err
	}
	out, err := j.values(0, nil)
	if err == nil {
		*v = out
	}
	return err
}

// marshalParam is the JSON form of a tlv.Policy: {"Type":"LeastUsed",
// "Load":0.25}, every field of the type in wire order. It has none (false)
// when Decode refuses the parameter.
func marshalParam(typ uint32, value []byte) ([]byte, bool) {
	t, v, err := Decode(tlv.Policy{Type: typ, Value: value})
	if err != nil {
		return nil, false
	}
	b := append([]byte(`{"Type":"`), infoOf(t).name...)
	b = append(b, '"')
	for _, f := range t.Fields() {
		b = append(b, ',')
		b = appendField(b, f, f.get(&v))
	}
	return append(b, '}'), true
}

// unmarshalParam reads either JSON form of a tlv.Policy: a type with its
// fields, or a type with its raw value in hex ("Value":"0x...").
func unmarshalParam(b []byte) (uint32, []byte, error) {
	var j struct {
		Type  *Type
		Value *string
		valuesJSON
	}
	if err := decodeStrict(b, &j); err != nil {
		return 0, nil, err
	}
	if j.Type == nil {
		return 0, nil, fmt.Errorf("%w: policy without Type", ErrBadText)
	}
	t := *j.Type
	if j.Value != nil {
		s := *j.Value
		raw, err := hex.DecodeString(s[min(2, len(s)):])
		if len(s) < 2 || s[:2] != "0x" || err != nil {
			return 0, nil, fmt.Errorf("%w: policy value %q: want 0x and hex digits", ErrBadText, s)
		}
		return uint32(t), raw, nil
	}
	if !t.Known() {
		return 0, nil, unknown(t)
	}
	v, err := j.values(t, t.Fields())
	if err != nil {
		return 0, nil, err
	}
	return uint32(t), AppendValue(nil, t, v), nil
}
