package sctp

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/logging"
	pionsctp "github.com/pion/sctp"

	"github.com/go-rserpool/rserpool/transport"
)

// Ports.
const (
	// DefaultPort is the UDP port of RFC 6951 SCTP encapsulation
	// (IANA "sctp-tunneling", 9899: transport.PortSCTPOverUDP). It is the
	// natural port for a registrar's listener and the port a Linux kernel
	// listens on when net.sctp.udp_port is set to it.
	//
	// transport.PortASAP and transport.PortENRP carry plain-UDP ASAP Server
	// Announce and ENRP Presence multicasts (RFC 5352 §3.6, RFC 5353 §3.2),
	// and are the SCTP ports of ASAP and ENRP. Encapsulated SCTP is never
	// put on these UDP ports: Listen and Dial refuse them with
	// [ErrReservedPort].
	DefaultPort = transport.PortSCTPOverUDP

	// pionPort is the SCTP port pion/sctp uses as source and destination
	// when it dials.
	pionPort = 5000
)

// Defaults for a zero [Config]. RFC 9260 gives none of these (it bounds
// handshakes and shutdowns only by retransmission counts); they are this
// package's choices.
const (
	// DefaultShutdownTimeout: 3 s, three RTO.Initial (RFC 9260 §16) for
	// the SHUTDOWN exchange before Close aborts.
	DefaultShutdownTimeout = 3 * time.Second
	// DefaultHandshakeTimeout: 10 s, room for an INIT and a COOKIE ECHO
	// to be lost and retransmitted with RTO.Initial 1 s, doubling.
	DefaultHandshakeTimeout = 10 * time.Second
	// DefaultBacklog: 1024 associations in handshake or awaiting Accept.
	DefaultBacklog = 1024
	// DefaultSendBuffer: 1 MiB unacknowledged per stream.
	DefaultSendBuffer = 1 << 20
	// DefaultSACKHold: 1 ms, below the 2 ms that pion/sctp adds to twice
	// the smoothed RTT for its probe timeout, so that a held SACK never
	// makes the peer probe, and far below the 200 ms of RFC 9260 §6.2.
	DefaultSACKHold = time.Millisecond
)

// Defaults of the limits of a zero [Config] (the "Limits" block).
const (
	DefaultMaxAssociations        = 4096
	DefaultMaxAssociationsPerAddr = 256
	DefaultMaxHandshakesPerAddr   = 32
	DefaultCookieEchoTimeout      = 4 * time.Second
	DefaultMaxStreams             = 16
	DefaultReceiveWindow          = 256 << 10
	DefaultRecvQueueBytes         = 256 << 10
)

// ErrReservedPort is returned for a UDP port that carries RSerPool
// multicast announces and so must not carry encapsulated SCTP.
var ErrReservedPort = errors.New("sctp: UDP port is reserved for ASAP/ENRP announces")

// ErrUnsupportedAddr is returned for an address this transport cannot use.
var ErrUnsupportedAddr = errors.New("sctp: unsupported address")

// ErrTooManyStreams is the reason an association is aborted when its peer
// sends on a stream beyond [Config.MaxStreams], which we advertised. It is
// returned wrapped together with [transport.ErrAssociationLost].
var ErrTooManyStreams = errors.New("sctp: peer used more streams than advertised")

// ErrOutOfResource is returned by Dial when the peer refused the
// association with an ABORT carrying the "Out of Resource" error cause
// (RFC 9260 §3.3.10.4), as a listener at one of its limits does. It is
// wrapped together with [transport.ErrAssociationLost].
var ErrOutOfResource = errors.New("sctp: peer refused the association: out of resource")

