package status

import (
	"errors"
	"expvar"
	"fmt"
	"sync"

	"github.com/go-rserpool/rserpool/asap"
	"github.com/go-rserpool/rserpool/enrp"
)

// ErrPublished: an expvar variable of that name exists already (expvar
// variables cannot be unpublished).
var ErrPublished = errors.New("status: expvar name already published")

// Publish publishes r's counts (enrp.Stats, field names as there) as the
// expvar variable name, read anew each time the variable is (for instance
// on /debug/vars). Where expvar.Publish panics on a name already used,
// Publish returns an error wrapping ErrPublished and publishes nothing.
func Publish(name string, r *enrp.Registrar) error {
	return publish(name, func() any { return r.Stats() })
}

// PublishPoolElement publishes pe's counts (asap.PEStats) as the expvar
// variable name; see Publish.
func PublishPoolElement(name string, pe *asap.PoolElement) error {
	return publish(name, func() any { return pe.Stats() })
}

// PublishPoolUser publishes pu's counts (asap.PUStats) as the expvar
// variable name; see Publish.
func PublishPoolUser(name string, pu *asap.PoolUser) error {
	return publish(name, func() any { return pu.Stats() })
}

// publishMu makes the look-up and the publication one step for the
// callers of this package.
var publishMu sync.Mutex

func publish(name string, f func() any) error {
	publishMu.Lock()
	defer publishMu.Unlock()
	if expvar.Get(name) != nil {
		return fmt.Errorf("%w: %q", ErrPublished, name)
	}
	expvar.Publish(name, expvar.Func(f))
	return nil
}
