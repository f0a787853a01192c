package asap

// Authorization of registrars by pool elements and pool users: which
// peer of a secured transport may act as their registrar (RFC 5355 §2.6
// and §2.7, registration with and resolution at a malicious registrar;
// RFC 5352 §6).

import (
	"errors"
	"fmt"

	"github.com/go-rserpool/rserpool/transport"
)

// RegistrarAuthorizer decides whether the peer of an association with a
// registrar may act as one (PEConfig.AuthorizeRegistrar,
// PUConfig.AuthorizeRegistrar). id is the identity the transport
// verified (transport.PeerIdentityOf), and authenticated is false when
// the transport verified none (plain SCTP, memnet without identities, or
// a DTLS peer that presented no certificate): id is then zero. A nil
// error lets the association be used; an error refuses it.
//
// A secured transport's trusted roots only say that a peer holds some
// certificate of the pool's CA, and in a pool every PE holds one: a PE
// or PU uses one transport for registrars and PEs, so it cannot ask the
// transport for a registrar's name. This hook is where it does.
//
// It runs on the endpoint's goroutine, once per association, before any
// ASAP message is sent or taken on it: it must not block.
type RegistrarAuthorizer func(id transport.Identity, authenticated bool) error

// ErrRegistrarRefused is matched (errors.Is) by every
// [*RegistrarRefusedError]: an AuthorizeRegistrar hook refused the peer
// of an association with a registrar.
var ErrRegistrarRefused = errors.New("asap: registrar refused by AuthorizeRegistrar")

// Errors of [RegistrarNames]' authorizer, wrapped in the
// [*RegistrarRefusedError].
var (
	// ErrRegistrarUnauthenticated: the transport verified no identity.
	ErrRegistrarUnauthenticated = errors.New("asap: registrar not authenticated")
	// ErrRegistrarName: the identity matches none of the patterns.
	ErrRegistrarName = errors.New("asap: registrar identity matches no allowed name")
)

// RegistrarRefusedError is an association with a registrar that the
// AuthorizeRegistrar hook refused: one the server hunt dialled (then it is
// the hunt's failed dial, and a *NoRegistrarError's Last) or one a
// registrar opened to a pool element's endpoint (PEEventRegistrarRefused).
// It matches [ErrRegistrarRefused] and the hook's error.
type RegistrarRefusedError struct {
	// Addr is the registrar's address.
	Addr transport.Addr
	// Identity is the peer's verified identity (zero when not
	// Authenticated).
	Identity      transport.Identity
	Authenticated bool
	// Accepted is true for an association the registrar opened to the
	// PE's endpoint, false for one the server hunt dialled.
	Accepted bool
	// Err is the hook's error.
	Err error
}

func (e *RegistrarRefusedError) Error() string {
	who := "unauthenticated peer"
	if e.Authenticated {
		who = fmt.Sprintf("%q", e.Identity.String())
	}
	how := "dialled"
	if e.Accepted {
		how = "accepted"
	}
	return fmt.Sprintf("asap: registrar %v (%s, %s) refused by AuthorizeRegistrar: %v", e.Addr, who, how, e.Err)
}

// Unwrap returns ErrRegistrarRefused and the hook's error.
func (e *RegistrarRefusedError) Unwrap() []error {
	return []error{ErrRegistrarRefused, e.Err}
}

// RegistrarNames returns a RegistrarAuthorizer for the common case: the
// registrar must be authenticated (else [ErrRegistrarUnauthenticated]) and
// its identity must match one of patterns (else [ErrRegistrarName]), a
// glob as [transport.Identity.Matches] (and enrp.MatchIdentity, the
// registrar's own name checks) has it: "registrar-*.example" or
// "*.reg.example.org", case-insensitive, against the identity's name and
// the leaf certificate's DNS SANs. An empty or malformed pattern
// (transport.ValidPattern) matches nothing; with no pattern every
// registrar is refused.
//
// Give registrars certificates whose names no PE's certificate carries
// (a naming scheme, or a CA or intermediate that issues registrar names
// only): the name is what tells a registrar from a PE of the same CA.
func RegistrarNames(patterns ...string) RegistrarAuthorizer {
	ps := append([]string(nil), patterns...)
	return func(id transport.Identity, authenticated bool) error {
		if !authenticated {
			return ErrRegistrarUnauthenticated
		}
		for _, p := range ps {
			if id.Matches(p) {
				return nil
			}
		}
		return fmt.Errorf("%w: %v, want %q", ErrRegistrarName, id, ps)
	}
}

// authorizeRegistrar asks auth (nil allows all) about the registrar at
// addr on c, and returns the *RegistrarRefusedError when it refuses.
func authorizeRegistrar(auth RegistrarAuthorizer, c transport.Conn, addr transport.Addr, accepted bool) error {
	if auth == nil {
		return nil
	}
	id, ok := transport.PeerIdentityOf(c)
	if !ok {
		id = transport.Identity{}
	}
	err := auth(id, ok)
	if err == nil {
		return nil
	}
	return &RegistrarRefusedError{Addr: addr, Identity: id, Authenticated: ok, Accepted: accepted, Err: err}
}
