package enrp

// Temporary stand-ins for the ENRP side of the Core (RFC 5353), so that
// the driver can be built and tested before the procedures land. They
// follow the contract between the ENRP helpers; this file goes when the
// real peers_config.go, peers.go and the PeerEvent output are merged.

import (
	"time"

	"github.com/go-rserpool/rserpool/transport"
)

// PeersConfig configures ENRP peering (RFC 5353 §3). Stand-in: the Core
// ignores it for now.
type PeersConfig struct {
	// Static lists the ENRP addresses of peer registrars (RFC 5353 §3.1).
	Static []transport.Addr
	// ENRPAddrs are this registrar's own ENRP addresses, sent in its
	// Server Information parameter; when empty the Registrar fills it
	// with its ENRP listener's address.
	ENRPAddrs []transport.Addr

	HeartbeatCycle    time.Duration // PEER-HEARTBEAT-CYCLE
	MaxTimeLastHeard  time.Duration // MAX-TIME-LAST-HEARD
	MaxTimeNoResponse time.Duration // MAX-TIME-NO-RESPONSE
	TakeoverExpiry    time.Duration // TAKEOVER-EXPIRY
	MentorTimeout     time.Duration // mentor discovery timeout
	PageSize          int

	Accept     func(serverID uint32, info AssocInfo) error
	StaticOnly bool

	// Driver-side (ignored by the Core):

	// Announcer, if not nil, is the ENRP multicast group (RFC 5353 §3.2):
	// the Registrar sends the core's ENRP Presence multicasts on it and
	// feeds the core what it receives. The host chooses group and
	// interface (multicast.DefaultENRPGroup, 239.0.0.51:9901, on
	// loopback in tests); the Registrar does not close it.
	Announcer transport.Announcer
	// Listener, if not nil, is a separate ENRP listener: its associations
	// carry ENRP (PPID transport.PPIDENRP) to the same core. The host
	// keeps ownership. If nil, peers use the ASAP listener, where
	// messages are routed by PPID.
	Listener transport.Listener
	// Transport dials peers (ConnectPeer); nil: Config.Transport.
	Transport transport.Transport
}

// DefaultMaxTimeNoResponse is MAX-TIME-NO-RESPONSE (RFC 5353 §7: 5 s).
const DefaultMaxTimeNoResponse = 5 * time.Second

// PeerEventKind says what happened to a peer; see [PeerEvent].
type PeerEventKind uint8

// Kinds of PeerEvent.
const (
	PeerUp PeerEventKind = iota + 1
	PeerDown
	TakeoverStarted
	TakeoverDone
	TakenOverBy
)

// PeerEvent tells the host about a peer registrar (stand-in).
type PeerEvent struct {
	Kind     PeerEventKind
	ServerID uint32
	PEs      int
}

func (PeerEvent) isOutput() {}

// HandleENRP handles one ENRP message (PPID 12) on association id
// (stand-in: does nothing yet).
func (c *Core) HandleENRP(now time.Time, id AssocID, b []byte) { c.start(now) }

// HandleConnected tells the core that the association of a ConnectPeer
// came up (stand-in).
func (c *Core) HandleConnected(now time.Time, id AssocID, info AssocInfo) { c.start(now) }

// HandleConnectFailed tells the core that a ConnectPeer failed
// (stand-in).
func (c *Core) HandleConnectFailed(now time.Time, id AssocID, err error) { c.start(now) }

// HandleENRPMulticast handles one datagram of the ENRP multicast group
// (stand-in).
func (c *Core) HandleENRPMulticast(now time.Time, from transport.Addr, b []byte) { c.start(now) }
