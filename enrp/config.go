package enrp

import (
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

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
// is required.
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
	// (RFC 5352 §3.6), every AnnounceInterval (T6-serverannounce, default
	// asap.DefaultT6ServerAnnounce). The host chooses group and
	// interface (transport/multicast on loopback in tests, or memnet);
	// the Registrar does not close it. AnnounceAddrs are the ASAP
	// addresses announced; default the listener's address when it is a
	// specified address, else none (receivers then use the datagram's
	// source address).
	Announcer        transport.Announcer
	AnnounceInterval time.Duration
	AnnounceAddrs    []transport.Addr

	// ASAP server procedures (RFC 5352 §3.2-3.7); see ASAPConfig
	// for the meaning and defaults of each.
	MaxBadPEReport     int           // MAX-BAD-PE-REPORT, default DefaultMaxBadPEReport
	KeepAliveInterval  time.Duration // default DefaultKeepAliveInterval
	KeepAliveTimeout   time.Duration // default DefaultKeepAliveTimeout
	ResolutionItems    int           // default DefaultResolutionItems
	MaxResolutionItems int           // default DefaultMaxResolutionItems
	MaxPEsPerAssoc     int           // default DefaultMaxPEsPerAssoc; Unlimited for none
	AssocRate          float64       // messages/s, default DefaultAssocRate; Unlimited for none
	AssocBurst         int           // default DefaultAssocBurst
	AddressCheck       AddressCheck  // anti-spoofing of user transports
	Authorize          AuthorizeFunc

	// Registrar resource limits (RFC 5355 §3); see ASAPConfig.
	// Each is refused with Lack of Resources (0x6); Unlimited turns
	// one off.
	MaxPESize         int // encoded bytes of a stored PE, default DefaultMaxPESize
	MaxPoolsPerAssoc  int // pools an association has PEs in, default DefaultMaxPoolsPerAssoc
	MaxPoolsPerSource int // pools a source address has PEs in, default DefaultMaxPoolsPerSource
	MaxPEsPerSource   int // PEs of a source address, default DefaultMaxPEsPerSource

	// Defences against false reports, resolution floods and idle peers
	// (RFC 5355 §3); see ASAPConfig.
	MaxEURate       float64       // reports/s per association, default DefaultMaxEURate; Unlimited for none
	MaxHRRate       float64       // resolutions/s per association, default DefaultMaxHRRate (unlimited)
	IDGrace         time.Duration // default DefaultIDGrace; negative for none
	MaxGraceEntries int           // default DefaultMaxGraceEntries
	IdleTimeout     time.Duration // default DefaultIdleTimeout; negative for none

	// Handlespace bounds the store (pools, PEs, handle size); a nil Rand
	// takes Config.Rand.
	Handlespace handlespace.Config

	// SendQueue bounds the messages waiting for one association; default
	// DefaultSendQueue.
	SendQueue int

	// Events, if not nil, receives an [Event] for every change to a PE
	// this registrar owns: registered, updated by a re-registration, or
	// removed (with the reason). Like os/signal.Notify, the registrar
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

func (c *Config) asapConfig() ASAPConfig {
	return ASAPConfig{
		MaxBadPEReport:     c.MaxBadPEReport,
		KeepAliveInterval:  c.KeepAliveInterval,
		KeepAliveTimeout:   c.KeepAliveTimeout,
		ResolutionItems:    c.ResolutionItems,
		MaxResolutionItems: c.MaxResolutionItems,
		MaxPEsPerAssoc:     c.MaxPEsPerAssoc,
		AssocRate:          c.AssocRate,
		AssocBurst:         c.AssocBurst,
		AddressCheck:       c.AddressCheck,
		Authorize:          c.Authorize,
		MaxPESize:          c.MaxPESize,
		MaxPoolsPerAssoc:   c.MaxPoolsPerAssoc,
		MaxPoolsPerSource:  c.MaxPoolsPerSource,
		MaxPEsPerSource:    c.MaxPEsPerSource,
		MaxEURate:          c.MaxEURate,
		MaxHRRate:          c.MaxHRRate,
		IDGrace:            c.IDGrace,
		MaxGraceEntries:    c.MaxGraceEntries,
		IdleTimeout:        c.IdleTimeout,
		AnnounceInterval:   c.AnnounceInterval,
		AnnounceAddrs:      c.AnnounceAddrs,
	}
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
