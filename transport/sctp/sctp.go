package sctp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/pion/logging"
	pionsctp "github.com/pion/sctp"

	"github.com/go-rserpool/rserpool/transport"
)

// Ports.
const (
	// DefaultPort is the UDP port of RFC 6951 SCTP encapsulation
	// (IANA "sctp-tunneling", 9899). It is the natural port for a
	// registrar's listener and the port a Linux kernel listens on when
	// net.sctp.udp_port is set to it.
	DefaultPort = 9899

	// ASAPAnnouncePort and ENRPAnnouncePort carry plain-UDP ASAP Server
	// Announce and ENRP Presence multicasts (RFC 5352 §3.6, RFC 5353 §3.2),
	// and are the SCTP ports of ASAP and ENRP. Encapsulated SCTP is never
	// put on these UDP ports: Listen and Dial refuse them with
	// [ErrReservedPort].
	ASAPAnnouncePort = 3863
	ENRPAnnouncePort = 9901

	// pionPort is the SCTP port pion/sctp uses as source and destination
	// when it dials.
	pionPort = 5000
)

// Defaults for a zero [Config].
const (
	DefaultShutdownTimeout  = 3 * time.Second
	DefaultHandshakeTimeout = 10 * time.Second
	DefaultBacklog          = 1024
	DefaultSendBuffer       = 1 << 20
)

// ErrReservedPort is returned for a UDP port that carries RSerPool
// multicast announces and so must not carry encapsulated SCTP.
var ErrReservedPort = errors.New("sctp: UDP port is reserved for ASAP/ENRP announces")

// ErrUnsupportedAddr is returned for an address this transport cannot use.
var ErrUnsupportedAddr = errors.New("sctp: unsupported address")

// Config configures a [Transport]. Its zero value works.
type Config struct {
	// ShutdownTimeout bounds the graceful SHUTDOWN exchange of Conn.Close
	// and Listener.Close before they fall back to ABORT. If zero,
	// DefaultShutdownTimeout is used.
	ShutdownTimeout time.Duration
	// HandshakeTimeout bounds the time between an INIT reaching a listener
	// and the association being established. If zero,
	// DefaultHandshakeTimeout is used.
	HandshakeTimeout time.Duration
	// Backlog bounds the associations a listener has in its handshake or
	// waiting for Accept; INITs beyond it are dropped (the peer
	// retransmits). If zero, DefaultBacklog is used.
	Backlog int
	// SendBuffer is how many bytes of a stream may await acknowledgement
	// before Send blocks. If zero, DefaultSendBuffer is used.
	SendBuffer int
	// KernelEncapsulationPort is the UDP port used to reach a kernel SCTP
	// peer named by a [transport.KindSCTP] address: the peer's
	// net.sctp.udp_port. If zero, DefaultPort is used.
	KernelEncapsulationPort uint16
	// LoggerFactory receives pion/sctp's logs. If nil, nothing is logged.
	LoggerFactory logging.LoggerFactory

	// Path supervision (RFC 9260 §8)

	// Supervision sets the HEARTBEATs on idle associations and when an
	// association whose peer stopped answering fails. The zero value uses
	// RFC 9260 §16's defaults (HB.interval 30 s, RTO.Min 1 s, RTO.Max
	// 60 s, Path.Max.Retrans 5: a silent peer is detected within about
	// 5 minutes); [LANSupervision] detects one within seconds; a negative
	// Supervision.HeartbeatInterval turns supervision off. See [Supervision].
	Supervision Supervision
}

