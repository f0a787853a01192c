package enrp

import (
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"

	"github.com/go-rserpool/rserpool/handlespace"
	"github.com/go-rserpool/rserpool/transport"
)

// DefaultSendQueue is how many encoded messages may wait for one
// association before the registrar gives up on it as too slow and aborts
// it (so that one peer that stops reading cannot stall the registrar).
const DefaultSendQueue = 1024

// Sentinel errors.
var (
	// ErrInvalidConfig: a Config field is out of range; the message names
	// it.
	ErrInvalidConfig = errors.New("enrp: invalid configuration")
	// ErrClosed: the Registrar was closed, or its Run has returned.
	ErrClosed = errors.New("enrp: registrar closed")
	// ErrRunning: Run was called twice.
	ErrRunning = errors.New("enrp: registrar already running")
	// ErrNotRunning: a view was asked of a Registrar whose Run has not
	// started.
	ErrNotRunning = errors.New("enrp: registrar not running")
)

// Config configures a [Registrar]. A zero field takes the default named in
// its comment; the ASAP endpoint (Listener, or Transport with ListenAddr)
// is required. [NewCore] takes the same Config and uses the fields that
// are not the host's (ServerID, Rand, ASAP, Handlespace, Peers, Logger, and
// whether Announcer is set).
type Config struct {
	// ServerID is the registrar's ENRP server identifier (RFC 5353 §3.1).
	// If zero, a random non-zero one is drawn from Rand.
	ServerID uint32
	// Rand is the random source for the server ID and the random pool
	// policies; if nil, a randomly seeded one.
	Rand rand.Source

	// Listener is where PEs and PUs open ASAP associations. The host
	// keeps ownership: the Registrar does not close it. If nil, the
	// Registrar listens with Transport at ListenAddr and closes that
	// listener when it is closed.
	Listener   transport.Listener
	Transport  transport.Transport
	ListenAddr transport.Addr

	// Announcer, if not nil, carries the ASAP_SERVER_ANNOUNCE multicasts
	// (RFC 5352 §3.6), every ASAP.AnnounceInterval (T6-serverannounce).
	// The host chooses group and interface (transport/multicast on
	// loopback in tests, or memnet); the Registrar does not close it.
	Announcer transport.Announcer

	// ASAP configures the ASAP server procedures (RFC 5352 §3.2-3.7):
	// keep-alive supervision, resolution sizes, resource limits, defences
	// against false reports and floods, address checks, authorization and
	// the Server Announce. Its zero value takes the defaults named in
	// [ASAPConfig].
	ASAP ASAPConfig

	// Handlespace bounds the store (pools, PEs, handle size); a nil Rand
	// takes Config.Rand.
	Handlespace handlespace.Config

	// Peers configures ENRP peering with other registrars (RFC 5353 §3):
	// static peers, timers, table page size, limits and the host's hook
	// that accepts peers for the core (defaults named in [PeersConfig]);
	// and for the Registrar the ENRP multicast group (Peers.Announcer),
	// an optional separate ENRP listener (Peers.Listener; without it,
	// peers associate to Listener and their messages are told apart by
	// PPID, RFC 5353 §2) and the transport to dial peers with
	// (Peers.Transport, default Transport; a dial gives up after
	// Peers.MaxTimeNoResponse, the time a peer has to answer, RFC 5353
	// §3.2). When Peers.ENRPAddrs is empty, New fills it with the ENRP
	// listener's address (Peers.Listener's, else Listener's) unless that
	// address is unspecified. Its zero value: no static peers, no ENRP
	// multicast, ENRP accepted on the ASAP listener.
	Peers PeersConfig

	// SendQueue bounds the messages waiting for one association; default
	// DefaultSendQueue.
	SendQueue int

	// Events, if not nil, receives an [Event] for every change to a PE
	// this registrar owns: registered, updated by a re-registration, or
	// removed (with the reason); and for every peer registrar that comes
	// up or goes down, and every takeover (RFC 5353 §3.9) this registrar
	// starts, completes or undergoes (EventPeerUp and the other kinds
	// for which EventKind.IsPeer holds). Like os/signal.Notify, the registrar
	// never blocks sending on it: when the channel is full the event is
	// dropped and counted in Stats.EventsDropped, so a host that reads
	// slowly or not at all cannot stall the registrar. Give the channel
	// enough buffer for the bursts the host expects (the events of one
	// association's loss, for instance, come together). Events are sent
	// from the registrar's loop, in the order the changes happened, until
	// Run returns (the removals of Run's shutdown included); the channel
	// is never closed. An event is on the channel before the registrar's
	// answer to the message that caused it (a Registration or
	// Deregistration Response) is sent, and Stats already counts the
	// change: a host that saw a PE's Register or Deregister return finds
	// its event without waiting. The host owns the channel and may read
	// it from any goroutine; each Event is the receiver's own copy.
	Events chan<- Event

	// Logger receives logs; nil logs nothing.
	Logger *slog.Logger
}

// validate checks what the asap and handlespace constructors do not.
func (c *Config) validate() error {
	if c.Listener == nil {
		if c.Transport == nil {
			return fmt.Errorf("%w: Config.Listener or Config.Transport is required", ErrInvalidConfig)
		}
		if !c.ListenAddr.IsValid() {
			return fmt.Errorf("%w: Config.ListenAddr %v is not valid", ErrInvalidConfig, c.ListenAddr)
		}
	}
	if c.SendQueue < 0 {
		return fmt.Errorf("%w: Config.SendQueue = %d", ErrInvalidConfig, c.SendQueue)
	}
	if c.SendQueue == 0 {
		c.SendQueue = DefaultSendQueue
	}
	return nil
}

func logger(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.New(slog.DiscardHandler)
	}
	return l
}
