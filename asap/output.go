package asap

import (
	"time"

	"github.com/go-rserpool/rserpool/tlv"
	"github.com/go-rserpool/rserpool/transport"
)

// AssocID names one association between an endpoint and a registrar. The
// core picks the IDs of associations it asks for (Connect) and of those the
// driver reports as accepted; 0 means "none".
type AssocID uint64

// Output is one thing a sans-IO core asks its driver to do or tell: one of
// Send, Connect, Close, or an event (Registered, RegistrationFailed,
// RegistrationLost, Deregistered, HomeChanged, ResolutionDone).
type Output interface{ isOutput() }

// Send asks the driver to send an ASAP message on an association (PPID 11,
// RFC 5352 §4). The driver encodes it before the core's next call.
type Send struct {
	Assoc AssocID
	Msg   tlv.ASAPMessage
}

// Connect asks the driver to open an association to a registrar (server
// hunt, RFC 5352 §3.6). The driver answers with HandleConnected or
// HandleConnectFailed for the same Assoc.
type Connect struct {
	Assoc AssocID
	Addr  transport.Addr
}

// Close asks the driver to close an association (or to give up dialling
// it). The core forgets it; the driver reports nothing more about it.
type Close struct {
	Assoc AssocID
}

// Registered: the pool element's registration or re-registration was
// accepted (RFC 5352 §3.1).
type Registered struct {
	PEID     uint32
	ServerID uint32 // home registrar, 0 while unknown
	// Renewal: the PE was registered already (a T4 re-registration or a
	// policy update was accepted).
	Renewal bool
}

// RegistrationFailed: a registration did not succeed. Err is a
// *RejectError (a registrar refused it) or a *NoRegistrarError
// (MaxServerHunts server hunts found no registrar). When Retry is not
// zero the core tries again by itself, at Retry at the latest: after a
// transient refusal (RejectError.Transient) with back-off, and for
// NoRegistrarError with the hunt going on. When Retry is zero (a final
// refusal) the core stops trying; the host may fix its values and call
// Register again.
type RegistrationFailed struct {
	Err   error
	Retry time.Time
}

// RegistrationLost: a registered pool element no longer knows itself
// registered: the home association went down (ErrHomeLost) or the home
// stopped answering re-registrations (ErrTimeout). The core re-registers
// by itself after a server hunt (RFC 5352 §3.6).
type RegistrationLost struct {
	Err error
}

// Deregistered: a deregistration ended (RFC 5352 §3.3). Err is nil on a
// clean response, a *RejectError when the registrar answered with an
// Operation Error, ErrTimeout after T3 retries, ErrNoRegistrar when the
// home association was lost.
type Deregistered struct {
	Err error
}

// HomeChanged: the pool element or pool user has a new home registrar
// (server hunt, RFC 5352 §3.6; or an Endpoint Keep Alive from another
// registrar, §3.7).
type HomeChanged struct {
	Assoc    AssocID
	ServerID uint32 // 0 when not yet known
}

// ResolutionDone: a handle resolution started with PoolUserCore.Resolve
// ended. On success PEs is the pool's usable elements (a copy, in the
// order the registrar sent them); on failure Err is a *RejectError,
// ErrUnknownPool, ErrNoPoolElement or ErrTimeout.
type ResolutionDone struct {
	Req        uint64
	PoolHandle []byte
	PEs        []tlv.PoolElement
	Err        error
}

func (Send) isOutput()               {}
func (Connect) isOutput()            {}
func (Close) isOutput()              {}
func (Registered) isOutput()         {}
func (RegistrationFailed) isOutput() {}
func (RegistrationLost) isOutput()   {}
func (Deregistered) isOutput()       {}
func (HomeChanged) isOutput()        {}
func (ResolutionDone) isOutput()     {}
