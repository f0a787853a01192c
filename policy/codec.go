package policy

import (
	"encoding/binary"
	"fmt"

	"github.com/go-rserpool/rserpool/tlv"
)

// Field names one u32 field of a policy parameter.
type Field uint8

// Policy parameter fields, in the order they may appear on the wire.
const (
	FieldWeight Field = iota
	FieldPriority
	FieldLoad
	FieldLoadDegradation
	FieldLoadDPF
	FieldWeightDPF
	FieldDistance
)

var fieldNames = [...]string{"Weight", "Priority", "Load", "LoadDegradation", "LoadDPF", "WeightDPF", "Distance"}

func (f Field) String() string {
	if int(f) < len(fieldNames) {
		return fieldNames[f]
	}
	return fmt.Sprintf("Field(%d)", uint8(f))
}

func (f Field) get(v *Values) uint32 {
	switch f {
	case FieldWeight:
		return v.Weight
	case FieldPriority:
		return v.Priority
	case FieldLoad:
		return v.Load
	case FieldLoadDegradation:
		return v.LoadDegradation
	case FieldLoadDPF:
		return v.LoadDPF
	case FieldWeightDPF:
		return v.WeightDPF
	default:
		return v.Distance
	}
}

func (f Field) set(v *Values, x uint32) {
	switch f {
	case FieldWeight:
		v.Weight = x
	case FieldPriority:
		v.Priority = x
	case FieldLoad:
		v.Load = x
	case FieldLoadDegradation:
		v.LoadDegradation = x
	case FieldLoadDPF:
		v.LoadDPF = x
	case FieldWeightDPF:
		v.WeightDPF = x
	default:
		v.Distance = x
	}
}

type info struct {
	name   string
	fields []Field
	random bool // drawn by weight; otherwise kept in sort order
}

var (
	fNone   = []Field{}
	fWeight = []Field{FieldWeight}
	fLoad   = []Field{FieldLoad}
	fLoadLD = []Field{FieldLoad, FieldLoadDegradation}
)

// infos: names, wire layouts (RFC 5356 §4-§5 for the first nine, RSPLIB 3.4.4's
// rserpoolmessagecreator.c for the extensions) and selection kind.
var infos = map[Type]info{
	RoundRobin:                             {"RoundRobin", fNone, false},
	WeightedRoundRobin:                     {"WeightedRoundRobin", fWeight, false},
	Random:                                 {"Random", fNone, true},
	WeightedRandom:                         {"WeightedRandom", fWeight, true},
	Priority:                               {"Priority", []Field{FieldPriority}, false},
	LeastUsed:                              {"LeastUsed", fLoad, false},
	LeastUsedDegradation:                   {"LeastUsedDegradation", fLoadLD, false},
	PriorityLeastUsed:                      {"PriorityLeastUsed", fLoadLD, false},
	RandomizedLeastUsed:                    {"RandomizedLeastUsed", fLoad, true},
	RandomizedPriorityLeastUsed:            {"RandomizedPriorityLeastUsed", fLoadLD, true},
	RandomizedLeastUsedDegradation:         {"RandomizedLeastUsedDegradation", fLoadLD, true},
	PriorityLeastUsedDegradation:           {"PriorityLeastUsedDegradation", fLoadLD, false},
	RandomizedPriorityLeastUsedDegradation: {"RandomizedPriorityLeastUsedDegradation", fLoadLD, true},
	WeightedRandomDPF:                      {"WeightedRandomDPF", []Field{FieldWeight, FieldWeightDPF, FieldDistance}, true},
	LeastUsedDPF:                           {"LeastUsedDPF", []Field{FieldLoad, FieldLoadDPF, FieldDistance}, false},
	LeastUsedDegradationDPF:                {"LeastUsedDegradationDPF", []Field{FieldLoad, FieldLoadDegradation, FieldLoadDPF, FieldDistance}, false},
}

// infoTab holds infos in an array for infoOf (Decode runs on every
// registration; a map lookup was a tenth of its cost).
var infoTab = func() (tab [16]struct {
	t   Type
	inf info
}) {
	for t, inf := range infos {
		i := infoIndex(t)
		if i < 0 || tab[i].t != 0 {
			panic("policy: infoIndex does not cover " + inf.name)
		}
		tab[i].t, tab[i].inf = t, inf
	}
	return tab
}()

