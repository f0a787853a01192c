package asap

import (
	"errors"
	"fmt"
	"strings"

	"github.com/go-rserpool/rserpool/tlv"
	"github.com/go-rserpool/rserpool/transport"
)

// Sentinel errors of the pool element and pool user roles, usable with
// errors.Is.
var (
	// ErrNotRegistered: the pool element is not registered (Deregister
	// before Register, or after a rejection).
	ErrNotRegistered = errors.New("asap: pool element not registered")
	// ErrNoRegistrar: no registrar is known or reachable (server hunt,
	// RFC 5352 §3.6, found none). After MaxServerHunts failed hunts the
	// error is a *NoRegistrarError, which matches it.
	ErrNoRegistrar = errors.New("asap: no registrar reachable")
	// ErrHomeLost: the association to the home registrar went down
	// (RFC 5352 §3.6); a pool element's registration is lost with it until
	// it registers again.
	ErrHomeLost = errors.New("asap: association to the home registrar lost")
	// ErrTimeout: a registrar did not answer within the RFC 5352 §5 timers
	// and retries.
	ErrTimeout = errors.New("asap: registrar did not answer")
	// ErrUnknownPool: the registrar does not know the pool handle (error
	// cause 0x9, RFC 5354). A *RejectError carrying that cause matches it.
	ErrUnknownPool = errors.New("asap: unknown pool handle")
	// ErrNoPoolElement: the pool has no element the pool user can use (the
	// resolution returned none, or all were reported unreachable).
	ErrNoPoolElement = errors.New("asap: no usable pool element")
	// ErrStale: the pool user's cache has no fresh entry for the pool
	// (stale.cache.value, RFC 5352 §5.3); resolve the handle first.
	ErrStale = errors.New("asap: cached resolution is stale")
	// ErrClosed: the endpoint was closed.
	ErrClosed = errors.New("asap: endpoint closed")
	// ErrBusy: an operation of the same kind is already under way.
	ErrBusy = errors.New("asap: operation already in progress")
	// ErrInvalidConfig: a configuration field is out of range; the wrapped
	// message names it.
	ErrInvalidConfig = errors.New("asap: invalid configuration")
)

// RejectError is a refusal by a registrar: a registration response with
// the R flag, a deregistration or handle resolution response carrying an
// Operation Error, or an ASAP_ERROR (RFC 5352 §2.2, RFC 5354 error causes).
type RejectError struct {
	Op     tlv.ASAPType // the request that was refused
	Causes []tlv.Cause  // may be empty: a reject without Operation Error
}

// Code returns the first cause code, or tlv.CauseUnspecified when there is
// none.
func (e *RejectError) Code() tlv.CauseCode {
	if len(e.Causes) == 0 {
		return tlv.CauseUnspecified
	}
	return e.Causes[0].Code
}

// Error implements error.
func (e *RejectError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "asap: %v refused by registrar", e.Op)
	for i, c := range e.Causes {
		if i == 0 {
			b.WriteString(": ")
		} else {
			b.WriteString(", ")
		}
		b.WriteString(c.Code.String())
	}
	return b.String()
}

// Transient reports whether the refusal may go away by itself, so that a
// pool element retries it with back-off (PEConfig, Timers.RefusedRetry)
// instead of giving up. RFC 5352 §3.1 leaves this to the implementation;
// the causes of RFC 5354 §3.12 are sorted as follows.
//
// Transient (the registrar or the pool may change without the PE doing
// anything):
//   - 0x0 Unspecified Error, and a reject without any cause: nothing says
//     it is final;
//   - 0x4 Non-unique PE Identifier: the identifier is still bound to
//     another association (a stale one, or an attacker's, RFC 5355 §3.2)
//     until the registrar drops that binding;
//   - 0x5 Inconsistent Pooling Policy, 0x7 Inconsistent Transport Type,
//     0x8 Inconsistent Data/Control Configuration: the pool's other
//     members disagree; the pool changes when they leave or expire;
//   - 0x6 Lack of Resources: the registrar may free some;
//   - 0x9 Unknown Pool Handle: a registration creates its pool, so this
//     is the registrar's state, not the PE's;
//   - codes this package does not know.
//
// Final (sending the same registration again gets the same answer):
//   - 0x1 Unrecognized Parameter and 0x2 Unrecognized Message in a
//     response: the registrar cannot process what the PE sends;
//   - 0x3 Invalid Values: the PE's configuration is wrong;
//   - 0xa Rejection due to security considerations: the registrar does
//     not want this PE (RFC 5355).
//
// A refusal is final when any of its causes is.
func (e *RejectError) Transient() bool {
	for _, c := range e.Causes {
		switch c.Code {
		case tlv.CauseUnrecognizedParameter, tlv.CauseUnrecognizedMessage,
			tlv.CauseInvalidValues, tlv.CauseRejectedSecurity:
			return false
		}
	}
	return true
}

// Is reports whether target is ErrUnknownPool and a cause is Unknown Pool
// Handle (0x9), or target is a *RejectError with the same first code.
func (e *RejectError) Is(target error) bool {
	if target == ErrUnknownPool {
		for _, c := range e.Causes {
			if c.Code == tlv.CauseUnknownPoolHandle {
				return true
			}
		}
		return false
	}
	if t, ok := target.(*RejectError); ok {
		return t.Code() == e.Code()
	}
	return false
}

// newRejectError copies the causes out of an Operation Error (whose info
// bytes alias a receive buffer).
func newRejectError(op tlv.ASAPType, oe *tlv.OperationError) *RejectError {
	e := &RejectError{Op: op}
	if oe != nil {
		for _, c := range oe.Causes {
			e.Causes = append(e.Causes, tlv.Cause{Code: c.Code, Info: append([]byte(nil), c.Info...)})
		}
	}
	return e
}

// NoRegistrarError is the error of a request that waited for a home
// registrar through MaxServerHunts server hunts (RFC 5352 §3.6) without
// finding one: PoolElement.Register, PoolUser.Resolve, Select and Dial. It
// matches ErrNoRegistrar with errors.Is. The endpoint keeps hunting with
// back-off (Timers.T5ServerHuntMax) while something waits for a
// registrar; a pool element keeps trying to register until Deregister or
// Close.
type NoRegistrarError struct {
	// Hunts is the number of failed server hunts: passes over the whole
	// registrar table.
	Hunts int
	// Tried lists the registrars dialled, each once, in the order first
	// dialled; empty when the table was empty (no configured registrar and
	// no ASAP_SERVER_ANNOUNCE heard).
	Tried []transport.Addr
	// Last is the last dial failure (nil when none was seen): the
	// transport's error, or a dial given up after Timers.HuntDialLimit.
	Last error
}

// Error implements error.
func (e *NoRegistrarError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "asap: no registrar reachable after %d server hunts", e.Hunts)
	if len(e.Tried) == 0 {
		b.WriteString(": no registrar known (none configured, none announced)")
		return b.String()
	}
	b.WriteString(" (tried ")
	for i, a := range e.Tried {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(a.String())
	}
	b.WriteString(")")
	if e.Last != nil {
		fmt.Fprintf(&b, ": last error: %v", e.Last)
	}
	return b.String()
}

// Unwrap returns ErrNoRegistrar and Last.
func (e *NoRegistrarError) Unwrap() []error {
	if e.Last == nil {
		return []error{ErrNoRegistrar}
	}
	return []error{ErrNoRegistrar, e.Last}
}
