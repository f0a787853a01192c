package enrp

// Authorization of pool elements, pool users and peer registrars by the
// identities a secured transport verified (RFC 5355, RFC 5352 §6,
// RFC 5353 §6): the handle resolution hook of the Core, and NamePolicy,
// a helper for the common case of name patterns per pool.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path"

	"github.com/go-rserpool/rserpool/tlv"
	"github.com/go-rserpool/rserpool/transport"
)

// refuseResolution asks AuthorizeResolution about a handle resolution on
// association id and, when it refuses, answers it with Rejected due to
// security considerations (0xa, RFC 5354 §3.12) and reports true.
func (c *Core) refuseResolution(id AssocID, m *tlv.HandleResolution) bool {
	var info AssocInfo
	if a := c.assocs[id]; a != nil {
		info = a.info
	}
	err := c.cfg.AuthorizeResolution(info, m.PoolHandle)
	if err == nil {
		return false
	}
	c.stats.ResolutionsRefused++
	c.send(id, &tlv.HandleResolutionResponse{
		PoolHandle: m.PoolHandle,
		Error:      tlv.NewOperationError(tlv.CauseRejectedSecurity, nil),
	})
	if c.log.Enabled(context.Background(), slog.LevelDebug) {
		c.log.Debug("enrp: handle resolution refused", "assoc", id, "pool", m.PoolHandle, "peer", info.Identity, "why", err)
	}
	return true
}

// Errors of the NamePolicy hooks. The registrar logs them; the peer gets
// the RFC's answer only (cause 0xa for a PE or PU, no peering for a
// registrar).
var (
	// ErrUnauthenticated: the association's transport verified no
	// identity (AssocInfo.Authenticated is false), and a rule applies.
	ErrUnauthenticated = errors.New("enrp: peer not authenticated")
	// ErrNotAuthorized: the identity matches none of the patterns that
	// apply, or the pool has no rule and its PoolACL is Closed.
	ErrNotAuthorized = errors.New("enrp: identity not authorized")
)

// MatchIdentity reports whether id matches pattern, a path.Match glob
// ('*' matches any run of characters but '/', so "*.pool.example.org"
// matches "a.pool.example.org" and "a.b.pool.example.org"; '?' and
// '[...]' as in path.Match), compared case-insensitively (DNS names are,
// RFC 4343): against id.Name and against every DNS SAN of the leaf
// certificate. An empty or malformed pattern matches nothing. It is
// [transport.Identity.Matches], which the pool elements' and pool users'
// registrar checks (asap.RegistrarNames) use too.
//
// id.Name is the leaf's first DNS SAN, but for a certificate without DNS
// SANs it is the subject common name (transport.Identity), so such a
// certificate matches by its CN. crypto/x509 no longer takes the CN as a
// host name (Go 1.15), and RFC 6125 §6.4.4 allows it only without SANs;
// a CA that issues names only in the CN, or does not check it, lets the
// CN claim any name: issue pool certificates with DNS SANs.
func MatchIdentity(id transport.Identity, pattern string) bool {
	return id.Matches(pattern)
}

// matchAny checks info against patterns: nil when it is authenticated
// and its identity matches one of them.
func matchAny(info AssocInfo, patterns []string, what string) error {
	if !info.Authenticated {
		return fmt.Errorf("%w (%s, from %v)", ErrUnauthenticated, what, info.Remote)
	}
	for _, p := range patterns {
		if MatchIdentity(info.Identity, p) {
			return nil
		}
	}
	return fmt.Errorf("%w: %v (%s, from %v)", ErrNotAuthorized, info.Identity, what, info.Remote)
}

func validPatterns(field string, patterns []string) error {
	for _, p := range patterns {
		if p == "" {
			return fmt.Errorf("%w: %s: empty identity pattern", ErrInvalidConfig, field)
		}
		if _, err := path.Match(p, ""); err != nil {
			return fmt.Errorf("%w: %s: identity pattern %q: %w", ErrInvalidConfig, field, p, err)
		}
	}
	return nil
}

// PoolACL maps pool handles to the identities allowed to use the pools,
// by name pattern ([MatchIdentity]).
//
// A pool with a rule (an entry in Pools) admits only authenticated
// associations (AssocInfo.Authenticated) whose identity matches one of
// its patterns; an entry with no patterns admits nobody. An
// unauthenticated association is refused wherever a rule applies. A pool
// without a rule is open to every association, authenticated or not,
// unless Closed is set: then it admits nobody.
//
// The zero PoolACL has no rules and is open: it admits everything.
type PoolACL struct {
	// Pools maps a pool handle (its bytes as a string) to the patterns
	// of the identities allowed in it.
	Pools map[string][]string
	// Closed refuses every pool without an entry in Pools. False (the
	// default) leaves such pools open, as RFC 5352 is without security.
	Closed bool
}

