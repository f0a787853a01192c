package sctp

import (
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/pion/dtls/v3"
	dtlsnet "github.com/pion/dtls/v3/pkg/net"
	pionsctp "github.com/pion/sctp"

	"github.com/go-rserpool/rserpool/transport"
)

// DefaultDTLSHandshakeTimeout bounds a DTLS handshake when
// [DTLSConfig.HandshakeTimeout] is zero: 10 s, as DefaultHandshakeTimeout
// for the SCTP handshake (pion/dtls retransmits a lost flight after 1 s,
// doubling, so two losses fit).
const DefaultDTLSHandshakeTimeout = 10 * time.Second

// ClientAuth says whether a listener asks dialling peers for a certificate
// and verifies it. The zero value is [ClientAuthRequire]: mutual
// authentication, as RFC 5355 §4 asks of every ASAP and ENRP association.
type ClientAuth uint8

const (
	// ClientAuthRequire: the peer must present a certificate that
	// verifies against [DTLSConfig.ClientCAs]. The default.
	ClientAuthRequire ClientAuth = iota
	// ClientAuthVerifyIfGiven: a peer may present no certificate (its Conn
	// then has no identity); one it presents must verify.
	ClientAuthVerifyIfGiven
	// ClientAuthNone: the listener asks for no certificate; its
	// associations are encrypted but their peers unauthenticated.
	ClientAuthNone
)

// DTLSConfig turns on SCTP over DTLS over UDP (RFC 8261) for a
// [Transport]: every association it dials or accepts runs a DTLS 1.2
// handshake (pion/dtls) on its UDP 5-tuple first, and the SCTP association
// runs inside it. Both ends must be configured alike: a plain SCTP peer and
// a DTLS peer cannot talk (the RFC 5354 transport parameter says SCTP either
// way, and the address Kind stays [transport.KindSCTPUDP]).
//
// Certificates are checked when the Transport is made ([Config.Validate],
// and Listen and Dial fail with [ErrDTLSConfig]): a certificate without a
// private key, whose key does not match it, or that is outside its validity
// period, is refused then rather than failing handshakes.
type DTLSConfig struct {
	// Certificates is this side's certificate chain and private key, leaf
	// first (crypto/tls's form; pion/dtls takes ECDSA, Ed25519 and RSA
	// keys). A listener needs one; a dialer without one is refused by a
	// listener that requires client certificates (the default). The first
	// is used.
	Certificates []tls.Certificate
	// RootCAs verifies the certificates of the listeners this side dials.
	// It is required: [Config.Validate] refuses a nil RootCAs unless
	// SystemRoots is set (a pool is private: the host's root CAs would
	// let any publicly trusted certificate in, RFC 5355 §4).
	RootCAs *x509.CertPool
	// ClientCAs verifies the certificates of the peers a listener accepts.
	// If nil, RootCAs is used (one private CA for a whole pool is the
	// common case).
	ClientCAs *x509.CertPool
	// SystemRoots, if set, allows RootCAs (and ClientCAs) to be nil: the
	// host's root CAs then verify the peers, so any publicly trusted
	// certificate authenticates. The default, false, refuses a nil
	// RootCAs in [Config.Validate] (fail closed); it is for pools whose
	// members carry certificates of a public CA, together with
	// [DTLSConfig.VerifyPeer] or name policies above. It has no effect
	// on a non-nil RootCAs or ClientCAs.
	SystemRoots bool
	// ClientAuth is the listener's policy for dialling peers'
	// certificates. The zero value, [ClientAuthRequire], is mutual
	// authentication.
	ClientAuth ClientAuth
	// ServerName, if set, is the DNS name a listener's certificate must
	// carry for Dial to accept it (besides verifying against RootCAs). If
	// empty, any certificate that verifies is accepted: RSerPool peers are
	// named by IP addresses (from a static list or an announce), and which
	// peer may do what is for VerifyPeer or the authorization above (a
	// PU's or PE's one Transport dials PEs and registrars alike, so they
	// check the registrar's name with asap's AuthorizeRegistrar instead).
	ServerName string
	// VerifyPeer, if set, is called on both sides with the peer's
	// verified identity once its chain verified; an error refuses the
	// peer (the handshake fails with a bad-certificate alert).
	VerifyPeer func(transport.Identity) error
	// CipherSuites are the DTLS cipher suites offered and accepted, most
	// preferred first. If nil, DefaultCipherSuites is used.
	CipherSuites []dtls.CipherSuiteID
	// HandshakeTimeout bounds the DTLS handshake of one association (on
	// a listener from its first ClientHello; Dial is bounded by its ctx
	// as well). The SCTP handshake that follows is bounded by
	// [Config.HandshakeTimeout] as without DTLS. If zero,
	// DefaultDTLSHandshakeTimeout is used; a negative value is refused
	// by [Config.Validate].
	HandshakeTimeout time.Duration
	// OnHandshakeFailure, if set, is called with the [*HandshakeError] of
	// every DTLS handshake a listener started and that failed (a dialler's
	// failures are Dial's error), for logging. It must not block.
	OnHandshakeFailure func(error)
}