// Config configures a [Transport]. Its zero value works.
type Config struct {
	// ShutdownTimeout bounds the graceful SHUTDOWN exchange of Conn.Close
	// and Listener.Close before they fall back to ABORT. If zero,
	// DefaultShutdownTimeout is used.
	ShutdownTimeout time.Duration
	// HandshakeTimeout bounds the time between an INIT reaching a listener
	// and the association being established. If zero,
	// DefaultHandshakeTimeout is used. Over DTLS it starts once the DTLS
	// handshake, bounded by [DTLSConfig.HandshakeTimeout], is done.
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

	// Limits
	//
	// They bound what one peer, or one source address, can make a
	// listener or an association hold (RFC 5355 §6.1 asks a registrar to
	// withstand flooding). A zero value means the default; a negative
	// value turns a limit off.

	// MaxAssociations bounds the associations of one listener: those in
	// their handshake, waiting for Accept, and accepted and not yet ended.
	// An INIT beyond it is answered with an ABORT carrying the "Out of
	// Resource" error cause (RFC 9260 §3.3.10.4), so that the peer fails
	// at once instead of retransmitting. If zero,
	// DefaultMaxAssociations (4096, chosen: 4096 associations hold about
	// 256 MiB of state besides their receive windows) is used; negative
	// means no limit.
	MaxAssociations int
	// MaxAssociationsPerAddr bounds, as MaxAssociations does, the
	// associations of one listener from one peer IP address (the UDP
	// source address; every port counts). An INIT beyond it gets the same
	// ABORT. If zero, DefaultMaxAssociationsPerAddr (256, chosen: a host
	// running a few hundred pool elements fits) is used; negative means no
	// limit.
	MaxAssociationsPerAddr int
	// MaxHandshakesPerAddr bounds the handshakes one peer IP address may
	// have in progress on a listener (from its INIT until the association
	// is established) while the backlog is at least half full. An INIT
	// beyond it is then dropped: a genuine peer retransmits it after its
	// T1-init timer (RFC 9260 §5.1), a flooder only fills its own share.
	// With the backlog mostly free, a burst of dials from one host is
	// served at once. When [Config.Backlog] is full, a new INIT
	// evicts the oldest handshake that has not received a COOKIE ECHO,
	// from the address with the most handshakes in progress, rather than
	// being dropped. If zero, DefaultMaxHandshakesPerAddr (32, chosen: a
	// host starting 32 pool elements at once is served without a
	// retransmission) is used; negative means no limit.
	MaxHandshakesPerAddr int
	// CookieEchoTimeout is how long a listener keeps a handshake, from its
	// first INIT, for which no COOKIE ECHO arrived. A genuine peer sends
	// it one round trip after the INIT ACK and retransmits it after 1 s
	// and 2 s more if it is lost (RTO.Initial 1 s, doubled, RFC 9260 §16,
	// §6.3.3); an INIT that arrives after the handshake was dropped starts
	// a new one. If zero, DefaultCookieEchoTimeout (4 s: the COOKIE ECHO
	// and two retransmissions fit) is used; negative leaves only
	// HandshakeTimeout.
	CookieEchoTimeout time.Duration
	// MaxStreams is the number of inbound streams an association accepts
	// (stream identifiers 0 to MaxStreams-1). It is advertised as the
	// MIS field of the INIT and INIT ACK our side sends (RFC 9260
	// §3.3.2, §5.1.1), and a peer that sends on a stream beyond it gets
	// the association aborted ([ErrTooManyStreams]) before a reader is
	// started for that stream. If zero, DefaultMaxStreams (16, chosen:
	// above the 10 outbound streams a Linux kernel opens by default, and
	// ASAP and ENRP need only a few) is used; negative means 65,535.
	MaxStreams int
	// ReceiveWindow is the receive buffer of one association, in bytes:
	// what it advertises as a_rwnd (RFC 9260 §6.2) and the most pion
	// holds of messages not yet passed to Recv. It must hold a message of
	// [transport.MaxMessageSize] bytes; smaller values are raised to
	// twice that. If zero, DefaultReceiveWindow (256 KiB, chosen: four
	// maximum-size messages; pion's own default is 1 MiB) is used;
	// negative means pion's default.
	ReceiveWindow int
	// RecvQueueBytes bounds the bytes of the messages an association has
	// taken from pion and holds for Recv (at most 64 messages in any
	// case). Beyond it the association stops reading from pion, whose
	// window then closes, so that a peer sending into a Conn that is not
	// read costs at most ReceiveWindow + RecvQueueBytes, plus one message
	// per stream reader. If zero, DefaultRecvQueueBytes (256 KiB, chosen:
	// as much as the default ReceiveWindow) is used; negative means no
	// limit but the 64 messages.
	RecvQueueBytes int
	// SACKHold is how long an association may hold a SACK that pion/sctp
	// sends on its own, for the association's next DATA packet to carry
	// (RFC 9260 §6.10 bundling; §6.2 allows a SACK to wait up to 200
	// ms): a request/response exchange then costs two packets per round
	// trip instead of three. Only a SACK that reports no gap or duplicate
	// TSN, advertises at least half of ReceiveWindow, and follows DATA the
	// association sent since its previous SACK is held; a held SACK leaves
	// on its own when the hold ends or before any packet other than DATA.
	// If zero, DefaultSACKHold (1 ms) is used; negative sends every SACK
	// when pion does. Over DTLS it saves a record per round trip likewise.
	SACKHold time.Duration
	// LocalAddr, if valid, is the local IP address Dial sends from, for a
	// host with several addresses. If zero, the operating system picks it.
	LocalAddr netip.Addr

	// Security (RFC 5355 §4, RFC 8261)

	// DTLS, if set, runs every association of this Transport over DTLS
	// (SCTP over DTLS over UDP, RFC 8261): mutually authenticated with
	// X.509 certificates, encrypted and replay-protected. See
	// [DTLSConfig]. If nil, associations are plain SCTP over UDP (RFC
	// 6951), as before. Both ends must agree.
	DTLS *DTLSConfig
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
	c.MaxAssociations = limit(c.MaxAssociations, DefaultMaxAssociations)
	c.MaxAssociationsPerAddr = limit(c.MaxAssociationsPerAddr, DefaultMaxAssociationsPerAddr)
	c.MaxHandshakesPerAddr = limit(c.MaxHandshakesPerAddr, DefaultMaxHandshakesPerAddr)
	switch {
	case c.CookieEchoTimeout == 0:
		c.CookieEchoTimeout = DefaultCookieEchoTimeout
	case c.CookieEchoTimeout < 0:
		c.CookieEchoTimeout = 0
	}
	switch {
	case c.MaxStreams == 0:
		c.MaxStreams = DefaultMaxStreams
	case c.MaxStreams < 0 || c.MaxStreams > math.MaxUint16:
		c.MaxStreams = math.MaxUint16
	}
	c.RecvQueueBytes = limit(c.RecvQueueBytes, DefaultRecvQueueBytes)
	switch {
	case c.SACKHold == 0:
		c.SACKHold = DefaultSACKHold
	case c.SACKHold < 0:
		c.SACKHold = 0
	}
	switch {
	case c.ReceiveWindow == 0:
		c.ReceiveWindow = DefaultReceiveWindow
	case c.ReceiveWindow < 0:
		c.ReceiveWindow = 0 // pion's default
	case c.ReceiveWindow < 2*transport.MaxMessageSize:
		c.ReceiveWindow = 2 * transport.MaxMessageSize
	}
	if c.Supervision.Enabled() {
		c.Supervision = c.Supervision.withDefaults()
	}
	return c
}

