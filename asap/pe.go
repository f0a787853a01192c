package asap

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-rserpool/rserpool/policy"
	"github.com/go-rserpool/rserpool/tlv"
	"github.com/go-rserpool/rserpool/transport"
)

// PoolElement is a running pool element: a PoolElementCore driven on its
// own goroutine over a transport.Transport (the associations to
// registrars). It is safe for concurrent use. It is not tlv.PoolElement,
// which is the Pool Element parameter (RFC 5354 §3.10): the data about one
// PE that a registrar stores and a pool user's Resolve and Dial return.
type PoolElement struct {
	core *PoolElementCore
	ep   *endpoint

	// waiters, touched only on the loop
	regWait   []chan error
	deregWait []chan error

	events  chan<- PEEvent
	dropped atomic.Uint64

	// counts for Stats, written on the loop
	nRegistered, nLost, nRegained, nRefused, nNoRegistrar, nHomeChanged atomic.Uint64
	lost                                                                bool // touched only on the loop

	closeOnce sync.Once
}

// PEEventKind says what happened to a pool element's registration; see
// PEEvent.
type PEEventKind uint8

// Kinds of PEEvent.
const (
	// PEEventRegistered: a registrar accepted the registration and the PE
	// was not registered before (RFC 5352 §3.1). Re-registrations of a
	// registered PE (T4, policy updates) send no event.
	PEEventRegistered PEEventKind = iota + 1
	// PEEventLost: the PE was registered and no longer is: the home
	// association went down (ErrHomeLost) or the home stopped answering
	// (ErrTimeout). The PE hunts for a registrar and registers again by
	// itself.
	PEEventLost
	// PEEventRefused: a registrar refused the registration, and the PE
	// is not registered (a refused re-registration ends the registration
	// too); Err is the *RejectError. When Retry is not zero the refusal is transient
	// (RejectError.Transient) and the PE registers again at Retry; when
	// zero it is final and the PE stopped trying.
	PEEventRefused
	// PEEventNoRegistrar: MaxServerHunts server hunts found no registrar;
	// Err is the *NoRegistrarError. The PE goes on hunting (the next
	// round is due at Retry) and registers when it finds one.
	PEEventNoRegistrar
	// PEEventHomeChanged: the PE has a new home registrar (server hunt,
	// RFC 5352 §3.6, or a takeover by Endpoint Keep Alive, §3.7);
	// ServerID is its server ID, 0 when not known yet.
	PEEventHomeChanged
	// PEEventRegistrarRefused: PEConfig.AuthorizeRegistrar refused the
	// peer of an association with a registrar, which was aborted before
	// any ASAP message: one the server hunt dialled (the hunt goes on with
	// the other registrars) or one a registrar opened to the PE's endpoint
	// (a takeover's Endpoint Keep Alive, RFC 5352 §3.7, that therefore
	// does not change the home). Err is the *RegistrarRefusedError.
	PEEventRegistrarRefused
)

var peEventNames = [...]string{
	PEEventRegistered:       "registered",
	PEEventLost:             "registration lost",
	PEEventRefused:          "refused",
	PEEventNoRegistrar:      "no registrar",
	PEEventHomeChanged:      "home changed",
	PEEventRegistrarRefused: "registrar refused",
}

// String names the kind.
func (k PEEventKind) String() string {
	if int(k) < len(peEventNames) && peEventNames[k] != "" {
		return peEventNames[k]
	}
	return fmt.Sprintf("PEEventKind(%d)", uint8(k))
}

// PEEvent tells the host of a PoolElement about its registration; see
// PEConfig.Events.
type PEEvent struct {
	Kind PEEventKind
	// Time is the PE's clock when it happened.
	Time time.Time
	// ServerID is the home registrar's server ID (Registered,
	// HomeChanged), 0 while unknown.
	ServerID uint32
	// Err says why (Lost, Refused, NoRegistrar, RegistrarRefused).
	Err error
	// Retry is when the PE tries again by itself (Refused, NoRegistrar);
	// zero after a final refusal.
	Retry time.Time
}

