package asap

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/go-rserpool/rserpool/tlv"
	"github.com/go-rserpool/rserpool/transport"
)

// DefaultDialTimeout is how long PoolUser.Dial waits for one PE before it
// reports it unreachable and fails over; not an RFC value.
const DefaultDialTimeout = 5 * time.Second

// DefaultMaxFailover bounds the PEs one PoolUser.Dial tries.
const DefaultMaxFailover = 8

// PoolUser is a running pool user: a PoolUserCore driven on its own
// goroutine over a transport.Transport. It is safe for concurrent use.
type PoolUser struct {
	core        *PoolUserCore
	ep          *endpoint
	tr          transport.Transport
	kind        transport.Kind
	dialTimeout time.Duration
	maxFailover int

	waits map[uint64]chan ResolutionDone // touched only on the loop

	closeOnce sync.Once
}

// NewPoolUser validates cfg and starts a pool user that talks to
// registrars, and dials PEs, over tr.
func NewPoolUser(cfg PUConfig, tr transport.Transport, opts ...Option) (*PoolUser, error) {
	if cfg.DialTimeout < 0 || cfg.MaxFailover < 0 {
		return nil, fmt.Errorf("%w: DialTimeout and MaxFailover must not be negative", ErrInvalidConfig)
	}
	core, err := NewPoolUserCore(cfg)
	if err != nil {
		return nil, err
	}
	pu := &PoolUser{core: core, tr: tr, kind: cfg.Kind, dialTimeout: cfg.DialTimeout, maxFailover: cfg.MaxFailover,
		waits: map[uint64]chan ResolutionDone{}}
	if pu.dialTimeout == 0 {
		pu.dialTimeout = DefaultDialTimeout
	}
	if pu.maxFailover == 0 {
		pu.maxFailover = DefaultMaxFailover
	}
	pu.ep = startEndpoint(core, tr, core.log, pu.event, opts)
	return pu, nil
}

func (pu *PoolUser) event(now time.Time, o Output) {
	if d, ok := o.(ResolutionDone); ok {
		if w := pu.waits[d.Req]; w != nil {
			delete(pu.waits, d.Req)
			w <- d
		}
	}
}

// Resolve returns the pool's elements: from the cache while it is fresh
// (stale.cache.value), else from a registrar (RFC 5352 §3.5).
func (pu *PoolUser) Resolve(ctx context.Context, handle []byte) ([]tlv.PoolElement, error) {
	w := make(chan ResolutionDone, 1)
	var req uint64
	err := pu.ep.call(ctx, func(now time.Time) {
		req = pu.core.Resolve(now, handle)
		pu.waits[req] = w
	})
	if err != nil {
		return nil, err
	}
	select {
	case d := <-w:
		return d.PEs, d.Err
	case <-ctx.Done():
		pu.ep.l.Post(func(time.Time) { delete(pu.waits, req) })
		return nil, ctx.Err()
	case <-pu.ep.stopped:
		return nil, ErrClosed
	}
}

// Select picks one PE of the pool with the pool's policy, resolving the
// handle first when the cache is stale or empty.
func (pu *PoolUser) Select(ctx context.Context, handle []byte) (tlv.PoolElement, error) {
	resolved := false
	for {
		var pe tlv.PoolElement
		var serr error
		if err := pu.ep.call(ctx, func(now time.Time) { pe, serr = pu.core.Select(now, handle) }); err != nil {
			return tlv.PoolElement{}, err
		}
		if serr == nil || resolved || !(errors.Is(serr, ErrStale) || errors.Is(serr, ErrNoPoolElement)) {
			return pe, serr
		}
		if _, err := pu.Resolve(ctx, handle); err != nil {
			return tlv.PoolElement{}, err
		}
		resolved = true
	}
}

// ReportUnreachable reports a PE the host could not use (RFC 5352 §3.5):
// it is dropped from the cache and reported to the home registrar.
func (pu *PoolUser) ReportUnreachable(ctx context.Context, handle []byte, peID uint32) error {
	h := bytes.Clone(handle)
	return pu.ep.call(ctx, func(now time.Time) { pu.core.ReportUnreachable(now, h, peID) })
}

// Dial hands the host an association to a live PE of the pool: it selects
// a PE with the pool's policy (resolving the handle when needed), dials its
// user transport, and when that fails reports the PE unreachable (RFC
// 5352 §3.5) and fails over to the next one, up to MaxFailover PEs.
func (pu *PoolUser) Dial(ctx context.Context, handle []byte) (transport.Conn, tlv.PoolElement, error) {
	var last error = ErrNoPoolElement
	for range pu.maxFailover {
		pe, err := pu.Select(ctx, handle)
		if err != nil {
			if errors.Is(err, ErrNoPoolElement) && last != ErrNoPoolElement {
				err = fmt.Errorf("%w (last failure: %w)", err, last)
			}
			return nil, tlv.PoolElement{}, err
		}
		if !dialable(pe.UserTransport) {
			last = fmt.Errorf("asap: PE %08x has a %v user transport", pe.ID, pe.UserTransport.Type)
			pu.ep.call(ctx, func(time.Time) { pu.core.drop(handle, pe.ID) })
			continue
		}
		addr, err := AddrOf(pe.UserTransport, pu.kind)
		if err == nil {
			dctx, cancel := context.WithTimeout(ctx, pu.dialTimeout)
			var c transport.Conn
			c, err = pu.tr.Dial(dctx, addr)
			cancel()
			if err == nil {
				return c, pe, nil
			}
		}
		if ctx.Err() != nil {
			return nil, tlv.PoolElement{}, ctx.Err()
		}
		last = err
		pu.core.log.Debug("pu: PE unreachable, failing over", "pe", pe.ID, "err", err)
		if err := pu.ReportUnreachable(ctx, handle, pe.ID); err != nil {
			return nil, tlv.PoolElement{}, err
		}
	}
	return nil, tlv.PoolElement{}, fmt.Errorf("%w: %d PEs tried (last failure: %w)", ErrNoPoolElement, pu.maxFailover, last)
}

// Close stops the pool user and closes its associations.
func (pu *PoolUser) Close() error {
	pu.closeOnce.Do(pu.ep.close)
	return nil
}