// DefaultCipherSuites are the DTLS cipher suites of a [DTLSConfig] without
// CipherSuites: the ECDHE suites with AEAD ciphers that pion/dtls offers by
// default (its CBC suites left out), ECDSA certificates first.
var DefaultCipherSuites = []dtls.CipherSuiteID{
	dtls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	dtls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	dtls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	dtls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	dtls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	dtls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}

// ErrDTLSConfig is returned, wrapped with the detail, by [Config.Validate],
// and by Listen and Dial of a Transport whose [DTLSConfig] is invalid.
var ErrDTLSConfig = errors.New("sctp: invalid DTLS configuration")

// ErrNoRootCAs is wrapped (with [ErrDTLSConfig]) by [Config.Validate]'s
// error for a [DTLSConfig] with nil RootCAs and SystemRoots false: DTLS
// without the pool's own CA would trust the host's root CAs, which fails
// open for a private pool. Set RootCAs (and ClientCAs if the peers a
// listener accepts come from another CA), or SystemRoots to mean the
// host's roots.
var ErrNoRootCAs = errors.New("no RootCAs: set the pool's CA, or SystemRoots to trust the host's root CAs")

// ErrHandshake is matched (errors.Is) by every [*HandshakeError].
var ErrHandshake = errors.New("sctp: DTLS handshake failed")

// Side says which end of an association refused its handshake.
type Side uint8

const (
	SideNone  Side = iota // nobody refused: the handshake timed out or the network failed
	SideLocal             // this side refused the peer (for example its certificate did not verify)
	SidePeer              // the peer refused us: it sent a fatal alert
)

func (s Side) String() string {
	switch s {
	case SideLocal:
		return "local side"
	case SidePeer:
		return "peer"
	}
	return "neither side"
}

// HandshakeError is a failed DTLS handshake. It matches [ErrHandshake] and
// [transport.ErrAssociationLost] with errors.Is, and wraps the cause:
// pion/dtls's alert when the peer refused, the certificate verification
// error when we did, ctx's error on a timeout.
type HandshakeError struct {
	// Local and Remote are the association's UDP addresses.
	Local, Remote transport.Addr
	// Server is true when this side was the DTLS server (a listener).
	Server bool
	// RefusedBy says who refused.
	RefusedBy Side
	// Alert is the fatal alert the peer sent, as pion/dtls names it
	// ("Fatal BadCertificate"), when RefusedBy is SidePeer.
	Alert string
	// Err is the cause.
	Err error
}

func (e *HandshakeError) Error() string {
	role := "dialling"
	if e.Server {
		role = "accepting"
	}
	switch e.RefusedBy {
	case SidePeer:
		return fmt.Sprintf("sctp: DTLS handshake %s %v: refused by the peer (%s)", role, e.Remote, e.Alert)
	case SideLocal:
		return fmt.Sprintf("sctp: DTLS handshake %s %v: we refused the peer: %v", role, e.Remote, e.Err)
	}
	return fmt.Sprintf("sctp: DTLS handshake %s %v failed: %v", role, e.Remote, e.Err)
}