// Check returns nil when info may use the pool named handle, else an
// error wrapping ErrUnauthenticated or ErrNotAuthorized.
func (a PoolACL) Check(info AssocInfo, handle tlv.PoolHandle) error {
	patterns, ruled := a.Pools[string(handle)]
	if !ruled {
		if a.Closed {
			return fmt.Errorf("%w: no rule for pool %q", ErrNotAuthorized, []byte(handle))
		}
		return nil
	}
	return matchAny(info, patterns, fmt.Sprintf("pool %q", []byte(handle)))
}

// Validate reports an empty or malformed pattern.
func (a PoolACL) Validate() error {
	for h, ps := range a.Pools {
		if err := validPatterns(fmt.Sprintf("pool %q", h), ps); err != nil {
			return err
		}
	}
	return nil
}

// restricts reports whether the ACL can refuse anything.
func (a PoolACL) restricts() bool { return a.Closed || len(a.Pools) > 0 }

// Registration returns a to use as ASAPConfig.Authorize: it checks the
// registering PE's association. The ACL's map is read at each call: do
// not change it while the registrar runs.
func (a PoolACL) Registration() AuthorizeFunc {
	return func(info AssocInfo, handle tlv.PoolHandle, _ *tlv.PoolElement) error { return a.Check(info, handle) }
}

// Resolution returns a to use as ASAPConfig.AuthorizeResolution: it
// checks the resolving pool user's association. The ACL's map is read at
// each call: do not change it while the registrar runs.
func (a PoolACL) Resolution() ResolutionAuthorizeFunc {
	return func(info AssocInfo, handle tlv.PoolHandle) error { return a.Check(info, handle) }
}

// PeerMatcher returns a PeersConfig.Accept that admits a peer registrar
// (RFC 5353 §6) only over an authenticated association whose identity
// matches one of patterns ([MatchIdentity]). With no patterns it admits
// no peer.
func PeerMatcher(patterns ...string) func(serverID uint32, info AssocInfo) error {
	patterns = append([]string(nil), patterns...)
	return func(serverID uint32, info AssocInfo) error {
		return matchAny(info, patterns, fmt.Sprintf("registrar %08x", serverID))
	}
}

// NamePolicy is the common authorization policy by certificate names:
// who may register PEs in each pool, who may resolve each pool, and which
// registrars may peer. Apply installs it in a Config; the hooks it
// replaces can be written by hand instead (ASAPConfig.Authorize,
// ASAPConfig.AuthorizeResolution, PeersConfig.Accept).
//
// For example, only hosts of pe.example.org may register in "echo", any
// pool user may resolve it, other pools stay open, and only the
// registrars of reg.example.org may peer:
//
//	p := enrp.NamePolicy{
//		Register: enrp.PoolACL{Pools: map[string][]string{"echo": {"*.pe.example.org"}}},
//		Peers:    []string{"*.reg.example.org"},
//	}
//	if err := p.Apply(&cfg); err != nil { ... }
type NamePolicy struct {
	// Register decides who may register PEs (ASAPConfig.Authorize).
	Register PoolACL
	// Resolve decides who may resolve pool handles
	// (ASAPConfig.AuthorizeResolution).
	Resolve PoolACL
	// Peers are the identity patterns of the registrars that may peer
	// (PeersConfig.Accept, by PeerMatcher). Nil leaves Accept as it is;
	// an empty non-nil list admits no peer.
	Peers []string
}

// Validate reports an empty or malformed pattern.
func (p NamePolicy) Validate() error {
	if err := p.Register.Validate(); err != nil {
		return fmt.Errorf("NamePolicy.Register: %w", err)
	}
	if err := p.Resolve.Validate(); err != nil {
		return fmt.Errorf("NamePolicy.Resolve: %w", err)
	}
	if err := validPatterns("NamePolicy.Peers", p.Peers); err != nil {
		return err
	}
	return nil
}

// Apply validates p and sets the hooks of cfg it needs: ASAP.Authorize
// when Register has rules or is Closed, ASAP.AuthorizeResolution when
// Resolve has or is, and Peers.Accept when Peers is not nil. An ACL that
// admits everything sets no hook, so that handle resolution costs
// nothing more. Hooks it sets replace those cfg had.
func (p NamePolicy) Apply(cfg *Config) error {
	if err := p.Validate(); err != nil {
		return err
	}
	if p.Register.restricts() {
		cfg.ASAP.Authorize = p.Register.Registration()
	}
	if p.Resolve.restricts() {
		cfg.ASAP.AuthorizeResolution = p.Resolve.Resolution()
	}
	if p.Peers != nil {
		cfg.Peers.Accept = PeerMatcher(p.Peers...)
	}
	return nil
}
