package policy

import (
	"errors"
	"fmt"
	"math/rand/v2"

	"github.com/go-rserpool/rserpool/tlv"
)

// Type is a pool member selection policy type code (RFC 5356 §4-§5, RSPLIB 3.4.4 for the extended policies).
type Type uint32

// Policy type codes. The 0x0000xxxx codes are RFC 5356's non-adaptive
// policies, the 0x4000xxxx codes its adaptive ones, and the 0xb000xxxx codes
// RSPLIB's extensions (no IANA assignment).
const (
	RoundRobin                             Type = 0x00000001
	WeightedRoundRobin                     Type = 0x00000002
	Random                                 Type = 0x00000003
	WeightedRandom                         Type = 0x00000004
	Priority                               Type = 0x00000005
	LeastUsed                              Type = 0x40000001
	LeastUsedDegradation                   Type = 0x40000002
	PriorityLeastUsed                      Type = 0x40000003
	RandomizedLeastUsed                    Type = 0x40000004
	RandomizedPriorityLeastUsed            Type = 0xb0001001
	RandomizedLeastUsedDegradation         Type = 0xb0001002
	PriorityLeastUsedDegradation           Type = 0xb0001003
	RandomizedPriorityLeastUsedDegradation Type = 0xb0001004
	WeightedRandomDPF                      Type = 0xb0002001
	LeastUsedDPF                           Type = 0xb0002002
	LeastUsedDegradationDPF                Type = 0xb0002003
)

// MaxLoad is the wire value of a 100 % Load, Load Degradation or DPF field
// (the fields are fractions of 0xffffffff).
const MaxLoad = 0xffffffff

// Values are the per-PE policy fields. Only those of the PE's policy type are
// meaningful; the others are zero.
type Values struct {
	Weight          uint32
	Priority        uint32
	Load            uint32 // fraction of 0xffffffff
	LoadDegradation uint32 // fraction of 0xffffffff
	LoadDPF         uint32 // fraction of 0xffffffff
	WeightDPF       uint32 // fraction of 0xffffffff
	Distance        uint32 // milliseconds
}

// Selector keeps the members of one pool in the order its policy picks them.
// Members are named by slots: small dense non-negative ints chosen by the
// caller (who reuses freed slots), so an implementation can index slices.
//
// Add must not be called for a slot that is present, and Update and Remove
// only for present slots. Selectors are not safe for concurrent use.
type Selector interface {
	Add(slot int32, v Values)
	// Update gives a member new policy values (re-registration, handle
	// update): it resets local degradation and moves it in the order.
	Update(slot int32, v Values)
	Remove(slot int32)
	// Clear removes every member, in one pass over them, which is cheaper
	// than removing them one by one (a pool whose PEs all expire at once).
	Clear()
	// Select appends up to n distinct slots to dst in selection order and
	// applies the policy's per-selection updates (RR pointer, degradation).
	Select(n int, dst []int32) []int32
	Len() int
}

// Errors. Both are returned wrapped in an *Error carrying the RFC 5354 cause
// a registrar answers with; test them with errors.Is.
var (
	// ErrUnknownPolicy: the policy type code is not one this package knows.
	ErrUnknownPolicy = errors.New("policy: unknown policy type")
	// ErrBadLength: the policy parameter's value does not hold exactly the
	// fields of its policy type.
	ErrBadLength = errors.New("policy: wrong policy parameter length")
)

// Error is a policy error with the Operation Error cause (RFC 5354) that a
// registrar reports for it.
type Error struct {
	Type  Type          // the offending policy type
	Cause tlv.CauseCode // the cause to put in the Operation Error
	Err   error         // ErrUnknownPolicy or ErrBadLength
}

func (e *Error) Error() string { return fmt.Sprintf("%v: %v", e.Err, e.Type) }

// Unwrap returns the sentinel.
func (e *Error) Unwrap() error { return e.Err }

// CauseUnknownPolicy is the Operation Error cause used for a policy type the
// registrar does not support. RFC 5352/5354 give no dedicated cause; Invalid
// Values (the parameter carries a value this registrar cannot use) fits best.
// A pool whose members disagree on the type is a different case: handlespace
// answers it with tlv.CauseInconsistentPoolingPolicy.
const CauseUnknownPolicy = tlv.CauseInvalidValues

func unknown(t Type) error {
	return &Error{Type: t, Cause: CauseUnknownPolicy, Err: ErrUnknownPolicy}
}

// Options tune a selector. The zero value is RSPLIB's default behaviour.
type Options struct {
	// MaxIncrement is how many of the selected members get the per-selection
	// update (new sequence number, WRR counters, degradation) in one Select:
	// RSPLIB's MaxIncrement. 0 means the default, 1: one handle resolution
	// moves the round-robin position by one, however many PEs it returns.
	MaxIncrement int
}

// DefaultMaxIncrement is the MaxIncrement used when Options.MaxIncrement is 0
// (RSPLIB 3.4.4's default for every sorted policy).
const DefaultMaxIncrement = 1

// New returns an empty selector for policy t. Randomized policies draw from
// src (math/rand/v2), so a seeded source makes selections reproducible; src
// may be nil for the sorted policies, and for randomized ones nil means a
// randomly seeded source. An unknown t gives an *Error wrapping
// ErrUnknownPolicy.
func New(t Type, src rand.Source) (Selector, error) {
	return NewWithOptions(t, src, Options{})
}

// NewWithOptions is New with non-default Options.
func NewWithOptions(t Type, src rand.Source, o Options) (Selector, error) {
	return NewShared(t, src, o, nil)
}

// NewShared is NewWithOptions for a selector of a policy kept in sort
// order (not t.Randomized()) that keeps its per-member data in sp, shared
// with the other selectors made with sp: their members are named by slots
// of one space, such as the caller's record indexes across all its pools,
// and a slot may be present in only one of them at a time. Such a
// selector's memory grows with the largest slot in use, not with its own
// member count. Randomized policies ignore sp (their slots are their own;
// keep them small and dense); a nil sp is NewWithOptions.
func NewShared(t Type, src rand.Source, o Options, sp *SlotSpace) (Selector, error) {
	inf, ok := infos[t]
	if !ok {
		return nil, unknown(t)
	}
	maxInc := o.MaxIncrement
	if maxInc <= 0 {
		maxInc = DefaultMaxIncrement
	}
	if inf.random {
		if src == nil {
			src = rand.NewPCG(rand.Uint64(), rand.Uint64())
		}
		return newRandomSelector(t, src, maxInc), nil
	}
	return newSortedSelector(t, maxInc, sp), nil
}