func (e *HandshakeError) Unwrap() []error {
	return []error{ErrHandshake, transport.ErrAssociationLost, e.Err}
}

// Validate checks c's DTLS configuration, if any: every certificate has a
// private key that matches it and is within its validity period,
// ClientAuth is known, and RootCAs is set (or SystemRoots says to use the
// host's root CAs; see [ErrNoRootCAs]). New keeps the result, and Listen
// and Dial return it. It returns nil when DTLS is off.
func (c Config) Validate() error {
	d := c.DTLS
	if d == nil {
		return nil
	}
	if d.RootCAs == nil && !d.SystemRoots {
		return fmt.Errorf("%w: %w", ErrDTLSConfig, ErrNoRootCAs)
	}
	if d.ClientAuth > ClientAuthNone {
		return fmt.Errorf("%w: unknown ClientAuth %d", ErrDTLSConfig, d.ClientAuth)
	}
	if d.HandshakeTimeout < 0 {
		return fmt.Errorf("%w: negative HandshakeTimeout", ErrDTLSConfig)
	}
	now := time.Now()
	for i, cert := range d.Certificates {
		if err := checkCertificate(cert, now); err != nil {
			return fmt.Errorf("%w: certificate %d: %w", ErrDTLSConfig, i, err)
		}
	}
	return nil
}

// checkCertificate reports why cert cannot be used at now, or nil.
func checkCertificate(cert tls.Certificate, now time.Time) error {
	if len(cert.Certificate) == 0 {
		return errors.New("no certificate")
	}
	if cert.PrivateKey == nil {
		return errors.New("no private key")
	}
	leaf := cert.Leaf
	if leaf == nil {
		var err error
		if leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return err
		}
	}
	signer, ok := cert.PrivateKey.(crypto.Signer)
	if !ok {
		return fmt.Errorf("private key of type %T cannot sign", cert.PrivateKey)
	}
	pub, ok := signer.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(leaf.PublicKey) {
		return fmt.Errorf("private key does not match the certificate of %q", leaf.Subject.CommonName)
	}
	switch {
	case now.Before(leaf.NotBefore):
		return fmt.Errorf("certificate of %q not valid before %v", leaf.Subject.CommonName, leaf.NotBefore)
	case now.After(leaf.NotAfter):
		return fmt.Errorf("certificate of %q expired at %v", leaf.Subject.CommonName, leaf.NotAfter)
	}
	return nil
}

// dtlsSetup is a Transport's DTLS configuration in pion/dtls's form.
type dtlsSetup struct {
	cfg     *DTLSConfig
	client  dtls.Config
	server  dtls.Config
	timeout time.Duration
}

func newDTLSSetup(c *Config) *dtlsSetup {
	d := new(DTLSConfig)
	*d = *c.DTLS // as it was when New was called
	suites := d.CipherSuites
	if suites == nil {
		suites = DefaultCipherSuites
	}
	base := dtls.Config{
		Certificates:         d.Certificates,
		CipherSuites:         suites,
		ExtendedMasterSecret: dtls.RequireExtendedMasterSecret,
		LoggerFactory:        c.LoggerFactory,
		// MTU stays pion/dtls's 1200 bytes, what it fragments handshake
		// flights to; a record carries one SCTP packet (pion/sctp sends at
		// most 1228 bytes) whatever the MTU.
	}
	s := &dtlsSetup{cfg: d, client: base, server: base, timeout: d.HandshakeTimeout}
	if s.timeout == 0 {
		s.timeout = DefaultDTLSHandshakeTimeout
	}
	s.client.RootCAs = d.RootCAs
	// A dialler presents its certificate whatever CA names the listener's
	// CertificateRequest lists (pion/dtls would otherwise send none for a
	// chain outside them), so a listener that does not trust it refuses
	// it as "unknown authority" rather than "no certificate": the log
	// then names the real cause.
	s.client.GetClientCertificate = func(*dtls.CertificateRequestInfo) (*tls.Certificate, error) {
		if len(d.Certificates) == 0 {
			return &tls.Certificate{}, nil
		}
		return &d.Certificates[0], nil
	}
	s.client.ServerName = d.ServerName
	s.server.ClientCAs = d.ClientCAs
	if s.server.ClientCAs == nil {
		s.server.ClientCAs = d.RootCAs
	}
	switch d.ClientAuth {
	case ClientAuthRequire:
		s.server.ClientAuth = dtls.RequireAndVerifyClientCert
	case ClientAuthVerifyIfGiven:
		s.server.ClientAuth = dtls.VerifyClientCertIfGiven
	default:
		s.server.ClientAuth = dtls.NoClientCert
	}
	return s
}

