package asap

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
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
	noCache     bool
	onFailover  func(tlv.PoolHandle, tlv.PoolElement, error)

	waits map[uint64]chan ResolutionDone // touched only on the loop

	// counts for Stats
	nFromCache, nFromRegistrar, nFailed, nFailovers, nReported atomic.Uint64

	closeOnce sync.Once

	sessMu   sync.Mutex
	sessions map[*Session]struct{} // open sessions; nil once closed
}

// PUStats counts a PoolUser's work since it started.
type PUStats struct {
	// FromCache counts the Resolve, Select and Dial calls answered from
	// the cache, without asking a registrar (stale.cache.value, RFC 5352
	// §5.3); FromRegistrar those a registrar's ASAP_HANDLE_RESOLUTION_RESPONSE
	// answered (§3.5), and ResolutionsFailed those whose resolution failed
	// (no registrar, an unknown pool, ...). Dial counts once per PE it
	// selects.
	FromCache         uint64
	FromRegistrar     uint64
	ResolutionsFailed uint64
	// Failovers counts the PEs Dial gave up on and failed over from
	// (PUConfig.OnFailover calls); Unreachable the PEs reported with
	// ReportUnreachable, by Dial or by the host (§3.5).
	Failovers   uint64
	Unreachable uint64
	// RegistrarsRefused counts the associations with registrars that
	// PUConfig.AuthorizeRegistrar refused (each a failed dial of the
	// server hunt).
	RegistrarsRefused uint64
}

// Stats returns the pool user's counts. It is safe to call at any time,
// also after Close.
func (pu *PoolUser) Stats() PUStats {
	return PUStats{
		FromCache: pu.nFromCache.Load(), FromRegistrar: pu.nFromRegistrar.Load(), ResolutionsFailed: pu.nFailed.Load(),
		Failovers: pu.nFailovers.Load(), Unreachable: pu.nReported.Load(), RegistrarsRefused: pu.ep.nRefusedR.Load(),
	}
}