// String describes the event in one line.
func (e PEEvent) String() string {
	s := e.Kind.String()
	if e.ServerID != 0 {
		s += " (registrar " + tlv.FormatID(e.ServerID) + ")"
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	if !e.Retry.IsZero() {
		s += "; retrying"
	}
	return s
}

// NewPoolElement validates cfg and starts a pool element that talks to
// registrars over tr. It does not register until Register is called. It
// fails with ErrInvalidConfig when cfg names no registrar and no announcer
// is given (WithAnnouncer). A zero cfg.Kind is taken from tr when it is a
// transport.KindReporter. When tr is a transport.EndpointTransport, the PE
// opens its ASAP endpoint (PEConfig.EndpointAddr) here and fails with the
// transport's error when it cannot.
func NewPoolElement(cfg PEConfig, tr transport.Transport, opts ...Option) (*PoolElement, error) {
	o := applyOptions(opts)
	if err := checkDiscovery(cfg.Registrars, o); err != nil {
		return nil, err
	}
	cfg.Kind = kindOf(cfg.Kind, tr)
	core, err := NewPoolElementCore(cfg)
	if err != nil {
		return nil, err
	}
	lst, err := openEndpoint(cfg, tr)
	if err != nil {
		return nil, err
	}
	maxAcc := cfg.MaxAccepted
	if maxAcc == 0 {
		maxAcc = DefaultMaxAccepted
	}
	pe := &PoolElement{core: core, events: cfg.Events}
	pe.ep = startEndpoint(core, tr, core.log, pe.event, o, listening{lst: lst, acc: core, max: maxAcc},
		regAuth{check: cfg.AuthorizeRegistrar, refused: func(now time.Time, err error) {
			pe.emit(PEEvent{Kind: PEEventRegistrarRefused, Time: now, Err: err})
		}})
	return pe, nil
}

// EndpointAddr returns the address of the PE's ASAP endpoint, from which
// it dials registrars and at which they reach it (PEConfig.EndpointAddr),
// or the zero Addr when it has none.
func (pe *PoolElement) EndpointAddr() transport.Addr {
	if pe.ep.lst == nil {
		return transport.Addr{}
	}
	return pe.ep.lst.Addr()
}

// EventsDropped counts the events PEConfig.Events had no room for.
func (pe *PoolElement) EventsDropped() uint64 { return pe.dropped.Load() }

// PEStats counts what happened to a PoolElement's registration since it
// started; each count matches the PEEvents of its kind, whether or not
// PEConfig.Events had room for them.
type PEStats struct {
	Registered    uint64 // registrations accepted while not registered (PEEventRegistered), the first one included
	Lost          uint64 // registrations lost (PEEventLost)
	Regained      uint64 // registrations accepted again after a loss
	Refused       uint64 // refusals (PEEventRefused)
	NoRegistrar   uint64 // registrations that found no registrar (PEEventNoRegistrar)
	HomeChanged   uint64 // new home registrars (PEEventHomeChanged): the PE's failovers between registrars
	EventsDropped uint64 // events PEConfig.Events had no room for
	// RegistrarsRefused counts the associations with registrars that
	// PEConfig.AuthorizeRegistrar refused (PEEventRegistrarRefused).
	RegistrarsRefused uint64
}

// Stats returns the PE's counts. It is safe to call at any time, also
// after Close.
func (pe *PoolElement) Stats() PEStats {
	return PEStats{
		Registered: pe.nRegistered.Load(), Lost: pe.nLost.Load(), Regained: pe.nRegained.Load(),
		Refused: pe.nRefused.Load(), NoRegistrar: pe.nNoRegistrar.Load(), HomeChanged: pe.nHomeChanged.Load(),
		EventsDropped: pe.dropped.Load(), RegistrarsRefused: pe.ep.nRefusedR.Load(),
	}
}

// emit hands the host an event without ever waiting for it.
func (pe *PoolElement) emit(ev PEEvent) { offer(pe.events, ev, &pe.dropped) }

func (pe *PoolElement) event(now time.Time, o Output) {
	switch o := o.(type) {
	case Registered:
		if !o.Renewal { // counted before Register returns
			pe.nRegistered.Add(1)
			if pe.lost {
				pe.nRegained.Add(1)
				pe.lost = false
			}
		}
		for _, w := range pe.regWait {
			w <- nil
		}
		pe.regWait = nil
		if !o.Renewal {
			pe.emit(PEEvent{Kind: PEEventRegistered, Time: now, ServerID: o.ServerID})
		}
	case RegistrationFailed:
		kind, n := PEEventRefused, &pe.nRefused
		if errors.Is(o.Err, ErrNoRegistrar) {
			kind, n = PEEventNoRegistrar, &pe.nNoRegistrar
		}
		n.Add(1)
		for _, w := range pe.regWait {
			w <- o.Err
		}
		pe.regWait = nil
		pe.emit(PEEvent{Kind: kind, Time: now, Err: o.Err, Retry: o.Retry})
	case RegistrationLost:
		pe.nLost.Add(1)
		pe.lost = true
		pe.emit(PEEvent{Kind: PEEventLost, Time: now, Err: o.Err})
	case HomeChanged:
		pe.nHomeChanged.Add(1)
		pe.emit(PEEvent{Kind: PEEventHomeChanged, Time: now, ServerID: o.ServerID})
	case Deregistered:
		for _, w := range pe.deregWait {
			w <- o.Err
		}
		pe.deregWait = nil
	}
}

// ID returns the PE Identifier.
func (pe *PoolElement) ID() uint32 { return pe.core.ID() }

// Register registers the PE (RFC 5352 §3.1) and waits until a registrar
// accepted it (nil), refused it (*RejectError), or MaxServerHunts server
// hunts found no registrar (*NoRegistrarError, errors.Is ErrNoRegistrar).
// After a NoRegistrarError or a transient refusal
// (RejectError.Transient) the PE keeps trying in the background, with
// back-off, and PEConfig.Events tells when it registers; after a final
// refusal it stops. When ctx ends first, Register returns ctx's error and
// the PE keeps trying. Once registered, the PE re-registers on its own
// (T4), and after losing its home registrar registers with the next one
// the server hunt finds, until Deregister or Close.
func (pe *PoolElement) Register(ctx context.Context) error {
	w := make(chan error, 1)
	err := pe.ep.call(ctx, func(now time.Time) {
		if pe.core.Registered() && pe.core.regDue.IsZero() {
			w <- nil
			return
		}
		pe.regWait = append(pe.regWait, w)
		pe.core.Register(now)
	})
	if err != nil {
		return err
	}
	return pe.wait(ctx, w)
}

// Deregister deregisters the PE (RFC 5352 §3.3) and waits for the
// registrar's answer: nil, a *RejectError, ErrTimeout after T3 retries,
// or ErrNotRegistered.
func (pe *PoolElement) Deregister(ctx context.Context) error {
	w := make(chan error, 1)
	err := pe.ep.call(ctx, func(now time.Time) {
		for _, rw := range pe.regWait {
			rw <- ErrNotRegistered
		}
		pe.regWait = nil
		pe.deregWait = append(pe.deregWait, w)
		if err := pe.core.Deregister(now); err != nil {
			pe.deregWait = pe.deregWait[:len(pe.deregWait)-1]
			w <- err
		}
	})
	if err != nil {
		return err
	}
	return pe.wait(ctx, w)
}

// UpdatePolicy sets new policy values (e.g. the current load); a
// registered PE re-registers with them at once (RFC 5352 §3.1).
func (pe *PoolElement) UpdatePolicy(ctx context.Context, v policy.Values) error {
	return pe.ep.call(ctx, func(now time.Time) { pe.core.UpdatePolicy(now, v) })
}

// Registered reports whether the PE is registered.
func (pe *PoolElement) Registered() bool {
	var r bool
	if pe.ep.call(context.Background(), func(time.Time) { r = pe.core.Registered() }) != nil {
		return false
	}
	return r
}

func (pe *PoolElement) wait(ctx context.Context, w chan error) error {
	select {
	case err := <-w:
		return err
	case <-ctx.Done():
		return ctx.Err()
	case <-pe.ep.stopped:
		return ErrClosed
	}
}

// Close stops the PE and closes its associations; it does not
// deregister (call Deregister first for a clean exit: otherwise the
// registrar drops the PE when its keep-alives fail or its registration
// life ends).
func (pe *PoolElement) Close() error {
	pe.closeOnce.Do(pe.ep.close)
	return nil
}