// limit returns the effective value of a count limit: def for zero, and
// math.MaxInt (no limit) for a negative value.
func limit(v, def int) int {
	switch {
	case v == 0:
		return def
	case v < 0:
		return math.MaxInt
	}
	return v
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
		NetConn:              nc,
		LoggerFactory:        c.LoggerFactory,
		MaxMessageSize:       transport.MaxMessageSize,
		MaxReceiveBufferSize: uint32(min(c.ReceiveWindow, math.MaxUint32)),
		RTOMax:               c.pionRTOMax(),
	}
}

// Transport is SCTP in user space (pion/sctp) carried over UDP as RFC 6951
// describes. It implements [transport.Transport].
type Transport struct {
	cfg    Config
	ports  kernelPorts // SCTP source ports of dialed KindSCTP associations
	dtls   *dtlsSetup  // nil without DTLS
	cfgErr error       // Config.Validate's verdict, returned by Listen and Dial
}

// New returns a Transport with the given configuration. A configuration
// that [Config.Validate] refuses makes Listen and Dial fail with its error.
func New(cfg Config) *Transport {
	t := &Transport{cfg: cfg.withDefaults()}
	if t.cfgErr = cfg.Validate(); t.cfgErr == nil && cfg.DTLS != nil {
		t.dtls = newDTLSSetup(&t.cfg)
	}
	return t
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
	if p == transport.PortASAP || p == transport.PortENRP {
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
// port). Each association has a connected UDP socket of its own, bound to
// [Config.LocalAddr] if set. An association to a kernel endpoint gets an
// SCTP source port of its own from the ephemeral range (RFC 6335 §6),
// unique among this Transport's live associations to that host: a kernel
// identifies an association by its SCTP ports, not the UDP ones, and
// takes a second association from the same SCTP port as a restart with a
// new encapsulation port (RFC 6951 §5.5), which it aborts. Dial fails
// when ctx ends before the handshake completes, and with
// [ErrOutOfResource] when the peer refuses the association for lack of
// resources.
//
// With [Config.DTLS], Dial runs the DTLS handshake on the socket first
// (within [DTLSConfig.HandshakeTimeout] and ctx) and fails with a
// [*HandshakeError] when either side refuses; KindSCTP addresses fail with
// [ErrUnsupportedAddr]. The Conn's PeerIdentity is the listener's verified
// certificate.
func (t *Transport) Dial(ctx context.Context, to transport.Addr) (transport.Conn, error) {
	if t.cfgErr != nil {
		return nil, t.cfgErr
	}
	if !to.AddrPort.IsValid() || to.AddrPort.Port() == 0 {
		return nil, fmt.Errorf("%w: %v", ErrUnsupportedAddr, to.AddrPort)
	}
	udpTo := to.AddrPort
	sctpPort := uint16(0)
	switch to.Kind {
	case transport.KindSCTPUDP:
	case transport.KindSCTP:
		if t.dtls != nil {
			return nil, fmt.Errorf("%w: %v: kernel SCTP does not run over DTLS", ErrUnsupportedAddr, to)
		}
		udpTo = netip.AddrPortFrom(to.AddrPort.Addr(), t.cfg.KernelEncapsulationPort)
		sctpPort = to.AddrPort.Port()
	default:
		return nil, fmt.Errorf("%w: kind %d", ErrUnsupportedAddr, to.Kind)
	}
	if err := checkPort(udpTo.Port()); err != nil {
		return nil, err
	}
	var d net.Dialer
	if t.cfg.LocalAddr.IsValid() {
		d.LocalAddr = net.UDPAddrFromAddrPort(netip.AddrPortFrom(t.cfg.LocalAddr, 0))
	}
	nc, err := d.DialContext(ctx, udpNetwork(udpTo.Addr()), udpTo.String())
	if err != nil {
		return nil, fmt.Errorf("%w: %w", transport.ErrAssociationLost, err)
	}
	uc := nc.(*net.UDPConn)
	if t.dtls != nil {
		return t.dialDTLS(ctx, uc, to)
	}
	dc := &dialConn{Conn: uc, peerPort: sctpPort, maxStreams: uint16(t.cfg.MaxStreams)}
	dc.bundle = newSackBundler(&t.cfg, dc.send)
	var release func(*Conn)
	if sctpPort != 0 {
		host := udpTo.Addr().Unmap()
		if dc.localPort, err = t.ports.take(host); err != nil {
			_ = uc.Close()
			return nil, err
		}
		lp := dc.localPort
		release = func(*Conn) { t.ports.give(host, lp) }
	}
	assoc, err := pionsctp.ClientContext(ctx, t.cfg.pionConfig(dc))
	if err != nil {
		_ = uc.Close() // pion closes it too on most paths; a second Close is harmless
		if release != nil {
			release(nil)
		}
		switch {
		case ctx.Err() != nil:
			return nil, ctx.Err()
		case dc.seen()&sawOutOfResource != 0:
			return nil, fmt.Errorf("%w: %w", transport.ErrAssociationLost, ErrOutOfResource)
		}
		return nil, fmt.Errorf("%w: handshake: %w", transport.ErrAssociationLost, err)
	}
	local := transport.Addr{Kind: transport.KindSCTPUDP, AddrPort: uc.LocalAddr().(*net.UDPAddr).AddrPort()}
	c, err := newConn(assoc, dc, local, to, &t.cfg, release)
	if err != nil {
		if release != nil {
			release(nil)
		}
		return nil, err // not a nil *Conn in the interface
	}
	return c, nil
}

// kernelPorts hands out the SCTP source ports of dialed associations to
// kernel SCTP endpoints, one per live association to a host.
type kernelPorts struct {
	mu    sync.Mutex
	inUse map[netip.Addr]map[uint16]struct{}
}

// Ephemeral port range (RFC 6335 §6).
const (
	ephemeralFirst = 49152
	ephemeralCount = 65536 - ephemeralFirst
)

// errNoPort is returned by Dial when every ephemeral SCTP port to a host is
// taken by a live association.
var errNoPort = errors.New("sctp: no free SCTP source port to this host")

// take returns an SCTP source port that no live association to host uses,
// picked at random from the ephemeral range (RFC 6056 §3.3.1's "simple
// port randomization", so that ports are not reused at once).
func (k *kernelPorts) take(host netip.Addr) (uint16, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.inUse == nil {
		k.inUse = make(map[netip.Addr]map[uint16]struct{})
	}
	used := k.inUse[host]
	if used == nil {
		used = make(map[uint16]struct{})
		k.inUse[host] = used
	}
	if len(used) >= ephemeralCount {
		return 0, fmt.Errorf("%w: %w", transport.ErrAssociationLost, errNoPort)
	}
	p := uint16(ephemeralFirst + rand.IntN(ephemeralCount))
	for {
		if _, ok := used[p]; !ok {
			used[p] = struct{}{}
			return p, nil
		}
		if p++; p == 0 {
			p = ephemeralFirst
		}
	}
}

func (k *kernelPorts) give(host netip.Addr, p uint16) {
	k.mu.Lock()
	defer k.mu.Unlock()
	used := k.inUse[host]
	delete(used, p)
	if len(used) == 0 {
		delete(k.inUse, host)
	}
}

// dialConn is the net.Conn under a dialed association: a connected UDP
// socket that notes the closing chunks the peer sends, advertises
// [Config.MaxStreams] in pion's INIT and, for a kernel SCTP peer,
// translates pion's fixed SCTP port 5000 to the association's own source
// port and the peer's port.
type dialConn struct {
	net.Conn          // a connected *net.UDPConn
	peerPort   uint16 // the kernel peer's SCTP port; 0 when no translation
	localPort  uint16 // our SCTP source port towards a kernel peer
	maxStreams uint16 // MIS to advertise
	flags      atomic.Uint32
	wbuf       []byte // translation buffer; pion's single writeLoop writes
	sack       sackPrompter
	bundle     *sackBundler
	live       liveness
}

func (d *dialConn) send(pkt []byte) error {
	_, err := d.Conn.Write(pkt)
	return err
}

// Close drops a SACK the bundler holds and closes the socket.
func (d *dialConn) Close() error {
	d.bundle.close()
	return d.Conn.Close()
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
		if d.peerPort != 0 {
			// The peer answers from its own port to ours; pion expects
			// 5000 to 5000. A packet for another port pair is not ours.
			src, dst := binary.BigEndian.Uint16(pkt[0:]), binary.BigEndian.Uint16(pkt[2:])
			if src != d.peerPort || dst != d.localPort || !checksumOK(pkt) {
				continue
			}
			putPorts(pkt, pionPort, pionPort)
			setChecksum(pkt)
		}
		if f := scanChunks(pkt); f != 0 {
			d.bundle.received(f)
			if f &^= sawImmediate; f != 0 {
				d.flags.Or(uint32(f))
			}
		}
		d.live.seen(pkt)
		return n, nil
	}
}

func (d *dialConn) Write(p []byte) (int, error) {
	if len(p) < commonHeaderSize {
		return d.Conn.Write(p)
	}
	init := p[commonHeaderSize] == chunkInit
	if d.peerPort == 0 && !init {
		return d.write(p, p)
	}
	d.wbuf = append(d.wbuf[:0], p...)
	if d.peerPort != 0 {
		putPorts(d.wbuf, d.localPort, d.peerPort)
	}
	if init {
		limitInboundStreams(d.wbuf, d.maxStreams)
	}
	setChecksum(d.wbuf)
	return d.write(p, d.wbuf)
}

// write sends pkt, pion's packet p as it goes on the wire.
func (d *dialConn) write(p, pkt []byte) (int, error) {
	if err := d.bundle.write(d.sack.outgoing(pkt)); err != nil {
		return 0, err
	}
	return len(p), nil
}

func putPorts(pkt []byte, src, dst uint16) {
	pkt[0], pkt[1] = byte(src>>8), byte(src)
	pkt[2], pkt[3] = byte(dst>>8), byte(dst)
}