// handshake runs the DTLS handshake over nc (a connected UDP socket, or a
// listener's per-peer pktConn) as client or server, within s.timeout and
// ctx. It returns the DTLS connection and the peer's verified identity
// (zero when the peer presented no certificate).
func (s *dtlsSetup) handshake(ctx context.Context, nc net.Conn, server bool, cid []byte, local, remote transport.Addr) (*dtls.Conn, transport.Identity, error) {
	var id transport.Identity
	cfg := s.client
	if server {
		cfg = s.server
	}
	// The peer sends cid in its records (RFC 9146); an empty one asks for
	// none but lets the peer ask for its own.
	cfg.ConnectionIDGenerator = func() []byte { return append([]byte{}, cid...) }
	cfg.VerifyPeerCertificate = func(_ [][]byte, chains [][]*x509.Certificate) error {
		if len(chains) == 0 || len(chains[0]) == 0 {
			return nil // no certificate, and ClientAuth allowed that
		}
		id = identityOf(chains[0])
		if s.cfg.VerifyPeer != nil {
			return s.cfg.VerifyPeer(id)
		}
		return nil
	}
	fail := func(err error) error {
		return handshakeError(err, server, local, remote)
	}
	pc := dtlsnet.PacketConnFromConn(nc)
	var dc *dtls.Conn
	var err error
	if server {
		dc, err = dtls.Server(pc, nc.RemoteAddr(), &cfg)
	} else {
		dc, err = dtls.Client(pc, nc.RemoteAddr(), &cfg)
	}
	if err != nil {
		_ = nc.Close()
		return nil, id, fail(err)
	}
	hctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	if err := dc.HandshakeContext(hctx); err != nil {
		_ = dc.Close()
		_ = nc.Close()
		if ctx.Err() != nil {
			return nil, id, ctx.Err()
		}
		return nil, id, fail(err)
	}
	return dc, id, nil
}

// handshakeError classifies a failed handshake: a fatal alert from the peer
// is the peer's refusal; a timeout or network error is nobody's; anything
// else is pion/dtls refusing the peer on our side.
func handshakeError(err error, server bool, local, remote transport.Addr) *HandshakeError {
	e := &HandshakeError{Local: local, Remote: remote, Server: server, Err: err}
	var alert interface{ IsFatalOrCloseNotify() bool }
	var ne net.Error
	switch {
	case errors.As(err, &alert):
		e.RefusedBy = SidePeer
		e.Alert = alertName(alert.(error))
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled),
		errors.Is(err, net.ErrClosed), errors.As(err, &ne) && ne.Timeout():
	default:
		e.RefusedBy = SideLocal
	}
	return e
}

// alertName is pion/dtls's name of an alert error: its message without the
// "alert: " prefix.
func alertName(err error) string {
	s := err.Error()
	if len(s) > 7 && s[:7] == "alert: " {
		return s[7:]
	}
	return s
}

// identityOf is the identity of a verified chain: the leaf's first DNS SAN
// names it, else its subject common name.
func identityOf(chain []*x509.Certificate) transport.Identity {
	id := transport.Identity{Certificates: chain}
	leaf := chain[0]
	if len(leaf.DNSNames) > 0 {
		id.Name = leaf.DNSNames[0]
	} else {
		id.Name = leaf.Subject.CommonName
	}
	return id
}

