package enrp

import (
	"fmt"
	"time"

	"github.com/go-rserpool/rserpool/transport"
)

// Defaults of [PeersConfig]. RFC 5353 §7 names the peer timers; the
// values given for them here are the RFC's as far as they could be read
// and are not verified against the RFC text, so every one is
// configurable. Where the RFC gives no value, RSPLIB 3.4.4's default is
// used.
const (
	// DefaultHeartbeatCycle is PEER-HEARTBEAT-CYCLE (RFC 5353 §7,
	// unverified: 30 s; RSPLIB uses 2.444 s).
	DefaultHeartbeatCycle = 30 * time.Second
	// DefaultMaxTimeLastHeard is MAX-TIME-LAST-HEARD (RFC 5353 §7,
	// unverified: 61 s; RSPLIB uses 5 s).
	DefaultMaxTimeLastHeard = 61 * time.Second
	// DefaultMaxTimeNoResponse is MAX-TIME-NO-RESPONSE (RFC 5353 §7,
	// unverified: 5 s; RSPLIB uses 5 s too).
	DefaultMaxTimeNoResponse = 5 * time.Second
	// DefaultTakeoverExpiry is TAKEOVER-EXPIRY (RFC 5353 §3.9 names it
	// without a value; RSPLIB 3.4.4's default, 5 s).
	DefaultTakeoverExpiry = 5 * time.Second
	// DefaultMentorTimeout is how long a starting registrar waits to hear
	// a peer that could be its mentor (RFC 5353 §3.4 gives no value;
	// RSPLIB 3.4.4's default, 5 s).
	DefaultMentorTimeout = 5 * time.Second
	// DefaultPageSize bounds the PEs of one ENRP_HANDLE_TABLE_RESPONSE
	// (RFC 5353 §3.5 gives no value; RSPLIB 3.4.4 uses 128).
	DefaultPageSize = 128
	// DefaultMaxPeers bounds the peer table (RFC 5355 §3: a resource
	// limit; RFC 5353 gives none).
	DefaultMaxPeers = 256
	// DefaultMaxPEsPerPeer bounds the PEs of one home registrar that peers
	// may make this registrar store (RFC 5355 §3; no RFC value).
	DefaultMaxPEsPerPeer = 1 << 20
	// DefaultRedialMin and DefaultRedialMax bound the back-off between
	// attempts to reach a static peer (no RFC value; RSPLIB retries every
	// heartbeat cycle).
	DefaultRedialMin = 1 * time.Second
	DefaultRedialMax = 30 * time.Second
	// DefaultMaxENRPRate is the ENRP messages per second one association
	// of a peer may send before the core drops them (RFC 5355 §3 flood
	// protection; this package's choice). Table transfers and handle
	// updates from a named peer are not charged (see MaxENRPRate).
	DefaultMaxENRPRate = 2000
)

