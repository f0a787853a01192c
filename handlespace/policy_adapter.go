package handlespace

import (
	"github.com/go-rserpool/rserpool/policy"
	"github.com/go-rserpool/rserpool/tlv"
)

// decodeValues checks a PE's policy parameter with package policy: a known
// type and exactly its fields (RFC 5356 §4-§5, RSPLIB 3.4.4 for the extended policies).
func decodeValues(p tlv.Policy) (policy.Values, error) {
	_, v, err := policy.Decode(p)
	return v, err
}

// newSelector returns the selector of a new pool. Sorted policies keep
// their per-member data in the store's shared slot space and are given
// record indexes as slots (shared true), so that a selection leads straight
// to the records; randomized ones get pool-local slots.
func (s *Store) newSelector(t uint32) (sel policy.Selector, shared bool, err error) {
	if policy.Type(t).Randomized() {
		sel, err = policy.New(policy.Type(t), s.rnd)
		return sel, false, err
	}
	sel, err = policy.NewShared(policy.Type(t), s.rnd, policy.Options{}, &s.slots)
	return sel, true, err
}
