package asap

import (
	"fmt"
	"time"
)

// Timer and threshold defaults of RFC 5352 §5, and the defaults of this
// package's own timers where the RFC gives none (each says which). Every
// one is configurable: through [Timers], [PEConfig] or [PUConfig].
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
	// RFC 5352 §5.1 gives 120 ms. It is the first round's length: later
	// rounds back off up to DefaultT5ServerHuntMax (Timers.T5ServerHunt
	// and Timers.T5ServerHuntMax set both).
	DefaultT5ServerHunt = 120 * time.Millisecond

	// DefaultT5ServerHuntMax caps the back-off of server-hunt rounds: each
	// round that finds no registrar doubles the next one's length, from
	// T5-serverhunt up to this cap, each jittered to between half and all
	// of it. Not an RFC value (RFC 5352 §3.6 sets no retry rate): 5 s keeps
	// a hunt against a dead or refusing registrar at about one dial per
	// registrar every 4 s, and finds a registrar that comes back within
	// seconds.
	DefaultT5ServerHuntMax = 5 * time.Second

	// DefaultHuntDialLimit is how long one server-hunt dial may stay in
	// its handshake. When T5-serverhunt ends a round, a dial not yet up is
	// not closed: the next round tries other registrars (RFC 5352 §3.6)
	// while it goes on, and the first association up becomes the home.
	// Only a dial still not up after this limit is closed and counts as a
	// failed one. Not an RFC value (RFC 5352 §3.6 does not say what becomes
	// of an unfinished attempt): 5 s, the same as DefaultT5ServerHuntMax,
	// lets an SCTP handshake live through the loss of its INIT and of the
	// first retransmission (T1-init starts at RTO.Initial, 1 s, and
	// doubles; RFC 9260 §5.1, §6.3.3, §16), and keeps a registrar that is alive but slow, for instance
	// under an INIT flood, from being given up after a few T5 rounds.
	DefaultHuntDialLimit = 5 * time.Second

	// DefaultRefusedRetry is how long a pool element waits before it sends
	// a registration again after a transient refusal
	// (RejectError.Transient); each further refusal in a row doubles the
	// wait up to DefaultRefusedRetryMax, each jittered to between half and
	// all of it. Not an RFC value (RFC 5352 §3.1 says nothing of retries
	// after a refusal): 1 s then 2, 4, 8, 10 s lets a PE come back within
	// seconds once the cause is gone (an identifier binding expired, a pool
	// emptied) at a load of one registration per 10 s at worst.
	DefaultRefusedRetry = 1 * time.Second

	// DefaultRefusedRetryMax caps the back-off of DefaultRefusedRetry.
	DefaultRefusedRetryMax = 10 * time.Second

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
	// a pool user trusts a cached handle resolution. RFC 5352 §5.3 names
	// the variable; 30 s is this package's default, short enough that a
	// pool user sees new PEs within half a minute without asking the
	// registrar on every Dial. PUConfig.StaleCache sets it; a negative
	// value turns the cache off.
	DefaultStaleCacheValue = 30 * time.Second

	// DefaultRegistrationLife is the Registration Life a pool element
	// announces when its config leaves it zero. RFC 5352 sets no default;
	// with it T4-reregistration is 4 min 40 s.
	DefaultRegistrationLife = 5 * time.Minute

	// DefaultMaxAccepted is how many associations that registrars opened
	// to a pool element's endpoint, other than its home, stay open at once
	// (PEConfig.MaxAccepted). RFC 5352 and RFC 5353 give no number; this
	// package's choice: a takeover (RFC 5353 §3.9) needs one, and 4 leave
	// room for peers that both start one before the tie-break settles it.
	DefaultMaxAccepted = 4

	// DefaultHuntParallel is how many registrars one server-hunt round
	// tries at once: RSPLIB 3.4.4's default, 3 (RFC 5352 §3.6 leaves it open).
	DefaultHuntParallel = 3

	// DefaultMaxServerHunts is MAX-NUMBER-SERVER-HUNT: the failed server
	// hunts (passes over the whole registrar table, RFC 5352 §3.6) a
	// request waits through before it fails with a [*NoRegistrarError]
	// (PoolElement.Register, PoolUser.Resolve); for a pool user it also
	// bounds the server hunts one resolution lives through when registrars
	// take it but do not answer ([ErrTimeout]). RFC 5352 §5.2 gives 3;
	// PEConfig.MaxServerHunts and PUConfig.MaxServerHunts set it.
	DefaultMaxServerHunts = 3
)