// secureWire is the net.Conn under an association over DTLS: the DTLS
// connection, whose records each carry one SCTP packet (RFC 8261 §4), seen
// as dialConn and pktConn see plain packets: it notes the closing chunks
// and the liveness of the peer, advertises [Config.MaxStreams] in the INIT
// or INIT ACK we send, and asks for a prompt SACK on shutdown. SCTP ports
// are pion's 5000 on both ends: the DTLS connection names the association.
type secureWire struct {
	*dtls.Conn
	mis     uint16
	flags   atomic.Uint32
	packets atomic.Uint64 // SCTP packets the DTLS connection passed up
	wbuf    []byte        // pion's single write loop writes
	sack    sackPrompter
	bundle  *sackBundler
	live    liveness
}

func newSecureWire(dc *dtls.Conn, mis uint16, cfg *Config) *secureWire {
	w := &secureWire{Conn: dc, mis: mis}
	w.bundle = newSackBundler(cfg, w.send)
	return w
}

func (w *secureWire) send(pkt []byte) error {
	_, err := w.Conn.Write(pkt)
	return err
}

// Close drops a SACK the bundler holds and closes the DTLS connection.
func (w *secureWire) Close() error {
	w.bundle.close()
	return w.Conn.Close()
}

func (w *secureWire) seen() chunkFlags    { return chunkFlags(w.flags.Load()) }
func (w *secureWire) lastReceived() int64 { return w.live.lastReceived() }

func (w *secureWire) promptSack() {
	if pkt := w.sack.prompt(); pkt != nil {
		_, _ = w.Conn.Write(pkt)
	}
}

func (w *secureWire) Read(p []byte) (int, error) {
	for {
		n, err := w.Conn.Read(p)
		if err != nil {
			return n, err
		}
		pkt := p[:n]
		if n < commonHeaderSize {
			continue
		}
		w.packets.Add(1)
		if f := scanChunks(pkt); f != 0 {
			w.bundle.received(f)
			if f &^= sawImmediate; f != 0 {
				w.flags.Or(uint32(f))
			}
		}
		w.live.seen(pkt)
		return n, nil
	}
}

func (w *secureWire) Write(p []byte) (int, error) {
	if len(p) > commonHeaderSize && (p[commonHeaderSize] == chunkInit || p[commonHeaderSize] == chunkInitAck) {
		if _, mis, ok := initStreams(p); ok && mis > w.mis {
			w.wbuf = append(w.wbuf[:0], p...)
			limitInboundStreams(w.wbuf, w.mis)
			setChecksum(w.wbuf)
			p = w.wbuf
		}
	}
	if err := w.bundle.write(w.sack.outgoing(p)); err != nil {
		return 0, err
	}
	return len(p), nil
}

// DTLS record layer (RFC 6347 §4.1, §4.2.2), as much as the listener reads
// of a datagram from a peer it has no association with.
const (
	dtlsRecordHeaderSize    = 13 // type, version, epoch, sequence number, length
	dtlsHandshakeHeaderSize = 12 // type, length, message_seq, fragment offset and length
	dtlsContentAlert        = 21
	dtlsContentHandshake    = 22
	dtlsClientHello         = 1
	dtlsServerHello         = 2
)

// isClientHello reports whether a datagram starts with a plaintext DTLS
// record (epoch 0) carrying the start of a ClientHello: the only datagram
// that opens an association on a DTLS listener.
func isClientHello(pkt []byte) bool {
	if len(pkt) < dtlsRecordHeaderSize+dtlsHandshakeHeaderSize || pkt[0] != dtlsContentHandshake {
		return false
	}
	if pkt[1] != 0xfe || binary.BigEndian.Uint16(pkt[3:]) != 0 { // DTLS version; epoch 0
		return false
	}
	return pkt[dtlsRecordHeaderSize] == dtlsClientHello &&
		int(binary.BigEndian.Uint16(pkt[11:]))+dtlsRecordHeaderSize <= len(pkt)
}