func (c Config) withDefaults() Config {
	if c.ShutdownTimeout <= 0 {
		c.ShutdownTimeout = DefaultShutdownTimeout
	}
	if c.HandshakeTimeout <= 0 {
		c.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if c.Backlog <= 0 {
		c.Backlog = DefaultBacklog
	}
	if c.SendBuffer <= 0 {
		c.SendBuffer = DefaultSendBuffer
	}
	if c.KernelEncapsulationPort == 0 {
		c.KernelEncapsulationPort = DefaultPort
	}
	if c.LoggerFactory == nil {
		c.LoggerFactory = silentLoggers
	}
	if c.Supervision.Enabled() {
		c.Supervision = c.Supervision.withDefaults()
	}
	return c
}

var silentLoggers = &logging.DefaultLoggerFactory{
	Writer:          io.Discard,
	DefaultLogLevel: logging.LogLevelDisabled,
	ScopeLevels:     map[string]logging.LogLevel{},
}

// pionConfig is the pion/sctp configuration for one association over nc.
// Zero-checksum stays off: a Linux kernel rejects packets without CRC32c.
func (c *Config) pionConfig(nc net.Conn) pionsctp.Config {
	return pionsctp.Config{
		NetConn:        nc,
		LoggerFactory:  c.LoggerFactory,
		MaxMessageSize: transport.MaxMessageSize,
		RTOMax:         c.pionRTOMax(),
	}
}

// Transport is SCTP in user space (pion/sctp) carried over UDP as RFC 6951
// describes. It implements [transport.Transport].
type Transport struct {
	cfg Config
}

// New returns a Transport with the given configuration.
func New(cfg Config) *Transport {
	return &Transport{cfg: cfg.withDefaults()}
}

var (
	_ transport.Transport    = (*Transport)(nil)
	_ transport.KindReporter = (*Transport)(nil)
)

// Kind returns transport.KindSCTPUDP, the Kind of the addresses this
// Transport listens on ([transport.KindReporter]). Dial also reaches
// KindSCTP addresses.
func (t *Transport) Kind() transport.Kind { return transport.KindSCTPUDP }

func checkPort(p uint16) error {
	if p == ASAPAnnouncePort || p == ENRPAnnouncePort {
		return fmt.Errorf("%w: %d", ErrReservedPort, p)
	}
	return nil
}

func udpNetwork(a netip.Addr) string {
	if a.Is4() || a.Is4In6() {
		return "udp4"
	}
	return "udp6"
}

// Dial opens an association to the listener at to, which names a UDP
// address ([transport.KindSCTPUDP]) or a kernel SCTP endpoint
// ([transport.KindSCTP], reached over UDP port
// [Config.KernelEncapsulationPort] with to's port as the SCTP destination
// port). Each association has a connected UDP socket of its own. Dial fails
// when ctx ends before the handshake completes.
func (t *Transport) Dial(ctx context.Context, to transport.Addr) (transport.Conn, error) {
	if !to.AddrPort.IsValid() || to.AddrPort.Port() == 0 {
		return nil, fmt.Errorf("%w: %v", ErrUnsupportedAddr, to.AddrPort)
	}
	udpTo := to.AddrPort
	sctpPort := uint16(0)
	switch to.Kind {
	case transport.KindSCTPUDP:
	case transport.KindSCTP:
		udpTo = netip.AddrPortFrom(to.AddrPort.Addr(), t.cfg.KernelEncapsulationPort)
		sctpPort = to.AddrPort.Port()
	default:
		return nil, fmt.Errorf("%w: kind %d", ErrUnsupportedAddr, to.Kind)
	}
	if err := checkPort(udpTo.Port()); err != nil {
		return nil, err
	}
	var d net.Dialer
	nc, err := d.DialContext(ctx, udpNetwork(udpTo.Addr()), udpTo.String())
	if err != nil {
		return nil, fmt.Errorf("%w: %w", transport.ErrAssociationLost, err)
	}
	uc := nc.(*net.UDPConn)
	dc := &dialConn{Conn: uc, peerPort: sctpPort}
	assoc, err := pionsctp.ClientContext(ctx, t.cfg.pionConfig(dc))
	if err != nil {
		_ = uc.Close() // pion closes it too on most paths; a second Close is harmless
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("%w: handshake: %w", transport.ErrAssociationLost, err)
	}
	local := transport.Addr{Kind: transport.KindSCTPUDP, AddrPort: uc.LocalAddr().(*net.UDPAddr).AddrPort()}
	return newConn(assoc, dc, local, to, &t.cfg, nil)
}

// dialConn is the net.Conn under a dialed association: a connected UDP
// socket that notes the closing chunks the peer sends and, for a kernel
// SCTP peer, translates pion's fixed SCTP port 5000 to the peer's port.
type dialConn struct {
	net.Conn        // a connected *net.UDPConn
	peerPort uint16 // the kernel peer's SCTP port; 0 when no translation
	flags    atomic.Uint32
	wbuf     []byte // translation buffer; pion's single writeLoop writes
	sack     sackPrompter
	live     liveness
}

func (d *dialConn) seen() chunkFlags    { return chunkFlags(d.flags.Load()) }
func (d *dialConn) lastReceived() int64 { return d.live.lastReceived() }

func (d *dialConn) promptSack() {
	if pkt := d.sack.prompt(); pkt != nil {
		_, _ = d.Conn.Write(pkt)
	}
}

func (d *dialConn) Read(p []byte) (int, error) {
	for {
		n, err := d.Conn.Read(p)
		if err != nil {
			return n, err
		}
		pkt := p[:n]
		if n < commonHeaderSize {
			continue
		}
		if f := scanChunks(pkt); f != 0 {
			d.flags.Or(uint32(f))
		}
		d.live.seen(pkt)
		if d.peerPort != 0 {
			// The peer answers from its own port; pion expects 5000.
			if !checksumOK(pkt) {
				continue
			}
			putPorts(pkt, pionPort, pionPort)
			setChecksum(pkt)
		}
		return n, nil
	}
}

func (d *dialConn) Write(p []byte) (int, error) {
	if d.peerPort == 0 || len(p) < commonHeaderSize {
		return d.Conn.Write(d.sack.outgoing(p))
	}
	d.wbuf = append(d.wbuf[:0], p...)
	putPorts(d.wbuf, pionPort, d.peerPort)
	setChecksum(d.wbuf)
	return d.Conn.Write(d.sack.outgoing(d.wbuf))
}

func putPorts(pkt []byte, src, dst uint16) {
	pkt[0], pkt[1] = byte(src>>8), byte(src)
	pkt[2], pkt[3] = byte(dst>>8), byte(dst)
}
