package sctp

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/transport/v5/deadline"

	pionsctp "github.com/pion/sctp"

	"github.com/go-rserpool/rserpool/transport"
)

// inQueueLen is how many datagrams wait for one association's pion read
// loop before the listener drops more (SCTP retransmits them).
const inQueueLen = 256

// demuxKey names one association on a listener's socket: the peer's UDP
// address and the SCTP port pair of the common header (RFC 6951 §5.4).
type demuxKey struct {
	peer      netip.AddrPort
	peerPort  uint16 // SCTP source port of the peer's packets
	localPort uint16 // SCTP destination port of the peer's packets
}

// source is what one peer IP address holds on a listener.
type source struct {
	assocs  int        // entries in Listener.assocs from this address
	pending []*pktConn // their handshakes in progress, oldest first
}

// Listener accepts associations on one UDP socket that serves every peer.
// It implements [transport.Listener].
//
// It bounds what peers can make it hold: [Config.Backlog] handshakes and
// established associations not yet accepted, [Config.MaxAssociations]
// associations in all and [Config.MaxAssociationsPerAddr] per peer
// address (INITs beyond these two are refused with an "Out of Resource"
// ABORT), and [Config.MaxHandshakesPerAddr] handshakes in progress per
// peer address (INITs beyond it are dropped). A full backlog evicts a
// handshake still waiting for its COOKIE ECHO, from the address with the
// most handshakes, so that one flooding source cannot lock others out; a
// handshake with no COOKIE ECHO after [Config.CookieEchoTimeout] is
// dropped.
//
// Over DTLS ([Config.DTLS]) the same limits apply with the ClientHello in
// the INIT's place and the echo of the HelloVerifyRequest cookie in the
// COOKIE ECHO's; see the package documentation.
type Listener struct {
	cfg  *Config
	sec  *dtlsSetup // nil without DTLS
	pc   *net.UDPConn
	addr transport.Addr

	acceptCh chan *Conn
	done     chan struct{} // closed by Close
	readDone chan struct{} // the socket reader returned
	readErr  error         // why it returned; set before readDone is closed

	mu         sync.Mutex
	assocs     map[demuxKey]*pktConn
	byPeer     map[netip.AddrPort]*pktConn // over DTLS: who takes a peer's records without our connection ID
	sources    map[netip.Addr]*source      // peer IP addresses with associations
	handshakes int                         // associations in their handshake
	queued     int                         // established, not yet returned by Accept
	conns      map[*Conn]struct{}          // established and not yet closed
	wg         sync.WaitGroup              // handshake goroutines

	closeOnce  sync.Once
	sockClosed bool // under mu

	initsTurnedAway atomic.Int64 // INITs dropped or refused by a limit
}

// Listen opens a UDP socket at at (Kind [transport.KindSCTPUDP]) and accepts
// SCTP associations on it, with any SCTP port pair. Port 0 picks a free
// port; use [DefaultPort] (9899) for kernel SCTP peers to reach the
// listener. Ports 3863 and 9901 fail with [ErrReservedPort].
//
// With [Config.DTLS] the listener accepts SCTP over DTLS only (see the
// package documentation): it needs a certificate in
// [DTLSConfig.Certificates], and fails with [ErrDTLSConfig] without one or
// when [Config.Validate] refused the configuration.
func (t *Transport) Listen(at transport.Addr) (transport.Listener, error) {
	if t.cfgErr != nil {
		return nil, t.cfgErr
	}
	if t.dtls != nil && len(t.dtls.cfg.Certificates) == 0 {
		return nil, fmt.Errorf("%w: a listener needs a certificate", ErrDTLSConfig)
	}
	if at.Kind != transport.KindSCTPUDP || !at.AddrPort.Addr().IsValid() {
		return nil, fmt.Errorf("%w: %v kind %d", ErrUnsupportedAddr, at.AddrPort, at.Kind)
	}
	if err := checkPort(at.AddrPort.Port()); err != nil {
		return nil, err
	}
	pc, err := net.ListenUDP(udpNetwork(at.AddrPort.Addr()), net.UDPAddrFromAddrPort(at.AddrPort))
	if err != nil {
		return nil, err
	}
	l := &Listener{
		cfg:      &t.cfg,
		sec:      t.dtls,
		pc:       pc,
		addr:     transport.Addr{Kind: transport.KindSCTPUDP, AddrPort: pc.LocalAddr().(*net.UDPAddr).AddrPort()},
		acceptCh: make(chan *Conn, t.cfg.Backlog),
		done:     make(chan struct{}),
		readDone: make(chan struct{}),
		assocs:   make(map[demuxKey]*pktConn),
		byPeer:   make(map[netip.AddrPort]*pktConn),
		sources:  make(map[netip.Addr]*source),
		conns:    make(map[*Conn]struct{}),
	}
	go l.readLoop()
	return l, nil
}