// isFirstClientHello reports whether a datagram starts with the first
// fragment of a ClientHello without a cookie: a DTLS client's first
// message of a handshake (RFC 6347 §4.2.1).
func isFirstClientHello(pkt []byte) bool {
	const body = dtlsRecordHeaderSize + dtlsHandshakeHeaderSize
	if !isClientHello(pkt) || pkt[body-6] != 0 || pkt[body-5] != 0 || pkt[body-4] != 0 { // fragment offset 0
		return false
	}
	sid := body + 2 + 32 // client_version, random
	if len(pkt) <= sid {
		return false
	}
	cookie := sid + 1 + int(pkt[sid])
	return len(pkt) > cookie && pkt[cookie] == 0
}

// isServerHello reports whether a datagram a DTLS server writes starts with
// its ServerHello: pion/dtls sends it once the client's ClientHello carried
// the cookie of our HelloVerifyRequest (RFC 6347 §4.2.1), so the peer's
// address is its own.
func isServerHello(pkt []byte) bool {
	return len(pkt) > dtlsRecordHeaderSize && pkt[0] == dtlsContentHandshake &&
		binary.BigEndian.Uint16(pkt[3:]) == 0 && pkt[dtlsRecordHeaderSize] == dtlsServerHello
}

// dialDTLS runs the DTLS handshake and then the SCTP association over the
// connected socket uc, for Dial.
func (t *Transport) dialDTLS(ctx context.Context, uc *net.UDPConn, to transport.Addr) (transport.Conn, error) {
	local := transport.Addr{Kind: transport.KindSCTPUDP, AddrPort: uc.LocalAddr().(*net.UDPAddr).AddrPort()}
	dc, id, err := t.dtls.handshake(ctx, uc, false, nil, local, to)
	if err != nil {
		return nil, err
	}
	w := newSecureWire(dc, uint16(t.cfg.MaxStreams), &t.cfg)
	return t.cfg.secureClient(ctx, w, local, to, id, nil, nil)
}

// secureClient opens the SCTP association over the DTLS connection w as its
// client, for Dial and DialFrom; onEnd and closed are as newConn's and
// DialFrom's.
func (c *Config) secureClient(ctx context.Context, w *secureWire, local, to transport.Addr, id transport.Identity, onEnd func(*Conn), closed func() bool) (*Conn, error) {
	assoc, err := pionsctp.ClientContext(ctx, c.pionConfig(w))
	if err != nil {
		_ = w.Close()
		switch {
		case ctx.Err() != nil:
			return nil, ctx.Err()
		case w.seen()&sawOutOfResource != 0:
			return nil, fmt.Errorf("%w: %w", transport.ErrAssociationLost, ErrOutOfResource)
		case closed != nil && closed():
			return nil, fmt.Errorf("sctp: dial %v: %w", to, transport.ErrClosed)
		}
		return nil, fmt.Errorf("%w: handshake: %w", transport.ErrAssociationLost, err)
	}
	conn, err := newConn(assoc, w, local, to, c, onEnd)
	if err != nil {
		return nil, err
	}
	conn.peer, conn.secured = id, true
	return conn, nil
}

// yieldsTo reports whether this socket gives up its own DTLS dial to peer
// when the two dials cross: the end with the higher UDP port yields, and
// with equal ports the one with the higher IP address. A socket bound to
// an unspecified address does not know its address as the peer sees it,
// and keeps its dial then.
func (l *Listener) yieldsTo(peer netip.AddrPort) bool {
	local := l.addr.AddrPort
	if local.Port() != peer.Port() {
		return local.Port() > peer.Port()
	}
	ip := local.Addr().Unmap()
	return !ip.IsUnspecified() && ip.Compare(peer.Addr()) > 0
}

