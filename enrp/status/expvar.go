package status

import (
	"expvar"

	"github.com/go-rserpool/rserpool/asap"
	"github.com/go-rserpool/rserpool/enrp"
)

// Publish publishes r's counts (enrp.Stats, field names as there) as the
// expvar variable name, read anew each time the variable is (for instance
// on /debug/vars). Like expvar.Publish it panics when name is already
// published; variables cannot be unpublished.
func Publish(name string, r *enrp.Registrar) {
	expvar.Publish(name, expvar.Func(func() any { return r.Stats() }))
}

// PublishPoolElement publishes pe's counts (asap.PEStats) as the expvar
// variable name; see Publish.
func PublishPoolElement(name string, pe *asap.PoolElement) {
	expvar.Publish(name, expvar.Func(func() any { return pe.Stats() }))
}

// PublishPoolUser publishes pu's counts (asap.PUStats) as the expvar
// variable name; see Publish.
func PublishPoolUser(name string, pu *asap.PoolUser) {
	expvar.Publish(name, expvar.Func(func() any { return pu.Stats() }))
}
