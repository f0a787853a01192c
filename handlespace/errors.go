package handlespace

import (
	"fmt"

	"github.com/go-rserpool/rserpool/tlv"
)

// Error is a rejected store operation. Cause is the RFC 5354 §3.10 error
// cause a registrar puts into the Operation Error of its response.
//
// errors.Is(err, ErrX) matches on Cause, so
//
//	errors.Is(err, handlespace.ErrInconsistentPoolingPolicy)
//
// holds for every *Error carrying that cause, whatever its Msg.
type Error struct {
	Cause tlv.CauseCode
	Msg   string // human-readable detail; may be empty
}

func (e *Error) Error() string {
	if e.Msg == "" {
		return "handlespace: " + e.Cause.String()
	}
	return "handlespace: " + e.Cause.String() + ": " + e.Msg
}

// Is reports whether target is an *Error with the same cause.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Cause == e.Cause
}

// Sentinel errors, one per cause the store produces. Compare with errors.Is.
var (
	ErrInvalidValues                 = &Error{Cause: tlv.CauseInvalidValues}
	ErrInconsistentPoolingPolicy     = &Error{Cause: tlv.CauseInconsistentPoolingPolicy}
	ErrLackOfResources               = &Error{Cause: tlv.CauseLackOfResources}
	ErrInconsistentTransportType     = &Error{Cause: tlv.CauseInconsistentTransportType}
	ErrInconsistentDataControlConfig = &Error{Cause: tlv.CauseInconsistentDataControlConfig}
	ErrUnknownPoolHandle             = &Error{Cause: tlv.CauseUnknownPoolHandle}
)

func errorf(c tlv.CauseCode, format string, args ...any) *Error {
	return &Error{Cause: c, Msg: fmt.Sprintf(format, args...)}
}
