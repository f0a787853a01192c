package enrp

// The configuration of the registrar's ASAP procedures and its defaults.

import (
	"fmt"
	"time"

	"github.com/go-rserpool/rserpool/asap"
	"github.com/go-rserpool/rserpool/tlv"
	"github.com/go-rserpool/rserpool/transport"
)

// Registrar-side defaults (RFC 5352 §3.2-3.7, RFC 5353 §7). Where the RFCs
// give no value, each says whether it is RSPLIB 3.4.4's default or this
// package's choice; every one is a field of [ASAPConfig].
const (
	// DefaultMaxBadPEReport is MAX-BAD-PE-REPORT (RFC 5353 §7, used by
	// RFC 5352 §3.5): after this many ASAP_ENDPOINT_UNREACHABLE reports
	// about one PE the registrar removes it.
	DefaultMaxBadPEReport = 3

	// DefaultKeepAliveInterval is how long a registrar lets a PE it owns
	// stay silent before it sends an ASAP_ENDPOINT_KEEP_ALIVE (RFC 5352
	// §3.7). The RFC gives no value; this is RSPLIB 3.4.4's default, 5 s.
	DefaultKeepAliveInterval = 5 * time.Second

	// DefaultKeepAliveTimeout is how long the registrar waits for the
	// ASAP_ENDPOINT_KEEP_ALIVE_ACK before it removes the PE (RFC 5352
	// §3.7). The RFC gives no value; this is RSPLIB 3.4.4's default, 5 s.
	DefaultKeepAliveTimeout = 5 * time.Second

	// DefaultResolutionItems is how many PEs a handle resolution returns
	// when the pool user sends no Handle Resolution Option, or asks for 0
	// items (draft-dreibholz-rserpool-asap-hropt; RSPLIB 3.4.4's default, 3).
	DefaultResolutionItems = 3

	// DefaultMaxResolutionItems caps the Handle Resolution Option's item
	// count: RSPLIB 3.4.4's cap, 128 (the draft sets none).
	DefaultMaxResolutionItems = 128

	// DefaultMaxPEsPerAssoc bounds the PEs one association may register,
	// so that one peer cannot fill the store (RFC 5355 §3 registration
	// flooding; the cause sent is Lack of Resources). RFC 5355 gives no
	// value; 1024 is this package's choice, far more PEs than one process
	// registers.
	DefaultMaxPEsPerAssoc = 1024

	// DefaultAssocRate and DefaultAssocBurst are the per-association
	// token bucket for incoming ASAP messages (RFC 5355 flooding and
	// handlespace scanning): messages beyond it are dropped unanswered.
	// RFC 5355 gives no value; these are this package's choice, well
	// above what an honest PE or pool user sends.
	DefaultAssocRate  = 10000.0 // messages per second
	DefaultAssocBurst = 1000    // messages

	// Unlimited, in MaxPEsPerAssoc, AssocRate, MaxEURate or MaxHRRate,
	// turns the limit off.
	Unlimited = -1
)

// Defaults of the registrar's defences against false reports and idle
// peers (RFC 5355 §3; see [ASAPConfig]).
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
	DefaultIDGrace = asap.DefaultT2Registration

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

// AuthorizeFunc decides whether the PE may register in the pool named
// handle (RFC 5355 §3). A non-nil error rejects the
// registration with "Rejected due to security considerations" (0xa). pe
// is read-only and valid only during the call. assoc carries the PE's
// verified identity when the transport authenticates it
// (AssocInfo.Authenticated).
type AuthorizeFunc func(assoc AssocInfo, handle tlv.PoolHandle, pe *tlv.PoolElement) error

// ResolutionAuthorizeFunc decides whether the pool user on assoc may
// resolve the pool named handle (RFC 5355 §3, RFC 5352 §6). A non-nil
// error answers the ASAP_HANDLE_RESOLUTION with an
// ASAP_HANDLE_RESOLUTION_RESPONSE carrying an Operation Error "Rejected
// due to security considerations" (0xa, RFC 5354 §3.12), and no PEs.
// handle is read-only and valid only during the call.
type ResolutionAuthorizeFunc func(assoc AssocInfo, handle tlv.PoolHandle) error

