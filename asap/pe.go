package asap

import (
	"context"
	"sync"
	"time"

	"github.com/go-rserpool/rserpool/policy"
	"github.com/go-rserpool/rserpool/transport"
)

// PoolElement is a running pool element: a PoolElementCore driven on its
// own goroutine over a transport.Transport (the associations to
// registrars). It is safe for concurrent use.
type PoolElement struct {
	core *PoolElementCore
	ep   *endpoint

	// waiters, touched only on the loop
	regWait   []chan error
	deregWait []chan error

	closeOnce sync.Once
}

// NewPoolElement validates cfg and starts a pool element that talks to
// registrars over tr. It does not register until Register is called.
func NewPoolElement(cfg PEConfig, tr transport.Transport, opts ...Option) (*PoolElement, error) {
	core, err := NewPoolElementCore(cfg)
	if err != nil {
		return nil, err
	}
	pe := &PoolElement{core: core}
	pe.ep = startEndpoint(core, tr, core.log, pe.event, opts)
	return pe, nil
}

func (pe *PoolElement) event(now time.Time, o Output) {
	switch o := o.(type) {
	case Registered:
		for _, w := range pe.regWait {
			w <- nil
		}
		pe.regWait = nil
	case RegistrationFailed:
		for _, w := range pe.regWait {
			w <- o.Err
		}
		pe.regWait = nil
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
// accepted it or refused it (*RejectError). When ctx ends first, Register
// returns ctx's error and the PE keeps trying in the background. Once
// registered, the PE re-registers on its own (T4) until Deregister or
// Close.
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