// Addr returns the listener's UDP address.
func (l *Listener) Addr() transport.Addr { return l.addr }

// Accept returns the next established association.
func (l *Listener) Accept(ctx context.Context) (transport.Conn, error) {
	select {
	case c := <-l.acceptCh:
		return l.accepted(c)
	case <-l.done:
		return nil, transport.ErrClosed
	case <-l.readDone:
		select {
		case <-l.done:
			return nil, transport.ErrClosed
		default:
			return nil, l.readErr
		}
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (l *Listener) accepted(c *Conn) (transport.Conn, error) {
	l.mu.Lock()
	l.queued--
	l.mu.Unlock()
	return c, nil
}

// Close stops accepting: a waiting Accept returns [transport.ErrClosed],
// associations still in their handshake or not yet accepted are aborted,
// and INITs are no longer answered. Associations already accepted stay
// open; they share the listener's UDP socket, which is closed, and its
// reader goroutine stopped, when the last of them closes. Close returns
// when the listener's own goroutines have stopped.
func (l *Listener) Close() error {
	l.closeOnce.Do(func() {
		l.mu.Lock()
		close(l.done)
		var pending []*pktConn
		for _, p := range l.assocs {
			if !p.established.Load() {
				pending = append(pending, p)
			}
		}
		l.mu.Unlock()
		for _, p := range pending {
			_ = p.Close()
		}
		l.wg.Wait() // every handshake goroutine has queued its Conn or given up
		for {
			select {
			case c := <-l.acceptCh:
				l.mu.Lock()
				l.queued--
				l.mu.Unlock()
				c.abort()
				continue
			default:
			}
			break
		}
		l.release()
	})
	return nil
}

// release closes the socket once the listener is closed and no association
// uses it any more, and waits for the reader goroutine.
func (l *Listener) release() {
	l.mu.Lock()
	closeNow := false
	select {
	case <-l.done:
		closeNow = len(l.conns) == 0 && !l.sockClosed
	default:
	}
	if closeNow {
		l.sockClosed = true
	}
	l.mu.Unlock()
	if closeNow {
		_ = l.pc.Close()
		<-l.readDone
	}
}

func (l *Listener) dispatch(pkt []byte, from netip.AddrPort) {
	if l.sec != nil {
		l.dispatchDTLS(pkt, from)
		return
	}
	typ, ok := firstChunkType(pkt)
	if !ok {
		return
	}
	key := demuxKey{
		peer:      from,
		peerPort:  binary.BigEndian.Uint16(pkt[0:]),
		localPort: binary.BigEndian.Uint16(pkt[2:]),
	}
	if key.peerPort == 0 || key.localPort == 0 {
		return // RFC 9260 §3.1: port 0 is never valid
	}
	if typ == chunkInit {
		var err error
		if pkt, _, err = RewriteInit(pkt); err != nil {
			return
		}
	}
	l.mu.Lock()
	p := l.assocs[key]
	l.mu.Unlock()
	if p == nil {
		if typ != chunkInit {
			if reply := ootbReply(pkt); reply != nil {
				_, _ = l.pc.WriteToUDPAddrPort(reply, from)
			}
			return
		}
		var refuse bool
		if p, refuse = l.newAssociation(key); p == nil {
			l.initsTurnedAway.Add(1)
			if refuse {
				if reply := refuseInit(pkt); reply != nil {
					_, _ = l.pc.WriteToUDPAddrPort(reply, from)
				}
			}
			return
		}
	}
	p.deliver(pkt)
}

// newAssociation registers a pending association for an INIT from key and
// starts its handshake. It returns nil when the listener is closed, when
// the INIT is to be dropped (the peer's address has MaxHandshakesPerAddr
// handshakes in progress, or the backlog is full of associations that
// cannot be evicted), and nil with refuse set when the INIT is to be
// refused with an "Out of Resource" ABORT (MaxAssociations or
// MaxAssociationsPerAddr reached).
func (l *Listener) newAssociation(key demuxKey) (p *pktConn, refuse bool) {
	var victim *pktConn
	defer func() {
		if victim != nil {
			_ = victim.Close() // outside l.mu: Close takes it
		}
	}()
	l.mu.Lock()
	defer l.mu.Unlock()
	select {
	case <-l.done:
		return nil, false
	default:
	}
	ip := key.peer.Addr()
	src := l.sources[ip]
	switch {
	case len(l.assocs) >= l.cfg.MaxAssociations:
		return nil, true
	case src != nil && src.assocs >= l.cfg.MaxAssociationsPerAddr:
		return nil, true
	case src != nil && len(src.pending) >= l.cfg.MaxHandshakesPerAddr && l.handshakes+l.queued >= l.cfg.Backlog/2:
		// Only under pressure: a burst of dials from one host that
		// finds the backlog mostly free is served without waiting for
		// its INIT retransmissions.
		return nil, false
	}
	if l.handshakes+l.queued >= l.cfg.Backlog {
		if victim = l.evictableLocked(); victim == nil {
			return nil, false
		}
		l.endHandshakeLocked(victim)
	}
	if src == nil {
		src = &source{}
		l.sources[ip] = src
	}
	if l.sec != nil {
		key = l.newCIDKeyLocked(key.peer)
	}
	p = &pktConn{
		l:       l,
		key:     key,
		remote:  net.UDPAddrFromAddrPort(key.peer),
		in:      make(chan []byte, inQueueLen),
		closed:  make(chan struct{}),
		rd:      deadline.New(),
		pending: true,
		mis:     uint16(l.cfg.MaxStreams),
		dtls:    l.sec != nil,
	}
	p.bundle = newSackBundler(l.cfg, p.send)
	l.assocs[key] = p
	if l.sec != nil {
		l.byPeer[key.peer] = p
	}
	src.assocs++
	src.pending = append(src.pending, p)
	l.handshakes++
	l.wg.Add(1)
	go l.handshake(p)
	return p, false
}

// evictableLocked picks the handshake to give up for a new one when the
// backlog is full: the oldest that has not received a COOKIE ECHO, from
// the address with the most handshakes in progress. A handshake that got
// its COOKIE ECHO completes within a round trip, and a genuine peer whose
// handshake is evicted before it retransmits its INIT (RFC 9260 §5.1).
func (l *Listener) evictableLocked() *pktConn {
	var victim *pktConn
	most := 0
	for _, src := range l.sources {
		if len(src.pending) <= most {
			continue
		}
		for _, p := range src.pending {
			if p.seen()&sawCookieEcho == 0 {
				victim, most = p, len(src.pending)
				break
			}
		}
	}
	return victim
}

// endHandshakeLocked takes p out of the handshakes in progress, once.
func (l *Listener) endHandshakeLocked(p *pktConn) {
	if !p.pending {
		return
	}
	p.pending = false
	l.handshakes--
	if src := l.sources[p.key.peer.Addr()]; src != nil {
		for i, q := range src.pending {
			if q == p {
				src.pending = append(src.pending[:i], src.pending[i+1:]...)
				break
			}
		}
	}
}

// handshake runs pion's server side of the four-way handshake for one
// association and queues the result for Accept.
func (l *Listener) handshake(p *pktConn) {
	defer l.wg.Done()
	if d := l.cfg.CookieEchoTimeout; d > 0 && (p.dtls || d < l.cfg.HandshakeTimeout) {
		cookie := time.AfterFunc(d, func() {
			if p.seen()&sawCookieEcho == 0 {
				_ = p.Close()
			}
		})
		defer cookie.Stop()
	}
	var nc net.Conn = p
	var wire wireObserver = p
	var id transport.Identity
	if p.dtls {
		remote := transport.Addr{Kind: transport.KindSCTPUDP, AddrPort: p.key.peer}
		dc, peer, err := l.sec.handshake(context.Background(), p, true, p.key.cid(), l.addr, remote)
		if err != nil {
			if f := l.sec.cfg.OnHandshakeFailure; f != nil && !l.closed() {
				f(err)
			}
			_ = p.Close()
			return
		}
		p.dtlsDone.Store(true)
		w := newSecureWire(dc, p.mis, l.cfg)
		nc, wire, id = w, w, peer
	}
	timer := time.AfterFunc(l.cfg.HandshakeTimeout, func() { _ = nc.Close() })
	assoc, err := pionsctp.Server(l.cfg.pionConfig(nc))
	if !timer.Stop() && err == nil {
		_ = assoc.Close()
		err = os.ErrDeadlineExceeded
	}
	if err == nil {
		l.mu.Lock()
		if p.pending {
			l.endHandshakeLocked(p)
			p.established.Store(true)
			l.queued++
		} else {
			err = net.ErrClosed // evicted just as it completed
		}
		l.mu.Unlock()
		if err != nil {
			assoc.Abort("")
			_ = assoc.Close()
		}
	}
	if err != nil {
		_ = nc.Close()
		_ = p.Close()
		return
	}
	remote := transport.Addr{Kind: transport.KindSCTPUDP, AddrPort: p.key.peer}
	c, err := newConn(assoc, wire, l.addr, remote, l.cfg, l.forget)
	if err != nil {
		_ = nc.Close()
		_ = p.Close()
		l.mu.Lock()
		l.queued--
		l.mu.Unlock()
		return
	}
	c.peer, c.secured = id, p.dtls
	l.mu.Lock()
	l.conns[c] = struct{}{}
	l.mu.Unlock()
	select {
	case <-l.done:
		// Close drains what sits in acceptCh; this one was not queued.
		l.mu.Lock()
		l.queued--
		l.mu.Unlock()
		c.abort()
	case l.acceptCh <- c:
	}
}

// forget drops a closed association from the listener's books.
func (l *Listener) forget(c *Conn) {
	l.mu.Lock()
	delete(l.conns, c)
	l.mu.Unlock()
	l.release()
}

// remove drops p, whose association is over, from the listener's books.
func (l *Listener) remove(p *pktConn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.endHandshakeLocked(p)
	if l.byPeer[p.key.peer] == p {
		delete(l.byPeer, p.key.peer)
	}
	if l.assocs[p.key] != p {
		return
	}
	delete(l.assocs, p.key)
	if p.outbound {
		return // not counted per source
	}
	ip := p.key.peer.Addr()
	if src := l.sources[ip]; src != nil {
		if src.assocs--; src.assocs <= 0 {
			delete(l.sources, ip)
		}
	}
}

var _ transport.Listener = (*Listener)(nil)

// pktConn is the net.Conn that one association on a listener reads and
// writes: datagrams from the demultiplexer in, the shared socket out.
type pktConn struct {
	l           *Listener
	key         demuxKey
	remote      *net.UDPAddr
	in          chan []byte
	closed      chan struct{}
	closeOnce   sync.Once
	rd          *deadline.Deadline
	flags       atomic.Uint32
	established atomic.Bool
	sack        sackPrompter
	live        liveness
	pending     bool        // in its handshake; under l.mu
	mis         uint16      // inbound streams to advertise in the INIT ACK (or INIT, outbound)
	outbound    bool        // dialled by DialFrom; its SCTP ports are translated
	dtls        bool        // carries DTLS records: secureWire above sees the SCTP packets
	dtlsDone    atomic.Bool // over DTLS: its DTLS handshake is done
	crossed     atomic.Bool // outbound over DTLS: given up for the peer's crossing dial
	wbuf        []byte      // outbound translation buffer; pion's single write loop writes
	bundle      *sackBundler
}

func (p *pktConn) send(pkt []byte) error {
	_, err := p.l.pc.WriteToUDPAddrPort(pkt, p.key.peer)
	return err
}

func (p *pktConn) seen() chunkFlags    { return chunkFlags(p.flags.Load()) }
func (p *pktConn) lastReceived() int64 { return p.live.lastReceived() }

func (p *pktConn) promptSack() {
	select {
	case <-p.closed:
		return
	default:
	}
	if pkt := p.sack.prompt(); pkt != nil {
		_, _ = p.l.pc.WriteToUDPAddrPort(pkt, p.key.peer)
	}
}

// pktBufSize is the size of the pooled buffers that carry datagrams from
// the listener's reader to an association; bigger datagrams (pion sends at
// most 1228 bytes) get a buffer of their own.
const pktBufSize = 2048

var pktBufs = sync.Pool{New: func() any { return new([pktBufSize]byte) }}

// deliver queues a copy of pkt, dropping it if the association lags.
func (p *pktConn) deliver(pkt []byte) {
	if !p.dtls {
		if f := scanChunks(pkt); f != 0 {
			p.bundle.received(f)
			if f &^= sawImmediate; f != 0 {
				p.flags.Or(uint32(f))
			}
		}
		p.live.seen(pkt)
	}
	var b []byte
	if len(pkt) <= pktBufSize {
		b = pktBufs.Get().(*[pktBufSize]byte)[:len(pkt)]
	} else {
		b = make([]byte, len(pkt))
	}
	copy(b, pkt)
	select {
	case p.in <- b:
	default:
		putPktBuf(b)
	}
}

func putPktBuf(b []byte) {
	if cap(b) == pktBufSize {
		pktBufs.Put((*[pktBufSize]byte)(b[:pktBufSize]))
	}
}

func (p *pktConn) Read(b []byte) (int, error) {
	for {
		// A packet waiting is taken without the three-way select, which
		// locks all three channels.
		var pkt []byte
		select {
		case <-p.closed:
			return 0, net.ErrClosed
		default:
			select {
			case pkt = <-p.in:
			default:
			}
		}
		if pkt == nil {
			select {
			case pkt = <-p.in:
			case <-p.closed:
				return 0, net.ErrClosed
			case <-p.rd.Done():
				return 0, os.ErrDeadlineExceeded
			}
		}
		n := copy(b, pkt)
		putPktBuf(pkt)
		if p.outbound && !p.dtls && !p.translateIn(b[:n]) {
			continue
		}
		return n, nil
	}
}

func (p *pktConn) Write(b []byte) (int, error) {
	select {
	case <-p.closed:
		return 0, net.ErrClosed
	default:
	}
	if p.dtls {
		if !p.outbound && p.seen()&sawCookieEcho == 0 && isServerHello(b) {
			// The peer echoed our HelloVerifyRequest cookie: its
			// address is its own, and its handshake no longer one to
			// evict or to drop after CookieEchoTimeout.
			p.flags.Or(uint32(sawCookieEcho))
		}
		return p.l.pc.WriteToUDPAddrPort(b, p.key.peer)
	}
	if p.outbound {
		return p.writeOutbound(b)
	}
	if len(b) > commonHeaderSize && b[commonHeaderSize] == chunkInitAck {
		if _, mis, ok := initStreams(b); ok && mis > p.mis {
			b = append([]byte(nil), b...) // pion's buffer is its own
			limitInboundStreams(b, p.mis)
			setChecksum(b)
		}
	}
	if err := p.bundle.write(p.sack.outgoing(b)); err != nil {
		return 0, err
	}
	return len(b), nil
}

func (p *pktConn) Close() error {
	p.closeOnce.Do(func() {
		close(p.closed)
		p.bundle.close()
		p.l.remove(p)
	})
	return nil
}

func (p *pktConn) LocalAddr() net.Addr                { return p.l.pc.LocalAddr() }
func (p *pktConn) RemoteAddr() net.Addr               { return p.remote }
func (p *pktConn) SetDeadline(t time.Time) error      { p.rd.Set(t); return nil }
func (p *pktConn) SetReadDeadline(t time.Time) error  { p.rd.Set(t); return nil }
func (p *pktConn) SetWriteDeadline(_ time.Time) error { return nil } // UDP writes do not block for long
