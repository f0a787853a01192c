package handlespace

import (
	"math/rand/v2"

	"github.com/go-rserpool/rserpool/policy"
	"github.com/go-rserpool/rserpool/tlv"
)

// decodeValues checks a PE's policy parameter with package policy: a known
// type and exactly its fields (RFC 5356 §4-§5, RSPLIB 3.4.4 for the extended policies).
func decodeValues(p tlv.Policy) (policy.Values, error) {
	_, v, err := policy.Decode(p)
	return v, err
}

func newSelector(t uint32, src rand.Source) (policy.Selector, error) {
	return policy.New(policy.Type(t), src)
}