// Timers holds the RFC 5352 §5 timers and thresholds an endpoint uses.
// A zero field takes the default named after it.
type Timers struct {
	T1ENRPRequest    time.Duration // default DefaultT1ENRPRequest
	T2Registration   time.Duration // default DefaultT2Registration
	T3Deregistration time.Duration // default DefaultT3Deregistration
	T4Reregistration time.Duration // default min(MaxT4Reregistration, max(life − T4LifetimeMargin, life/3))
	T5ServerHunt     time.Duration // default DefaultT5ServerHunt
	// T5ServerHuntMax caps the back-off of server-hunt rounds; default
	// DefaultT5ServerHuntMax. A negative value turns the back-off off
	// (every round lasts T5ServerHunt, as before). A value below
	// T5ServerHunt is raised to it.
	T5ServerHuntMax time.Duration
	// HuntDialLimit is how long a server-hunt dial may take to come up
	// before it is closed and counts as failed; default
	// DefaultHuntDialLimit. A value below T5ServerHunt is raised to it. A
	// negative value closes every dial not up when its round ends (after
	// T5ServerHunt, backed off), so that a hunt never has more than one
	// round of dials open.
	HuntDialLimit time.Duration
	// RefusedRetry and RefusedRetryMax are the first and the longest wait
	// of a pool element before it registers again after a transient
	// refusal; defaults DefaultRefusedRetry and DefaultRefusedRetryMax.
	// RefusedRetryMax below RefusedRetry is raised to it.
	RefusedRetry         time.Duration
	RefusedRetryMax      time.Duration
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
	if t.T5ServerHuntMax == 0 {
		t.T5ServerHuntMax = DefaultT5ServerHuntMax
	}
	if t.HuntDialLimit == 0 {
		t.HuntDialLimit = DefaultHuntDialLimit
	}
	durs = append(durs, []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{
		{"RefusedRetry", &t.RefusedRetry, DefaultRefusedRetry},
		{"RefusedRetryMax", &t.RefusedRetryMax, DefaultRefusedRetryMax},
	}...)
	for _, d := range durs {
		if *d.v < 0 {
			return t, fmt.Errorf("%w: Timers.%s is negative (%v)", ErrInvalidConfig, d.name, *d.v)
		}
		if *d.v == 0 {
			*d.v = d.def
		}
	}
	if t.T5ServerHuntMax < 0 {
		t.T5ServerHuntMax = t.T5ServerHunt // no back-off
	}
	t.T5ServerHuntMax = max(t.T5ServerHuntMax, t.T5ServerHunt)
	if t.HuntDialLimit < 0 {
		t.HuntDialLimit = -1 // closed when the round ends
	} else {
		t.HuntDialLimit = max(t.HuntDialLimit, t.T5ServerHunt)
	}
	t.RefusedRetryMax = max(t.RefusedRetryMax, t.RefusedRetry)
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

// backoff returns the wait before attempt n (n ≥ 1) of an exponential
// back-off from base, capped at limit, with "equal jitter": a uniformly
// random duration between half of min(limit, base·2^(n−1)) and all of it.
// Jitter keeps endpoints that failed together from retrying together.
func backoff(rng interface{ Int64N(int64) int64 }, base, limit time.Duration, n int) time.Duration {
	d := base
	for i := 1; i < n && d < limit; i++ {
		d *= 2
	}
	d = min(d, limit)
	if d <= 1 {
		return d
	}
	half := d / 2
	return half + time.Duration(rng.Int64N(int64(d-half)+1))
}