// PeersConfig configures ENRP peering (RFC 5353 §3). Its zero value
// peers with no one until a peer announces itself (by Presence on an
// association or, with Announcer, on the multicast group). Every zero
// field takes the default named in its comment.
type PeersConfig struct {
	// Static lists the ENRP addresses of peer registrars (RFC 5353 §3.1).
	// The core asks the host to connect to each at start (ConnectPeer),
	// and again with a back-off from RedialMin to RedialMax when the
	// association is lost or fails.
	Static []transport.Addr
	// ENRPAddrs are this registrar's own ENRP addresses, sent in its
	// Server Information parameter (RFC 5353 §2.1, RFC 5354 §3.11). The
	// driver fills them from the ENRP listener's address when empty.
	ENRPAddrs []transport.Addr

	// HeartbeatCycle is PEER-HEARTBEAT-CYCLE: the period of the Presence
	// to every peer (RFC 5353 §3.2). Default DefaultHeartbeatCycle.
	HeartbeatCycle time.Duration
	// MaxTimeLastHeard is MAX-TIME-LAST-HEARD: the silence after which a
	// peer is probed with a Presence with R=1 (RFC 5353 §3.2). Default
	// DefaultMaxTimeLastHeard.
	MaxTimeLastHeard time.Duration
	// MaxTimeNoResponse is MAX-TIME-NO-RESPONSE: how long the probe waits
	// before the peer is presumed dead (RFC 5353 §3.2). Default
	// DefaultMaxTimeNoResponse.
	MaxTimeNoResponse time.Duration
	// TakeoverExpiry is TAKEOVER-EXPIRY (RFC 5353 §3.9). Default
	// DefaultTakeoverExpiry.
	TakeoverExpiry time.Duration
	// MentorTimeout is how long a starting registrar waits for a mentor
	// (RFC 5353 §3.4). The start-up phase, in which registrations are
	// refused, happens only when the registrar has a way to find peers
	// (Static or Announcer set). Default DefaultMentorTimeout; negative:
	// no start-up phase.
	MentorTimeout time.Duration
	// PageSize bounds the PEs of one HANDLE_TABLE_RESPONSE (RFC 5353
	// §3.5). A page that would not fit the 16-bit Message Length is made
	// smaller, so a large PageSize fills each message up to 64 KiB (and at
	// most 341 PEs, what a receiver with the default tlv.Limits parses).
	// Default DefaultPageSize.
	PageSize int

	// MaxPeers bounds the peer table; default DefaultMaxPeers.
	MaxPeers int
	// MaxPEsPerPeer bounds the PEs of one home registrar other than this
	// one that ENRP may make the store hold; an update or table entry
	// over it is refused. Default DefaultMaxPEsPerPeer.
	MaxPEsPerPeer int
	// MaxENRPRate bounds the ENRP messages per second of one association
	// (burst RateLimitBurst); default DefaultMaxENRPRate, Unlimited for
	// none. The pages of a table transfer we asked for, the requests for
	// the next page of one we serve, and HANDLE_UPDATEs from a named peer
	// are not charged: dropping them would leave the handlespaces apart
	// until the next audit, and MaxPEsPerPeer bounds what updates can
	// make us store.
	MaxENRPRate float64
	// RedialMin and RedialMax bound the back-off of the dials to Static
	// peers; defaults DefaultRedialMin and DefaultRedialMax.
	RedialMin, RedialMax time.Duration

	// Accept, if not nil, decides whether a peer (its server ID and
	// association) may peer with us; a non-nil error refuses it (RFC 5355
	// §3: only authorised registrars; RFC 5353 §6). info carries the
	// peer's verified identity when the transport authenticates it
	// (AssocInfo.Authenticated; PeerMatcher matches it by name). It is
	// asked whenever an association first speaks for a server ID: at its
	// first Presence, and when an association that has not introduced
	// itself sends another message in the name of a known peer. A
	// refused association's messages are dropped: its handle updates are
	// never applied. Nil: any peer, or with StaticOnly and Static given
	// only the associations to or from a Static address.
	Accept     func(serverID uint32, info AssocInfo) error
	StaticOnly bool

	// Driver-side (ignored by the Core, except that a non-nil Announcer
	// makes it multicast its Presence and enables the start-up phase):
	Announcer transport.Announcer // ENRP Presence multicast group (RFC 5353 §3.2); nil: none
	Listener  transport.Listener  // separate ENRP listener; nil: ENRP on the ASAP listener (routed by PPID)
	// Transport dials peers. Nil: from the ENRP listener (Listener, else
	// Config.Listener) when it is a transport.Endpoint that reaches the
	// peer, so that the association comes from the address and port our
	// Server Information names (RFC 5353 §2.2.1; a kernel SCTP peer is
	// dialled with that port as SCTP source port, as RSPLIB 3.4.4 requires),
	// else with Config.Transport.
	Transport transport.Transport
}

// withDefaults returns c with its zero fields set, or an error naming a
// field out of range.
func (c PeersConfig) withDefaults() (PeersConfig, error) {
	for _, d := range []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{
		{"HeartbeatCycle", &c.HeartbeatCycle, DefaultHeartbeatCycle},
		{"MaxTimeLastHeard", &c.MaxTimeLastHeard, DefaultMaxTimeLastHeard},
		{"MaxTimeNoResponse", &c.MaxTimeNoResponse, DefaultMaxTimeNoResponse},
		{"TakeoverExpiry", &c.TakeoverExpiry, DefaultTakeoverExpiry},
		{"RedialMin", &c.RedialMin, DefaultRedialMin},
		{"RedialMax", &c.RedialMax, DefaultRedialMax},
	} {
		if *d.v < 0 {
			return c, fmt.Errorf("%w: Peers.%s = %v", ErrInvalidConfig, d.name, *d.v)
		}
		if *d.v == 0 {
			*d.v = d.def
		}
	}
	if c.MentorTimeout == 0 {
		c.MentorTimeout = DefaultMentorTimeout
	}
	if c.RedialMax < c.RedialMin {
		c.RedialMax = c.RedialMin
	}
	for _, d := range []struct {
		name string
		v    *int
		def  int
	}{
		{"PageSize", &c.PageSize, DefaultPageSize},
		{"MaxPeers", &c.MaxPeers, DefaultMaxPeers},
		{"MaxPEsPerPeer", &c.MaxPEsPerPeer, DefaultMaxPEsPerPeer},
	} {
		if *d.v < 0 {
			return c, fmt.Errorf("%w: Peers.%s = %d", ErrInvalidConfig, d.name, *d.v)
		}
		if *d.v == 0 {
			*d.v = d.def
		}
	}
	switch {
	case c.MaxENRPRate == 0:
		c.MaxENRPRate = DefaultMaxENRPRate
	case c.MaxENRPRate < 0 && c.MaxENRPRate != Unlimited:
		return c, fmt.Errorf("%w: Peers.MaxENRPRate = %v", ErrInvalidConfig, c.MaxENRPRate)
	}
	for i, a := range c.Static {
		if !a.IsValid() {
			return c, fmt.Errorf("%w: Peers.Static[%d] %v is not valid", ErrInvalidConfig, i, a)
		}
	}
	return c, nil
}