// dispatchDTLS hands a datagram of a DTLS listener to its association:
// over DTLS the source address and the connection ID we gave the DTLS
// connection name it (RFC 8261 §4: its SCTP ports are inside the
// encryption), and a record without a connection ID goes to the
// handshake in progress with that address (or an association whose peer
// does not use connection IDs). A datagram that finds none opens one only
// if it is a ClientHello; anything else is dropped without an answer. The new handshake is bounded as an INIT's
// is (see [Listener]); a ClientHello beyond MaxAssociations or
// MaxAssociationsPerAddr is answered with a fatal internal_error alert, as
// an INIT with an "Out of Resource" ABORT, so that the peer fails at once
// (its Dial with a [*HandshakeError] refused by the peer). pion/dtls answers the first ClientHello with a
// HelloVerifyRequest cookie (RFC 6347 §4.2.1), and until the peer echoes
// it the handshake is the first to be evicted and is dropped after
// [Config.CookieEchoTimeout], so that spoofed sources hold no more than
// those evictable slots.
func (l *Listener) dispatchDTLS(pkt []byte, from netip.AddrPort) {
	l.mu.Lock()
	var p *pktConn
	if cid, ok := recordCID(pkt); ok {
		p = l.assocs[cidKey(from, cid)]
		if p != nil && binary.BigEndian.Uint16(pkt[3:]) == 0 {
			pkt = unwrapCleartextCID(pkt)
		}
		if p != nil && p.dtlsDone.Load() && l.byPeer[from] == p {
			// The peer uses our connection ID: the next ClientHello
			// from its address is another handshake.
			delete(l.byPeer, from)
		}
	} else {
		p = l.byPeer[from]
	}
	l.mu.Unlock()
	if p != nil && !p.outbound && !p.dtlsDone.Load() && p.seen()&sawCookieEcho != 0 && isFirstClientHello(pkt) {
		// A handshake past the cookie exchange, and the peer starts
		// afresh: it gave that one up (or it failed and is not yet
		// cleared), and nothing will complete it.
		_ = p.Close()
		p = nil
	}
	if p != nil && p.outbound && !p.dtlsDone.Load() && isClientHello(pkt) {
		// Our DialFrom to this peer crossed its dial to us: two DTLS
		// clients on one 5-tuple, where neither would ever answer the
		// other. One side yields, as both compute alike.
		if !l.yieldsTo(from) {
			return // ours goes on; the peer yields
		}
		p.crossed.Store(true)
		_ = p.Close() // our DialFrom fails with ErrPortPairInUse
		p = nil
	}
	if p == nil {
		if !isClientHello(pkt) {
			return
		}
		var refuse bool
		if p, refuse = l.newAssociation(demuxKey{peer: from}); p == nil {
			l.initsTurnedAway.Add(1)
			if refuse {
				_, _ = l.pc.WriteToUDPAddrPort(refuseHello(pkt), from)
			}
			return
		}
	}
	p.deliver(pkt)
}

// Connection IDs (RFC 9146). A DTLS listener gives each DTLS connection on
// its socket a connection ID of cidLen bytes, which the peer puts in every
// record it sends once the handshake has got that far (content type
// tls12_cid), so that several DTLS connections, and so several
// associations, share one UDP 5-tuple. The ID is kept in the SCTP port
// fields of the demultiplexing key, which DTLS does not use otherwise.
const (
	cidLen              = 4
	dtlsContentCID      = 25
	dtlsCIDRecordHeader = 11 + cidLen + 2 // type, version, epoch, sequence number, CID, length
)

// recordCID returns the connection ID of a datagram that starts with a
// record carrying one.
func recordCID(pkt []byte) (uint32, bool) {
	if len(pkt) < dtlsCIDRecordHeader || pkt[0] != dtlsContentCID {
		return 0, false
	}
	return binary.BigEndian.Uint32(pkt[11:]), true
}

