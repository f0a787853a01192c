package asap

import (
	"fmt"
	"time"
)

// Timer and threshold defaults of RFC 5352 §5. The values follow
// ../shared/SPEC.md §7; the RFC text itself could not be re-read when this
// was written, so each one stays configurable through [Timers].
const (
	// DefaultT1ENRPRequest is T1-ENRPrequest (RFC 5352 §5.1): how long a
	// pool user waits for an ASAP_HANDLE_RESOLUTION_RESPONSE before it
	// resends the request.
	DefaultT1ENRPRequest = 15 * time.Second

	// DefaultT2Registration is T2-registration (RFC 5352 §5.1): how long a
	// pool element waits for an ASAP_REGISTRATION_RESPONSE.
	DefaultT2Registration = 30 * time.Second

	// DefaultT3Deregistration is T3-deregistration (RFC 5352 §5.1): how long
	// a pool element waits for an ASAP_DEREGISTRATION_RESPONSE.
	DefaultT3Deregistration = 30 * time.Second

	// MaxT4Reregistration caps T4-reregistration (RFC 5352 §5.1): a pool
	// element re-registers every min(10 min, registration life − 20 s).
	MaxT4Reregistration = 10 * time.Minute

	// T4LifetimeMargin is the margin RFC 5352 §5.1 keeps between a
	// re-registration and the end of the registration life.
	T4LifetimeMargin = 20 * time.Second

	// DefaultT5ServerHunt is T5-serverhunt (RFC 5352 §5.1): how long one
	// round of a server hunt waits for an association to a registrar.
	// SPEC.md gives 120 ms, tagged unverified; see the package notes.
	DefaultT5ServerHunt = 120 * time.Millisecond

	// DefaultT6ServerAnnounce is T6-serverannounce (RFC 5352 §5.1): the
	// period of a registrar's ASAP_SERVER_ANNOUNCE.
	DefaultT6ServerAnnounce = 1 * time.Second

	// DefaultT7ENRPOutdate is T7-ENRPoutdate (RFC 5352 §5.1): how long an
	// announced registrar stays in an endpoint's registrar table after its
	// last ASAP_SERVER_ANNOUNCE.
	DefaultT7ENRPOutdate = 5 * time.Second

	// DefaultMaxRegAttempt is MAX-REG-ATTEMPT (RFC 5352 §5.2): registration
	// attempts sent to one registrar before a server hunt.
	DefaultMaxRegAttempt = 2

	// DefaultMaxRequestRetransmit is MAX-REQUEST-RETRANSMIT (RFC 5352
	// §5.2): handle resolution attempts sent to one registrar before a
	// server hunt.
	DefaultMaxRequestRetransmit = 2

	// DefaultStaleCacheValue is stale.cache.value (RFC 5352 §5.3): how long
	// a pool user trusts a cached handle resolution.
	DefaultStaleCacheValue = 30 * time.Second

	// DefaultRegistrationLife is the Registration Life a pool element
	// announces when its config leaves it zero. RFC 5352 sets no default;
	// with it T4-reregistration is 4 min 40 s.
	DefaultRegistrationLife = 5 * time.Minute

	// DefaultHuntParallel is how many registrars one server-hunt round
	// tries at once (RSPLIB tries up to 3; RFC 5352 §3.6 leaves it open).
	DefaultHuntParallel = 3

	// DefaultMaxServerHunts bounds the server hunts one pool-user request
	// lives through before it fails with [ErrTimeout].
	DefaultMaxServerHunts = 3

	// ASAPPort is the well-known ASAP port (RFC 5352 §4, IANA). An
	// ASAP_SERVER_ANNOUNCE without transport parameters means "this
	// datagram's source address at this port" (RFC 5352 §3.6).
	ASAPPort = 3863
)

// Timers holds the RFC 5352 §5 timers and thresholds an endpoint uses.
// A zero field takes the default named after it.
type Timers struct {
	T1ENRPRequest        time.Duration // default DefaultT1ENRPRequest
	T2Registration       time.Duration // default DefaultT2Registration
	T3Deregistration     time.Duration // default DefaultT3Deregistration
	T4Reregistration     time.Duration // default min(MaxT4Reregistration, max(life − T4LifetimeMargin, life/3))
	T5ServerHunt         time.Duration // default DefaultT5ServerHunt
	T7ENRPOutdate        time.Duration // default DefaultT7ENRPOutdate
	MaxRegAttempt        int           // default DefaultMaxRegAttempt
	MaxRequestRetransmit int           // default DefaultMaxRequestRetransmit
}

// withDefaults returns t with zero fields set to their defaults, or an
// error naming the first negative field.
func (t Timers) withDefaults() (Timers, error) {
	durs := []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{
		{"T1ENRPRequest", &t.T1ENRPRequest, DefaultT1ENRPRequest},
		{"T2Registration", &t.T2Registration, DefaultT2Registration},
		{"T3Deregistration", &t.T3Deregistration, DefaultT3Deregistration},
		{"T4Reregistration", &t.T4Reregistration, 0},
		{"T5ServerHunt", &t.T5ServerHunt, DefaultT5ServerHunt},
		{"T7ENRPOutdate", &t.T7ENRPOutdate, DefaultT7ENRPOutdate},
	}
	for _, d := range durs {
		if *d.v < 0 {
			return t, fmt.Errorf("%w: Timers.%s is negative (%v)", ErrInvalidConfig, d.name, *d.v)
		}
		if *d.v == 0 {
			*d.v = d.def
		}
	}
	if t.MaxRegAttempt < 0 || t.MaxRequestRetransmit < 0 {
		return t, fmt.Errorf("%w: Timers.MaxRegAttempt and MaxRequestRetransmit must not be negative", ErrInvalidConfig)
	}
	if t.MaxRegAttempt == 0 {
		t.MaxRegAttempt = DefaultMaxRegAttempt
	}
	if t.MaxRequestRetransmit == 0 {
		t.MaxRequestRetransmit = DefaultMaxRequestRetransmit
	}
	return t, nil
}

// reregistrationInterval is T4-reregistration for a registration life
// (RFC 5352 §5.1): min(10 min, life − 20 s). For short lives, where that
// would leave less than a third of the life, it is life/3 (RSPLIB's ratio),
// so that a lost re-registration can still be retried before expiry.
func reregistrationInterval(configured, life time.Duration) time.Duration {
	if configured > 0 {
		return configured
	}
	t4 := life - T4LifetimeMargin
	if t4 < life/3 {
		t4 = life / 3
	}
	return min(MaxT4Reregistration, t4)
}
