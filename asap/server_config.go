package asap

import (
	"fmt"
	"log/slog"
	"net/netip"
	"time"

	"github.com/go-rserpool/rserpool/tlv"
	"github.com/go-rserpool/rserpool/transport"
)

// Registrar-side defaults (RFC 5352 §3.2-3.7, RFC 5353 §7). Values the RFC
// text does not fix are RSPLIB's (see ../shared/SPEC.md §7); every one is
// a field of [ServerConfig].
const (
	// DefaultMaxBadPEReport is MAX-BAD-PE-REPORT (RFC 5353 §7, used by
	// RFC 5352 §3.5): after this many ASAP_ENDPOINT_UNREACHABLE reports
	// about one PE the registrar removes it.
	DefaultMaxBadPEReport = 3

	// DefaultKeepAliveInterval is how long a registrar lets a PE it owns
	// stay silent before it sends an ASAP_ENDPOINT_KEEP_ALIVE (RFC 5352
	// §3.7). The RFC gives no value; this is RSPLIB's 5 s.
	DefaultKeepAliveInterval = 5 * time.Second

	// DefaultKeepAliveTimeout is how long the registrar waits for the
	// ASAP_ENDPOINT_KEEP_ALIVE_ACK before it removes the PE (RFC 5352
	// §3.7). RSPLIB's 5 s.
	DefaultKeepAliveTimeout = 5 * time.Second

	// DefaultResolutionItems is how many PEs a handle resolution returns
	// when the pool user sends no Handle Resolution Option, or asks for 0
	// items (draft-dreibholz-rserpool-asap-hropt; RSPLIB's default 3).
	DefaultResolutionItems = 3

	// DefaultMaxResolutionItems caps the Handle Resolution Option's item
	// count (RSPLIB's 128).
	DefaultMaxResolutionItems = 128

	// DefaultMaxPEsPerAssoc bounds the PEs one association may register,
	// so that one peer cannot fill the store (RFC 5355 §3 registration
	// flooding; the cause sent is Lack of Resources).
	DefaultMaxPEsPerAssoc = 1024

	// DefaultAssocRate and DefaultAssocBurst are the per-association
	// token bucket for incoming ASAP messages (RFC 5355 flooding and
	// handlespace scanning): messages beyond it are dropped unanswered.
	DefaultAssocRate  = 10000.0 // messages per second
	DefaultAssocBurst = 1000    // messages

	// Unlimited, in MaxPEsPerAssoc, AssocRate, MaxEURate or MaxHRRate,
	// turns the limit off.
	Unlimited = -1
)

// Defaults of the registrar's defences against false reports and idle
// peers (RFC 5355 §3; see [ServerConfig]).
const (
	// DefaultMaxEURate is the rate of ASAP_ENDPOINT_UNREACHABLEs one
	// association may send, per second, with bursts of RateLimitBurst
	// (RFC 5355 §3 false failure reports). RSPLIB 3.4.4's default
	// (-maxeurate) is unlimited; one report a second is chosen here
	// because an honest pool user reports a PE once per failover, and a
	// report dropped costs nothing: a dead PE still fails its keep-alive
	// (RFC 5352 §3.7).
	DefaultMaxEURate = 1.0

	// DefaultMaxHRRate is the rate of ASAP_HANDLE_RESOLUTIONs one
	// association may send, per second, with bursts of RateLimitBurst
	// (RFC 5355 §3 handlespace scanning). RSPLIB 3.4.4's default
	// (-maxhrrate) is unlimited, and so is this one: AssocRate already
	// bounds every message of an association.
	DefaultMaxHRRate = Unlimited

	// RateLimitBurst is the burst of the MaxEURate and MaxHRRate token
	// buckets: RSPLIB 3.4.4 measures those rates over the last 16
	// messages of a pool user.
	RateLimitBurst = 16

	// DefaultIDGrace is how long the identifier of a PE removed against
	// its will (unanswered keep-alive, RFC 5352 §3.5 and §3.7) stays bound
	// to its association, and its emptied pool keeps its policy and
	// transport type. It is T2-registration (RFC 5352 §5.1, 30 s): time
	// for the PE to notice and register again.
	DefaultIDGrace = DefaultT2Registration

	// DefaultMaxGraceEntries bounds the identifiers and pools held for
	// IDGrace; beyond it the oldest entry is dropped. It equals
	// handlespace.DefaultMaxPools.
	DefaultMaxGraceEntries = 1 << 16

	// DefaultIdleTimeout is how long an association that carries no PE
	// may stay silent before the registrar aborts it: RSPLIB 3.4.4's
	// default SCTP autoclose timeout (-autoclosetimeout, 300 s).
	DefaultIdleTimeout = 300 * time.Second
)