// infoIndex maps the known type codes to distinct indexes in [0, 16), and
// returns -1 for codes outside their four ranges.
func infoIndex(t Type) int {
	lo := int(t & 0xf)
	switch t &^ 0xf {
	case 0x00000000:
		return lo - 1 // 1..5 -> 0..4
	case 0x40000000:
		return lo + 4 // 1..4 -> 5..8
	case 0xb0001000:
		return lo + 8 // 1..4 -> 9..12
	case 0xb0002000:
		return lo + 12 // 1..3 -> 13..15
	}
	return -1
}

// infoOf returns the info of t, or nil for an unknown type.
func infoOf(t Type) *info {
	i := infoIndex(t)
	if i < 0 || i >= len(infoTab) || infoTab[i].t != t {
		return nil
	}
	return &infoTab[i].inf
}

// Types lists every known policy type in code order.
func Types() []Type {
	return []Type{
		RoundRobin, WeightedRoundRobin, Random, WeightedRandom, Priority,
		LeastUsed, LeastUsedDegradation, PriorityLeastUsed, RandomizedLeastUsed,
		RandomizedPriorityLeastUsed, RandomizedLeastUsedDegradation,
		PriorityLeastUsedDegradation, RandomizedPriorityLeastUsedDegradation,
		WeightedRandomDPF, LeastUsedDPF, LeastUsedDegradationDPF,
	}
}

// String returns the policy's name ("RoundRobin", "LeastUsed", ...), or
// "Type(0x...)" for an unknown code.
func (t Type) String() string {
	if inf, ok := infos[t]; ok {
		return inf.name
	}
	return fmt.Sprintf("Type(0x%08x)", uint32(t))
}

// Known reports whether this package implements policy t.
func (t Type) Known() bool {
	_, ok := infos[t]
	return ok
}

// Randomized reports whether t draws members at random (by weight) rather
// than taking them in a sort order.
func (t Type) Randomized() bool {
	inf := infoOf(t)
	return inf != nil && inf.random
}

// Fields returns the u32 fields that follow the Policy Type on the wire for
// t, in wire order; nil for an unknown t. The slice must not be modified.
func (t Type) Fields() []Field {
	if inf := infoOf(t); inf != nil {
		return inf.fields
	}
	return nil
}

// Mask returns v with every field that t does not carry set to zero, so that
// values decoded from different sources compare equal.
func (t Type) Mask(v Values) Values {
	var out Values
	for _, f := range t.Fields() {
		f.set(&out, f.get(&v))
	}
	return out
}

// ParseType returns the type whose String is name.
func ParseType(name string) (Type, bool) {
	for t, inf := range infos {
		if inf.name == name {
			return t, true
		}
	}
	return 0, false
}

// Decode reads a Pool Member Selection Policy parameter (RFC 5354, RFC 5356):
// the policy type and its fields. An unknown type, or a value that does not
// hold exactly the type's fields, gives an *Error (ErrUnknownPolicy,
// ErrBadLength) carrying cause Invalid Values. Decode never panics.
func Decode(p tlv.Policy) (Type, Values, error) {
	t := Type(p.Type)
	inf := infoOf(t)
	if inf == nil {
		return t, Values{}, unknown(t)
	}
	if len(p.Value) != 4*len(inf.fields) {
		return t, Values{}, &Error{Type: t, Cause: tlv.CauseInvalidValues, Err: ErrBadLength}
	}
	var v Values
	for i, f := range inf.fields {
		f.set(&v, binary.BigEndian.Uint32(p.Value[4*i:]))
	}
	return t, v, nil
}

// AppendValue appends the wire fields of v for policy t (the bytes after the
// Policy Type) to b. Nothing is appended for an unknown t.
func AppendValue(b []byte, t Type, v Values) []byte {
	for _, f := range t.Fields() {
		b = binary.BigEndian.AppendUint32(b, f.get(&v))
	}
	return b
}

// Encode returns the policy parameter for t and v, as a registrar puts it in
// a Pool Element or in a handle resolution response (there RSPLIB sends the
// values of the first selected PE).
func Encode(t Type, v Values) tlv.Policy {
	return tlv.Policy{Type: uint32(t), Value: AppendValue(make([]byte, 0, 4*len(t.Fields())), t, v)}
}
