package multicast

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"

	"github.com/go-rserpool/rserpool/transport"
)

// Default groups. IANA assigns no multicast group to ASAP or ENRP; these
// are RSPLIB 3.4.4's defaults. Programs take the group from their
// configuration and fall back to these.
var (
	// DefaultASAPGroup is where registrars send ASAP_SERVER_ANNOUNCE and
	// pool elements and pool users listen (RSPLIB 3.4.4's default).
	DefaultASAPGroup = netip.AddrPortFrom(netip.AddrFrom4([4]byte{239, 0, 0, 50}), transport.PortASAP)
	// DefaultENRPGroup is where registrars send and receive multicast
	// ENRP_PRESENCE (RSPLIB 3.4.4's default).
	DefaultENRPGroup = netip.AddrPortFrom(netip.AddrFrom4([4]byte{239, 0, 0, 51}), transport.PortENRP)
)

// MaxDatagramSize is the largest datagram Send accepts: the largest UDP
// payload over IPv4 (65535 - 20 - 8). The same limit applies to IPv6.
const MaxDatagramSize = 65507

// recvBufferSize holds the largest UDP payload over IPv6 without jumbograms
// (65535 - 8), so Recv never truncates a datagram.
const recvBufferSize = 65527

// DefaultTTL is the IPv4 TTL and IPv6 hop limit used when Config.TTL is 0:
// announcements stay on the link they are sent on.
const DefaultTTL = 1

// Errors returned by Listen. They are wrapped with detail; test with
// errors.Is.
var (
	// ErrNoInterface means Config.Interface is nil: the interface must
	// always be chosen explicitly.
	ErrNoInterface = errors.New("multicast: no interface given")
	// ErrNotMulticast means Config.Group is not a multicast address.
	ErrNotMulticast = errors.New("multicast: group is not a multicast address")
	// ErrJoin means the socket could not join the group on the interface,
	// or could not be set up to send on it. (On Linux an IPv6 group on lo
	// joins without error; it is Send that fails there, with
	// syscall.ENETUNREACH: see the package documentation.)
	ErrJoin = errors.New("multicast: cannot join group")
)

// Config says which group an Announcer joins and how it sends.
type Config struct {
	// Group is the multicast group and UDP port, IPv4 or IPv6. A zero
	// port binds a free port, which Announcer.Group reports; other
	// Announcers then use that port. The zone of an IPv6 group is
	// ignored: the interface gives it.
	Group netip.AddrPort
	// Interface is the interface to join the group on and to send from.
	// Required. LoopbackInterface returns the loopback interface.
	Interface *net.Interface
	// TTL is the IPv4 time to live or IPv6 hop limit of sent datagrams,
	// 1 to 255. Zero means DefaultTTL.
	TTL int
	// Loopback delivers datagrams this host sends to the group back to
	// the host's own members of the group, including this Announcer
	// (IP_MULTICAST_LOOP / IPV6_MULTICAST_LOOP). Set it when senders and
	// receivers share a host, as in tests. On the loopback interface
	// itself Linux delivers datagrams to the host's members whatever this
	// says, since lo hands every packet it sends back to the host.
	Loopback bool
}

// Announcer is a UDP socket joined to one multicast group on one interface.
// It implements transport.Announcer. Its methods are safe for concurrent
// use.
type Announcer struct {
	conn  *net.UDPConn
	p4    *ipv4.PacketConn // exactly one of p4 and p6 is set
	p6    *ipv6.PacketConn
	group netip.AddrPort
	dst   *net.UDPAddr
	ifi   *net.Interface

	rsem   chan struct{} // one Recv reads at a time; holds buf
	buf    []byte
	wmu    sync.Mutex // serialises write deadlines
	closed chan struct{}
	once   sync.Once
}

var _ transport.Announcer = (*Announcer)(nil)