// AddressCheck says how a registrar checks the addresses of a PE's user
// transport against the association the registration arrived on
// (RFC 5352 §3.2, RFC 5355 §3 address spoofing).
type AddressCheck uint8

const (
	// AddressCheckAssociation (the default) keeps only the user-transport
	// addresses that are addresses of the association's peer; an
	// unspecified address (0.0.0.0 or ::) is replaced by the peer address.
	// A registration with no address left is rejected with Invalid Values.
	//
	// Over transports whose associations have a single peer address
	// (memnet, and user-space SCTP over UDP, where the association runs
	// over one UDP 4-tuple and SCTP multi-homing is not visible), that is
	// the association's remote IP: a multi-homed PE keeps only the address
	// it registered from.
	AddressCheckAssociation AddressCheck = iota
	// AddressCheckOff stores the user transport as the PE sent it.
	AddressCheckOff
)

// AssocInfo describes an association a pool element or pool user opened
// to the registrar. It is handed to the authorization hook.
type AssocInfo struct {
	Local  transport.Addr // the registrar's end
	Remote transport.Addr // the peer's end
}

// AuthorizeFunc decides whether the PE may register in the pool named
// handle (RFC 5355 §3, SPEC §8 item 2). A non-nil error rejects the
// registration with "Rejected due to security considerations" (0xa). pe
// is read-only and valid only during the call.
type AuthorizeFunc func(assoc AssocInfo, handle tlv.PoolHandle, pe *tlv.PoolElement) error