// unwrapCleartextCID turns a record of epoch 0 (not encrypted) that
// carries a connection ID back into the plain record it wraps, leaving the
// datagram's further records as they are. RFC 9146 §3 uses tls12_cid
// records only once a connection ID is negotiated, which happens with
// encryption, but pion/dtls v3 wraps the fatal alert that ends a failed
// handshake with the peer's connection ID at epoch 0, which it then cannot
// read: the peer would answer "decode_error" and the refusal would be
// reported as the wrong side's. A record that does not parse is returned
// unchanged, for pion/dtls to drop.
func unwrapCleartextCID(pkt []byte) []byte {
	n := int(binary.BigEndian.Uint16(pkt[dtlsCIDRecordHeader-2:]))
	if dtlsCIDRecordHeader+n > len(pkt) {
		return pkt
	}
	inner := pkt[dtlsCIDRecordHeader : dtlsCIDRecordHeader+n]
	for len(inner) > 0 && inner[len(inner)-1] == 0 { // padding (RFC 9146 §4)
		inner = inner[:len(inner)-1]
	}
	if len(inner) == 0 {
		return pkt
	}
	typ, content := inner[len(inner)-1], inner[:len(inner)-1]
	out := make([]byte, 0, len(pkt))
	out = append(out, typ)
	out = append(out, pkt[1:11]...) // version, epoch, sequence number
	out = binary.BigEndian.AppendUint16(out, uint16(len(content)))
	out = append(out, content...)
	return append(out, pkt[dtlsCIDRecordHeader+n:]...)
}

func cidKey(peer netip.AddrPort, cid uint32) demuxKey {
	return demuxKey{peer: peer, peerPort: uint16(cid >> 16), localPort: uint16(cid)}
}

func (k demuxKey) cid() []byte {
	return binary.BigEndian.AppendUint32(nil, uint32(k.peerPort)<<16|uint32(k.localPort))
}

// newCIDKeyLocked picks a connection ID for a new DTLS connection with
// peer, random and unused towards it.
func (l *Listener) newCIDKeyLocked(peer netip.AddrPort) demuxKey {
	for {
		k := cidKey(peer, rand.Uint32())
		if _, used := l.assocs[k]; !used && (k.peerPort != 0 || k.localPort != 0) {
			return k
		}
	}
}

// dialFromDTLS runs the DTLS handshake as client over p, an outbound
// association on the listener's socket, and then the SCTP association.
func (l *Listener) dialFromDTLS(ctx context.Context, p *pktConn, to transport.Addr) (transport.Conn, error) {
	dc, id, err := l.sec.handshake(ctx, p, false, p.key.cid(), l.addr, to)
	if err != nil {
		switch {
		case p.crossed.Load():
			return nil, fmt.Errorf("sctp: dial %v over DTLS crossed the peer's dial to us (its association is accepted instead): %w", to, ErrPortPairInUse)
		case l.closed() && ctx.Err() == nil:
			return nil, fmt.Errorf("sctp: dial %v: %w", to, transport.ErrClosed)
		}
		return nil, err
	}
	p.dtlsDone.Store(true)
	w := newSecureWire(dc, p.mis, l.cfg)
	c, err := l.cfg.secureClient(ctx, w, l.addr, to, id, l.forget, l.closed)
	if err != nil {
		_ = p.Close()
		if p.crossed.Load() {
			return nil, fmt.Errorf("sctp: dial %v over DTLS crossed the peer's dial to us: %w", to, ErrPortPairInUse)
		}
		return nil, err
	}
	return l.dialled(c, p, to)
}

// refuseHello returns the fatal internal_error alert (RFC 5246 §7.2.2) that
// answers the ClientHello hello when the listener is at a limit: a
// plaintext record of epoch 0 with the ClientHello's record sequence
// number, as a HelloVerifyRequest would have (RFC 6347 §4.2.1).
func refuseHello(hello []byte) []byte {
	const alertInternalError = 80
	rec := make([]byte, dtlsRecordHeaderSize+2)
	copy(rec, hello[:dtlsRecordHeaderSize])
	rec[0] = dtlsContentAlert
	binary.BigEndian.PutUint16(rec[11:], 2)
	rec[13], rec[14] = 2, alertInternalError // fatal
	return rec
}