// Listen opens a UDP socket bound to cfg.Group, joins the group on
// cfg.Interface, and sets the outgoing interface, TTL or hop limit, and
// loopback. The context bounds the setup only.
func Listen(ctx context.Context, cfg Config) (*Announcer, error) {
	if cfg.Interface == nil {
		return nil, ErrNoInterface
	}
	ga := cfg.Group.Addr().Unmap()
	if !ga.IsValid() || !ga.IsMulticast() {
		return nil, fmt.Errorf("%w: %v", ErrNotMulticast, cfg.Group)
	}
	ttl := cfg.TTL
	if ttl == 0 {
		ttl = DefaultTTL
	}
	if ttl < 1 || ttl > 255 {
		return nil, fmt.Errorf("multicast: TTL %d out of range 1..255", ttl)
	}
	ifi := cfg.Interface
	network := "udp4"
	bind := &net.UDPAddr{IP: ga.AsSlice(), Port: int(cfg.Group.Port())}
	if ga.Is6() {
		network = "udp6"
		ga = ga.WithZone("")
		if needsZone(ga) {
			bind.Zone = ifi.Name
		}
	}
	lc := net.ListenConfig{Control: reuseAddr}
	pc, err := lc.ListenPacket(ctx, network, bind.String())
	if err != nil {
		return nil, fmt.Errorf("multicast: bind %v: %w", bind, err)
	}
	conn := pc.(*net.UDPConn)
	port := uint16(conn.LocalAddr().(*net.UDPAddr).Port)
	dst := &net.UDPAddr{IP: ga.AsSlice(), Port: int(port), Zone: bind.Zone}
	grp := &net.UDPAddr{IP: ga.AsSlice()}

	a := &Announcer{
		conn:   conn,
		group:  netip.AddrPortFrom(ga, port),
		dst:    dst,
		ifi:    ifi,
		rsem:   make(chan struct{}, 1),
		buf:    make([]byte, recvBufferSize),
		closed: make(chan struct{}),
	}
	if ga.Is4() {
		p := ipv4.NewPacketConn(conn)
		a.p4 = p
		err = errors.Join(
			wrap("join", p.JoinGroup(ifi, grp)),
			wrap("set interface", p.SetMulticastInterface(ifi)),
			wrap("set source", setSource4(conn, ifi)),
			wrap("set TTL", p.SetMulticastTTL(ttl)),
			wrap("set loopback", p.SetMulticastLoopback(cfg.Loopback)),
			wrap("set control message", p.SetControlMessage(ipv4.FlagDst, true)),
		)
	} else {
		p := ipv6.NewPacketConn(conn)
		a.p6 = p
		err = errors.Join(
			wrap("join", p.JoinGroup(ifi, grp)),
			wrap("set interface", p.SetMulticastInterface(ifi)),
			wrap("set hop limit", p.SetMulticastHopLimit(ttl)),
			wrap("set loopback", p.SetMulticastLoopback(cfg.Loopback)),
			wrap("set control message", p.SetControlMessage(ipv6.FlagDst, true)),
		)
	}
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("%w %v on %s: %w", ErrJoin, ga, ifi.Name, err)
	}
	return a, nil
}

// setSource4 selects the interface again by its first IPv4 address, which
// then becomes the source address of what is sent: 127.0.0.1 on lo. An
// interface without IPv4 address keeps the selection by index.
func setSource4(conn *net.UDPConn, ifi *net.Interface) error {
	addrs, err := ifi.Addrs()
	if err != nil {
		return err
	}
	for _, ifa := range addrs {
		ipn, ok := ifa.(*net.IPNet)
		if !ok {
			continue
		}
		if ip4 := ipn.IP.To4(); ip4 != nil {
			rc, err := conn.SyscallConn()
			if err != nil {
				return err
			}
			return setMulticastIfAddr(rc, [4]byte(ip4))
		}
	}
	return nil
}

func wrap(what string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s: %w", what, err)
}

// needsZone reports whether an IPv6 multicast group is interface-local or
// link-local, so that binding and sending need the interface as zone.
func needsZone(a netip.Addr) bool {
	return a.IsInterfaceLocalMulticast() || a.IsLinkLocalMulticast()
}

// Group returns the group and the port the Announcer is bound to (the
// chosen port when Config.Group had port 0).
func (a *Announcer) Group() netip.AddrPort { return a.group }

// Interface returns the interface the Announcer joined the group on.
func (a *Announcer) Interface() *net.Interface { return a.ifi }

