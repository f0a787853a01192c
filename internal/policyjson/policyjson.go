// Package policyjson lets package policy give tlv.Policy its JSON form
// without tlv importing policy (policy imports tlv). Package policy sets
// both hooks in its init; they are nil in a program that does not link it.
package policyjson

var (
	// Marshal returns the JSON form of a policy parameter, or false when
	// it has none (an unknown type, a value of the wrong length): tlv then
	// writes the raw form.
	Marshal func(typ uint32, value []byte) ([]byte, bool)
	// Unmarshal reads either JSON form back.
	Unmarshal func(data []byte) (typ uint32, value []byte, err error)
)