// ServerConfig configures a [ServerCore]: the ASAP procedures of a
// registrar (RFC 5352 §3.2-3.7). A zero field takes the default named in
// its comment; ServerID is required.
type ServerConfig struct {
	// ServerID is the registrar's ENRP server identifier (non-zero). It
	// becomes the Home ENRP Server Identifier of every PE registered here
	// and is sent in keep-alives and announces.
	ServerID uint32

	// MaxBadPEReport is MAX-BAD-PE-REPORT; default DefaultMaxBadPEReport.
	MaxBadPEReport int
	// KeepAliveInterval and KeepAliveTimeout drive the supervision of
	// owned PEs (RFC 5352 §3.7); defaults DefaultKeepAliveInterval and
	// DefaultKeepAliveTimeout.
	KeepAliveInterval time.Duration
	KeepAliveTimeout  time.Duration

	// ResolutionItems is the PE count of a handle resolution without
	// HROPT (default DefaultResolutionItems); MaxResolutionItems caps an
	// HROPT request (default DefaultMaxResolutionItems).
	ResolutionItems    int
	MaxResolutionItems int

	// MaxPEsPerAssoc bounds the PEs one association registers; default
	// DefaultMaxPEsPerAssoc, Unlimited for none.
	MaxPEsPerAssoc int
	// AssocRate (messages/s) and AssocBurst are each association's token
	// bucket; defaults DefaultAssocRate and DefaultAssocBurst. AssocRate
	// Unlimited turns flood protection off.
	AssocRate  float64
	AssocBurst int

	// Resource limits of the registrar (RFC 5355 §3 registration
	// flooding). A registration over a limit is refused with Lack of
	// Resources (0x6, RFC 5354 §3.12) and changes nothing; Unlimited
	// turns a limit off.
	//
	// MaxPESize bounds the encoded size of a PE as stored: after the
	// registrar has dropped the PE's unknown parameters (skipped, as
	// RFC 5354 §2 says for action bits 10 and 11), applied AddressCheck
	// and set the ASAP transport; default DefaultMaxPESize.
	//
	// MaxPoolsPerAssoc and MaxPoolsPerSource bound the pools in which one
	// association, and the associations of one source IP address
	// together, hold PEs they registered; defaults
	// DefaultMaxPoolsPerAssoc and DefaultMaxPoolsPerSource. A pool counts
	// for every association that has a PE of its own in it, the one that
	// created the pool and those that joined it, for as long as it has:
	// every pool that ASAP registrations keep alive is thus charged to a
	// live association, and none can be created, handed over and created
	// again. A registration is checked when it would add a pool to its
	// association's (or source's) count; re-registrations never are.
	//
	// MaxPEsPerSource bounds the PEs registered over the associations of
	// one source IP address; default DefaultMaxPEsPerSource.
	// (MaxPEsPerAssoc above bounds one association.) Associations whose
	// peer address is unknown are counted per association only.
	MaxPESize         int
	MaxPoolsPerAssoc  int
	MaxPoolsPerSource int
	MaxPEsPerSource   int

	// Defences against false Endpoint Unreachable reports, handle
	// resolution floods and idle associations (RFC 5355 §3).
	//
	// MaxEURate and MaxHRRate are per-association token buckets (per
	// second, bursts of RateLimitBurst) for ASAP_ENDPOINT_UNREACHABLE and
	// ASAP_HANDLE_RESOLUTION; messages over the rate are dropped
	// unanswered and counted in ServerStats.EURateDropped and
	// HRRateDropped. Defaults DefaultMaxEURate and DefaultMaxHRRate;
	// Unlimited turns a limit off.
	MaxEURate float64
	MaxHRRate float64
	// IDGrace is how long the identifier of a PE removed for an
	// unanswered keep-alive stays bound to its association (a
	// registration of it over another association is refused with
	// Non-unique PE Identifier), and an emptied pool keeps its policy and
	// transport type for associations other than the removed PE's.
	// Default DefaultIDGrace; a negative value turns it off.
	// MaxGraceEntries bounds the entries held (default
	// DefaultMaxGraceEntries).
	IDGrace         time.Duration
	MaxGraceEntries int
	// IdleTimeout is how long an association that carries no PE may send
	// nothing before the registrar aborts it (AbortAssoc); default
	// DefaultIdleTimeout, a negative value turns it off.
	IdleTimeout time.Duration

	// AddressCheck is the anti-spoofing rule for user transports; the
	// zero value is AddressCheckAssociation.
	AddressCheck AddressCheck
	// Authorize, if not nil, is asked about every registration.
	Authorize AuthorizeFunc

	// AnnounceInterval is T6-serverannounce (RFC 5352 §5.1); default
	// DefaultT6ServerAnnounce. Announces are emitted only when Announce is
	// true; AnnounceTransports go into them (none: receivers use the
	// datagram's source address, RFC 5352 §3.6).
	Announce           bool
	AnnounceInterval   time.Duration
	AnnounceTransports []tlv.Transport

	// Limits bound what the parser accepts (HandleData); zero fields take
	// the tlv defaults.
	Limits tlv.Limits

	// Logger receives debug logs; nil logs nothing.
	Logger *slog.Logger
}

