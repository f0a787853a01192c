package asap

import (
	"errors"
	"fmt"
	"strings"

	"github.com/go-rserpool/rserpool/tlv"
)

// Sentinel errors of the pool element and pool user roles, usable with
// errors.Is.
var (
	// ErrNotRegistered: the pool element is not registered (Deregister
	// before Register, or after a rejection).
	ErrNotRegistered = errors.New("asap: pool element not registered")
	// ErrNoRegistrar: no registrar is known or reachable (server hunt,
	// RFC 5352 §3.6, found none).
	ErrNoRegistrar = errors.New("asap: no registrar reachable")
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