// NewPoolUser validates cfg and starts a pool user that talks to
// registrars, and dials PEs, over tr. It fails with ErrInvalidConfig when
// cfg names no registrar and no announcer is given (WithAnnouncer). A
// zero cfg.Kind is taken from tr when it is a transport.KindReporter.
func NewPoolUser(cfg PUConfig, tr transport.Transport, opts ...Option) (*PoolUser, error) {
	if cfg.DialTimeout < 0 || cfg.MaxFailover < 0 {
		return nil, fmt.Errorf("%w: DialTimeout and MaxFailover must not be negative", ErrInvalidConfig)
	}
	o := applyOptions(opts)
	if err := checkDiscovery(cfg.Registrars, o); err != nil {
		return nil, err
	}
	cfg.Kind = kindOf(cfg.Kind, tr)
	core, err := NewPoolUserCore(cfg)
	if err != nil {
		return nil, err
	}
	pu := &PoolUser{core: core, tr: tr, kind: cfg.Kind, dialTimeout: cfg.DialTimeout, maxFailover: cfg.MaxFailover,
		noCache: cfg.StaleCache < 0, onFailover: cfg.OnFailover, waits: map[uint64]chan ResolutionDone{},
		sessions: map[*Session]struct{}{}}
	if pu.dialTimeout == 0 {
		pu.dialTimeout = DefaultDialTimeout
	}
	if pu.maxFailover == 0 {
		pu.maxFailover = DefaultMaxFailover
	}
	pu.ep = startEndpoint(core, tr, core.log, pu.event, o, listening{}, regAuth{check: cfg.AuthorizeRegistrar})
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
// (stale.cache.value), else from a registrar (RFC 5352 §3.5). With no
// registrar reachable it fails with a *NoRegistrarError (errors.Is
// ErrNoRegistrar) after MaxServerHunts failed server hunts; Select and
// Dial, which resolve, fail the same way.
func (pu *PoolUser) Resolve(ctx context.Context, handle []byte) ([]tlv.PoolElement, error) {
	w := make(chan ResolutionDone, 1)
	var req uint64
	var asked bool
	err := pu.ep.call(ctx, func(now time.Time) {
		req = pu.core.Resolve(now, handle)
		pu.waits[req] = w
		// Unless it was answered at once (from the cache, or refused),
		// the core now has a query out for the handle.
		_, asked = pu.core.queries[string(handle)]
	})
	if err != nil {
		return nil, err
	}
	select {
	case d := <-w:
		switch {
		case d.Err != nil:
			pu.nFailed.Add(1)
		case asked:
			pu.nFromRegistrar.Add(1)
		default:
			pu.nFromCache.Add(1)
		}
		return d.PEs, d.Err
	case <-ctx.Done():
		pu.ep.l.Post(func(time.Time) { delete(pu.waits, req) })
		return nil, ctx.Err()
	case <-pu.ep.stopped:
		return nil, ErrClosed
	}
}

// Select picks one PE of the pool with the pool's policy, resolving the
// handle first when the cache is stale or empty, and for every call when
// the cache is disabled (PUConfig.StaleCache < 0). A PE picked from a
// resolution it waited for is returned even if that answer aged past
// stale.cache.value meanwhile.
func (pu *PoolUser) Select(ctx context.Context, handle []byte) (tlv.PoolElement, error) {
	return pu.selectPE(ctx, handle, nil)
}

// selectPE is Select leaving out (and dropping from the cache) the PEs in
// skip, which Dial already found unreachable.
func (pu *PoolUser) selectPE(ctx context.Context, handle []byte, skip []uint32) (tlv.PoolElement, error) {
	var pe tlv.PoolElement
	var serr error
	if !pu.noCache {
		err := pu.ep.call(ctx, func(now time.Time) {
			for _, id := range skip {
				pu.core.drop(handle, id)
			}
			pe, serr = pu.core.Select(now, handle)
		})
		if err != nil {
			return tlv.PoolElement{}, err
		}
		if serr == nil {
			pu.nFromCache.Add(1)
		}
		if serr == nil || !(errors.Is(serr, ErrStale) || errors.Is(serr, ErrNoPoolElement)) {
			return pe, serr
		}
	}
	if _, err := pu.Resolve(ctx, handle); err != nil {
		return tlv.PoolElement{}, err
	}
	if err := pu.ep.call(ctx, func(time.Time) { pe, serr = pu.core.selectResolved(handle, skip) }); err != nil {
		return tlv.PoolElement{}, err
	}
	return pe, serr
}

// ReportUnreachable reports a PE the host could not use (RFC 5352 §3.5):
// it is dropped from the cache at once and reported to the home registrar
// with ASAP_ENDPOINT_UNREACHABLE (without a home registrar only the cache
// is purged). Dial does this itself for PEs it cannot dial; the host calls
// it for a PE that it found dead after a successful Dial (an association
// that failed, or a request that timed out), then dials again to fail
// over. The registrar removes a PE once enough pool users reported it
// (MAX-BAD-PE-REPORT).
func (pu *PoolUser) ReportUnreachable(ctx context.Context, handle []byte, peID uint32) error {
	h := bytes.Clone(handle)
	return pu.ep.call(ctx, func(now time.Time) {
		pu.nReported.Add(1)
		pu.core.ReportUnreachable(now, h, peID)
	})
}

// DialError is PoolUser.Dial's error when it tried at least one PE and
// none could be dialled: Err says why it stopped (ErrNoPoolElement when
// MaxFailover PEs failed or none was left, else the resolution's error),
// Last is the failure of the last PE tried. errors.Is and errors.As see
// both.
type DialError struct {
	Pool  tlv.PoolHandle
	Tried int   // PEs tried, each failed
	Last  error // the last PE's failure: its dial error, or an unusable transport
	Err   error // why Dial gave up
}

// Error implements error.
func (e *DialError) Error() string {
	return fmt.Sprintf("asap: dial pool %q: %v after %d PEs tried (last failure: %v)", []byte(e.Pool), e.Err, e.Tried, e.Last)
}

// Unwrap returns Err and Last.
func (e *DialError) Unwrap() []error { return []error{e.Err, e.Last} }

// Dial hands the host an association to a live PE of the pool: it selects
// a PE with the pool's policy (resolving the handle when needed), dials its
// user transport, and when that fails reports the PE unreachable (RFC
// 5352 §3.5) and fails over to the next one, up to MaxFailover PEs. One
// Dial never tries the same PE twice, even when a new resolution returns
// it again. Each failed PE is passed to PUConfig.OnFailover. When PEs were
// tried and all failed, the error is a *DialError wrapping the last
// failure; when ctx ends, ctx's error.
func (pu *PoolUser) Dial(ctx context.Context, handle []byte) (transport.Conn, tlv.PoolElement, error) {
	var tried []uint32
	var last error
	for len(tried) < pu.maxFailover {
		pe, err := pu.selectPE(ctx, handle, tried)
		if err != nil {
			if len(tried) == 0 || ctx.Err() != nil || errors.Is(err, ErrClosed) {
				return nil, tlv.PoolElement{}, err
			}
			return nil, tlv.PoolElement{}, &DialError{Pool: bytes.Clone(handle), Tried: len(tried), Last: last, Err: err}
		}
		tried = append(tried, pe.ID)
		if !dialable(pe.UserTransport) {
			// Not the PE's fault: drop it from this pool user's cache
			// without reporting it.
			last = fmt.Errorf("asap: PE %v has a %v user transport", tlv.PEIdentifier(pe.ID), pe.UserTransport.Type)
			if err := pu.ep.call(ctx, func(time.Time) { pu.core.drop(handle, pe.ID) }); err != nil {
				return nil, tlv.PoolElement{}, err
			}
			pu.failedOver(handle, pe, last)
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
		last = fmt.Errorf("asap: PE %v: %w", tlv.PEIdentifier(pe.ID), err)
		pu.core.log.Debug("pu: PE unreachable, failing over", "pe", tlv.PEIdentifier(pe.ID), "err", err)
		if err := pu.ReportUnreachable(ctx, handle, pe.ID); err != nil {
			return nil, tlv.PoolElement{}, err
		}
		pu.failedOver(handle, pe, err)
	}
	return nil, tlv.PoolElement{}, &DialError{Pool: bytes.Clone(handle), Tried: len(tried), Last: last, Err: ErrNoPoolElement}
}

// failedOver tells PUConfig.OnFailover, on the goroutine that runs Dial.
func (pu *PoolUser) failedOver(handle []byte, pe tlv.PoolElement, err error) {
	pu.nFailovers.Add(1)
	if pu.onFailover != nil {
		pu.onFailover(bytes.Clone(handle), pe, err)
	}
}

// reportLater is ReportUnreachable without waiting, for a session's
// loop: the report is queued on the pool user's loop before the selection
// that follows it.
func (pu *PoolUser) reportLater(handle []byte, peID uint32) {
	h := bytes.Clone(handle)
	pu.ep.l.Post(func(now time.Time) {
		pu.nReported.Add(1)
		pu.core.ReportUnreachable(now, h, peID)
	})
}

// addSession registers an open session; false after Close.
func (pu *PoolUser) addSession(s *Session) bool {
	pu.sessMu.Lock()
	defer pu.sessMu.Unlock()
	if pu.sessions == nil {
		return false
	}
	pu.sessions[s] = struct{}{}
	return true
}

func (pu *PoolUser) removeSession(s *Session) {
	pu.sessMu.Lock()
	defer pu.sessMu.Unlock()
	delete(pu.sessions, s)
}

// Close closes the pool user's sessions (PoolUser.Connect), stops the pool
// user and closes its associations.
func (pu *PoolUser) Close() error {
	pu.closeOnce.Do(func() {
		pu.sessMu.Lock()
		open := pu.sessions
		pu.sessions = nil
		pu.sessMu.Unlock()
		for s := range open {
			s.Close()
		}
		pu.ep.close()
	})
	return nil
}