// withDefaults validates c and fills in the defaults.
func (c ServerConfig) withDefaults() (ServerConfig, error) {
	bad := func(field string, v any) (ServerConfig, error) {
		return c, fmt.Errorf("%w: ServerConfig.%s = %v", ErrInvalidConfig, field, v)
	}
	if c.ServerID == 0 {
		return bad("ServerID", 0)
	}
	if c.MaxBadPEReport < 0 {
		return bad("MaxBadPEReport", c.MaxBadPEReport)
	}
	if c.MaxBadPEReport == 0 {
		c.MaxBadPEReport = DefaultMaxBadPEReport
	}
	for _, d := range []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{
		{"KeepAliveInterval", &c.KeepAliveInterval, DefaultKeepAliveInterval},
		{"KeepAliveTimeout", &c.KeepAliveTimeout, DefaultKeepAliveTimeout},
		{"AnnounceInterval", &c.AnnounceInterval, DefaultT6ServerAnnounce},
	} {
		if *d.v < 0 {
			return bad(d.name, *d.v)
		}
		if *d.v == 0 {
			*d.v = d.def
		}
	}
	if c.ResolutionItems < 0 {
		return bad("ResolutionItems", c.ResolutionItems)
	}
	if c.ResolutionItems == 0 {
		c.ResolutionItems = DefaultResolutionItems
	}
	if c.MaxResolutionItems < 0 {
		return bad("MaxResolutionItems", c.MaxResolutionItems)
	}
	if c.MaxResolutionItems == 0 {
		c.MaxResolutionItems = DefaultMaxResolutionItems
	}
	if c.ResolutionItems > c.MaxResolutionItems {
		return bad("ResolutionItems", fmt.Sprintf("%d > MaxResolutionItems %d", c.ResolutionItems, c.MaxResolutionItems))
	}
	switch {
	case c.MaxPEsPerAssoc == 0:
		c.MaxPEsPerAssoc = DefaultMaxPEsPerAssoc
	case c.MaxPEsPerAssoc < 0 && c.MaxPEsPerAssoc != Unlimited:
		return bad("MaxPEsPerAssoc", c.MaxPEsPerAssoc)
	}
	switch {
	case c.AssocRate == 0:
		c.AssocRate = DefaultAssocRate
	case c.AssocRate < 0 && c.AssocRate != Unlimited:
		return bad("AssocRate", c.AssocRate)
	}
	if c.AssocBurst < 0 {
		return bad("AssocBurst", c.AssocBurst)
	}
	if c.AssocBurst == 0 {
		c.AssocBurst = DefaultAssocBurst
	}
	for _, r := range []struct {
		name string
		v    *float64
		def  float64
	}{
		{"MaxEURate", &c.MaxEURate, DefaultMaxEURate},
		{"MaxHRRate", &c.MaxHRRate, DefaultMaxHRRate},
	} {
		switch {
		case *r.v == 0:
			*r.v = r.def
		case *r.v < 0 && *r.v != Unlimited, *r.v != *r.v: // NaN too
			return bad(r.name, *r.v)
		}
	}
	if c.IDGrace == 0 {
		c.IDGrace = DefaultIDGrace
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = DefaultIdleTimeout
	}
	switch {
	case c.MaxGraceEntries == 0:
		c.MaxGraceEntries = DefaultMaxGraceEntries
	case c.MaxGraceEntries < 0:
		return bad("MaxGraceEntries", c.MaxGraceEntries)
	}
	if c.AddressCheck > AddressCheckOff {
		return bad("AddressCheck", c.AddressCheck)
	}
	for _, l := range []struct {
		name string
		v    *int
		def  int
	}{
		{"MaxPESize", &c.MaxPESize, DefaultMaxPESize},
		{"MaxPoolsPerAssoc", &c.MaxPoolsPerAssoc, DefaultMaxPoolsPerAssoc},
		{"MaxPoolsPerSource", &c.MaxPoolsPerSource, DefaultMaxPoolsPerSource},
		{"MaxPEsPerSource", &c.MaxPEsPerSource, DefaultMaxPEsPerSource},
	} {
		switch {
		case *l.v == 0:
			*l.v = l.def
		case *l.v < 0 && *l.v != Unlimited:
			return bad(l.name, *l.v)
		}
	}
	if n := (&tlv.ServerAnnounce{ServerID: c.ServerID, Transports: c.AnnounceTransports}).Len(); n > tlv.MaxMessageLen {
		return bad("AnnounceTransports", fmt.Sprintf("%d bytes in an announce", n))
	}
	return c, nil
}

// filterUserTransport applies AddressCheckAssociation (RFC 5352 §3.2):
// it returns t with only the addresses of remote (unspecified ones
// replaced by it), and false when none is left.
func filterUserTransport(t tlv.Transport, remote transport.Addr) (tlv.Transport, bool) {
	if !remote.AddrPort.IsValid() {
		// Without a peer address there is nothing to check against.
		return t, true
	}
	ra := remote.AddrPort.Addr().Unmap().WithZone("")
	var keep []netip.Addr
	for _, a := range t.Addrs {
		a = a.Unmap()
		if a.IsUnspecified() {
			a = ra
		}
		if a == ra && len(keep) == 0 {
			keep = append(keep, a)
		}
	}
	if len(keep) == 0 {
		return t, false
	}
	t.Addrs = keep
	t.Unknown = nil
	return t, true
}

// serverLogger returns l, or a logger that discards everything.
func serverLogger(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.New(slog.DiscardHandler)
	}
	return l
}