// Send sends b as one datagram to the group. It fails with an error
// matching transport.ErrMessageTooLarge when len(b) > MaxDatagramSize, with
// transport.ErrClosed after Close, and with ctx.Err() when ctx is done.
// A deadline of ctx bounds the write.
func (a *Announcer) Send(ctx context.Context, b []byte) error {
	if len(b) > MaxDatagramSize {
		return fmt.Errorf("%w: %d bytes, limit %d", transport.ErrMessageTooLarge, len(b), MaxDatagramSize)
	}
	if a.isClosed() {
		return transport.ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	a.wmu.Lock()
	defer a.wmu.Unlock()
	d, _ := ctx.Deadline() // zero: no deadline
	if err := a.conn.SetWriteDeadline(d); err != nil {
		return a.mapErr(ctx, err)
	}
	_, err := a.conn.WriteToUDP(b, a.dst)
	return a.mapErr(ctx, err)
}

// Recv returns the next datagram received on the group and its source
// address (see fromKind). It blocks until a datagram arrives, ctx is
// done (it then returns ctx.Err()), or the Announcer is closed (it then
// returns transport.ErrClosed). The returned slice is the caller's.
func (a *Announcer) Recv(ctx context.Context) ([]byte, transport.Addr, error) {
	if err := ctx.Err(); err != nil {
		return nil, transport.Addr{}, err
	}
	select {
	case a.rsem <- struct{}{}:
	case <-ctx.Done():
		return nil, transport.Addr{}, ctx.Err()
	case <-a.closed:
		return nil, transport.Addr{}, transport.ErrClosed
	}
	defer func() { <-a.rsem }()

	fired := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		defer close(fired)
		a.conn.SetReadDeadline(time.Unix(1, 0)) // wakes the read below
	})
	defer func() {
		if !stop() {
			// The deadline was set in the past: wait until it is,
			// then clear it for the next Recv.
			<-fired
			a.conn.SetReadDeadline(time.Time{})
		}
	}()

	for {
		n, src, dst, err := a.readFrom()
		if err != nil {
			return nil, transport.Addr{}, a.mapErr(ctx, err)
		}
		// The socket is bound to the wildcard address (Go binds a
		// multicast listener that way), so it also gets unicast
		// datagrams for the port and, on Linux, datagrams of other
		// groups joined on the host. Keep only the group's.
		if dst.IsValid() && dst.Unmap().WithZone("") != a.group.Addr() {
			continue
		}
		b := make([]byte, n)
		copy(b, a.buf[:n])
		return b, transport.Addr{Kind: fromKind, AddrPort: src}, nil
	}
}

// readFrom reads one datagram into a.buf and returns its length, source
// and destination address (invalid when the system reports none).
func (a *Announcer) readFrom() (int, netip.AddrPort, netip.Addr, error) {
	var (
		n   int
		src net.Addr
		dst net.IP
		err error
	)
	if a.p4 != nil {
		var cm *ipv4.ControlMessage
		n, cm, src, err = a.p4.ReadFrom(a.buf)
		if cm != nil {
			dst = cm.Dst
		}
	} else {
		var cm *ipv6.ControlMessage
		n, cm, src, err = a.p6.ReadFrom(a.buf)
		if cm != nil {
			dst = cm.Dst
		}
	}
	if err != nil {
		return 0, netip.AddrPort{}, netip.Addr{}, err
	}
	var from netip.AddrPort
	if u, ok := src.(*net.UDPAddr); ok {
		ap := u.AddrPort()
		from = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	d, _ := netip.AddrFromSlice(dst)
	return n, from, d, nil
}

// mapErr turns socket errors caused by ctx or Close into ctx.Err() and
// transport.ErrClosed.
func (a *Announcer) mapErr(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	if a.isClosed() || errors.Is(err, net.ErrClosed) {
		return transport.ErrClosed
	}
	if cerr := ctx.Err(); cerr != nil {
		return cerr
	}
	return fmt.Errorf("multicast: %w", err)
}

func (a *Announcer) isClosed() bool {
	select {
	case <-a.closed:
		return true
	default:
		return false
	}
}

// Close leaves the group and closes the socket. It unblocks a Recv in
// progress, which returns transport.ErrClosed. Calling Close again returns
// nil.
func (a *Announcer) Close() error {
	var err error
	a.once.Do(func() {
		close(a.closed)
		err = a.conn.Close()
	})
	return err
}

// LoopbackInterface returns the first interface that is up and has the
// loopback flag (lo on Linux, lo0 on BSDs). Whether it can carry multicast
// is up to the system: on Linux lo carries IPv4 multicast, with or without
// the MULTICAST flag, and no IPv6 multicast (see the package
// documentation).
func LoopbackInterface() (*net.Interface, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil, fmt.Errorf("multicast: list interfaces: %w", err)
	}
	for i := range ifs {
		if ifs[i].Flags&net.FlagLoopback != 0 && ifs[i].Flags&net.FlagUp != 0 {
			return &ifs[i], nil
		}
	}
	return nil, errors.New("multicast: no loopback interface is up")
}