// ASAPConfig configures the ASAP procedures of a registrar (RFC 5352
// §3.2-3.7): supervision, resolution, resource limits, defences and the
// Server Announce. A zero field takes the default named in its comment.
type ASAPConfig struct {
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
	// unanswered and counted in ASAPStats.EURateDropped and
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
	// nothing before the registrar aborts it (CloseAssoc with Abort); default
	// DefaultIdleTimeout, a negative value turns it off.
	IdleTimeout time.Duration

	// AddressCheck is the anti-spoofing rule for user transports; the
	// zero value is AddressCheckAssociation.
	AddressCheck AddressCheck
	// Authorize, if not nil, is asked about every registration; nil
	// (the default) lets every PE register.
	Authorize AuthorizeFunc
	// AuthorizeResolution, if not nil, is asked about every handle
	// resolution; a refusal is counted in ASAPStats.ResolutionsRefused.
	// Nil (the default) lets every pool user resolve every pool, as
	// RFC 5352 §3.5 does, at no cost.
	AuthorizeResolution ResolutionAuthorizeFunc

	// AnnounceInterval is T6-serverannounce (RFC 5352 §5.1); default
	// asap.DefaultT6ServerAnnounce. Announces are sent only when the host
	// gives a Config.Announcer. AnnounceAddrs are the ASAP addresses put
	// into them (RFC 5352 §2.2.7); the Registrar's default is its
	// listener's address when that is a specified address, else none
	// (receivers then use the datagram's source address, RFC 5352 §3.6).
	AnnounceInterval time.Duration
	AnnounceAddrs    []transport.Addr

	// Limits bound what the parser accepts (Core.HandleASAP); zero fields
	// take the tlv defaults.
	Limits tlv.Limits
}

// withDefaults validates c and fills in the defaults.
func (c ASAPConfig) withDefaults() (ASAPConfig, error) {
	bad := func(field string, v any) (ASAPConfig, error) {
		return c, fmt.Errorf("%w: Config.ASAP.%s = %v", ErrInvalidConfig, field, v)
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
		{"AnnounceInterval", &c.AnnounceInterval, asap.DefaultT6ServerAnnounce},
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
	return c, nil
}

// announceTransports turns AnnounceAddrs into the transport parameters of
// the Server Announce, and checks that the announce fits a message.
func (c *ASAPConfig) announceTransports(id uint32) ([]tlv.Transport, error) {
	var ts []tlv.Transport
	for _, a := range c.AnnounceAddrs {
		t, err := asap.TransportParam(a, tlv.TransportUseDataOnly)
		if err != nil {
			return nil, fmt.Errorf("%w: Config.ASAP.AnnounceAddrs: %w", ErrInvalidConfig, err)
		}
		ts = append(ts, t)
	}
	if n := (&tlv.ServerAnnounce{ServerID: id, Transports: ts}).Len(); n > tlv.MaxMessageLen {
		return nil, fmt.Errorf("%w: Config.ASAP.AnnounceAddrs: %d bytes in an announce", ErrInvalidConfig, n)
	}
	return ts, nil
}

// Registrar resource limits (RFC 5355 §3: registration flooding and
// resource exhaustion). Every one is a field of [ASAPConfig]; a refused
// registration is answered with Lack of Resources (0x6, RFC 5354 §3.12,
// RFC 5352 §3.2).
const (
	// DefaultMaxPESize bounds the encoded size in bytes of a PE as the
	// registrar stores it: the Pool Element parameter after the
	// registrar has dropped its unknown parameters (RFC 5354 §2 "skip"),
	// kept only the user addresses of the association (AddressCheck) and
	// put in the ASAP transport. 2,048 bytes hold RSPLIB 3.4.4's
	// MAX_PE_TRANSPORTADDRESSES (64) user addresses, all IPv6, with any
	// policy of RFC 5356 and the ASAP transport; a PE registered with the
	// default AddressCheck (one user address) is about 100 bytes.
	DefaultMaxPESize = 2048

	// DefaultMaxPoolsPerAssoc bounds the pools one association has PEs in
	// (see ASAPConfig.MaxPoolsPerAssoc). RFC 5355 §3 asks for such
	// bounds without values; 256 lets 64 associations take at most a
	// quarter of the store's default handlespace.DefaultMaxPools (65,536).
	DefaultMaxPoolsPerAssoc = 256

	// DefaultMaxPoolsPerSource bounds the pools the associations of one
	// source address together have PEs in: 64 sources are needed to fill
	// the default handlespace.DefaultMaxPools.
	DefaultMaxPoolsPerSource = 1024

	// DefaultMaxPEsPerSource bounds the PEs registered over the
	// associations of one source address: eight associations at
	// DefaultMaxPEsPerAssoc.
	DefaultMaxPEsPerSource = 8 * DefaultMaxPEsPerAssoc
)
