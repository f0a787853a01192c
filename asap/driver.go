package asap

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sync/atomic"
	"time"

	"github.com/go-rserpool/rserpool/internal/loop"
	"github.com/go-rserpool/rserpool/tlv"
	"github.com/go-rserpool/rserpool/transport"
)

// endpointCore is what the PE and PU cores share for the driver.
type endpointCore interface {
	loop.Core
	Outbox() []Output
	Handle(now time.Time, from AssocID, msg tlv.ASAPMessage)
	HandleAnnounce(now time.Time, src transport.Addr, m *tlv.ServerAnnounce)
	HandleConnected(now time.Time, id AssocID)
	HandleConnectFailed(now time.Time, id AssocID, err error)
	HandleLost(now time.Time, id AssocID)
}

// Option configures the driver of a PoolElement or PoolUser.
type Option func(*options)

type options struct {
	announcer transport.Announcer
}

// WithAnnouncer makes the endpoint listen for ASAP_SERVER_ANNOUNCEs
// (RFC 5352 §3.6) on a; the endpoint closes it when it closes.
func WithAnnouncer(a transport.Announcer) Option { return func(o *options) { o.announcer = a } }

// endpoint connects a core to a transport and a clock: one loop goroutine,
// one reader and one writer per association, one dialer per hunt attempt.
type endpoint struct {
	log     *slog.Logger
	l       *loop.Loop
	tr      transport.Transport
	core    endpointCore
	links   map[AssocID]*loop.Link
	dials   map[AssocID]func()
	onEvent func(now time.Time, o Output)
	cancel  context.CancelFunc
	stopped chan struct{}
	buf     []byte

	// A pool element's ASAP endpoint (nil for a pool user, or when the
	// transport has none): registrars are dialled from it and the
	// associations they open to it are accepted.
	lst      transport.Endpoint
	acc      accepter
	maxAcc   int
	accepted []AssocID // accepted associations that are not the home, oldest first; on the loop

	// The registrar check (PEConfig/PUConfig.AuthorizeRegistrar) and
	// what a refusal is reported to (on the loop).
	auth      regAuth
	nRefusedR atomic.Uint64 // associations with registrars refused by auth
}

// regAuth is an endpoint's registrar check: the hook (nil allows every
// registrar) and, if set, what a refusal is told to besides the count.
type regAuth struct {
	check   RegistrarAuthorizer
	refused func(now time.Time, err error)
}

// accepter is a core that takes associations a registrar opened to it
// (the pool element's).
type accepter interface {
	HandleAccepted(now time.Time, from transport.Addr) AssocID
}

// listening is what a pool element's driver accepts on: its endpoint, the
// core that takes the associations, and how many it keeps.
type listening struct {
	lst transport.Endpoint
	acc accepter
	max int
}

func applyOptions(opts []Option) options {
	var o options
	for _, f := range opts {
		if f != nil {
			f(&o)
		}
	}
	return o
}

// offer hands the host ev on ch without ever waiting for it: nothing
// when ch is nil; when ch is full, ev is dropped and counted in dropped.
func offer[E any](ch chan<- E, ev E, dropped *atomic.Uint64) {
	if ch == nil {
		return
	}
	select {
	case ch <- ev:
	default:
		dropped.Add(1)
	}
}

// kindOf is the Kind a PE or PU maps transport parameters to: the
// configured one, else the transport's (transport.KindReporter), else the
// zero Kind (KindSCTPUDP).
func kindOf(configured transport.Kind, tr transport.Transport) transport.Kind {
	if configured == 0 {
		if k, ok := tr.(transport.KindReporter); ok {
			return k.Kind()
		}
	}
	return configured
}

// checkDiscovery fails a configuration with which the endpoint could never
// find a registrar (RFC 5352 §3.6: by configuration or by announces).
func checkDiscovery(registrars []transport.Addr, o options) error {
	if len(registrars) == 0 && o.announcer == nil {
		return fmt.Errorf("%w: no Registrars and no announcer (WithAnnouncer): no registrar could ever be found", ErrInvalidConfig)
	}
	for i, a := range registrars {
		if !a.IsValid() {
			return fmt.Errorf("%w: Registrars[%d] (%v) is not a valid address", ErrInvalidConfig, i, a)
		}
	}
	return nil
}

func startEndpoint(core endpointCore, tr transport.Transport, log *slog.Logger, onEvent func(time.Time, Output), o options, ln listening, auth regAuth) *endpoint {
	ctx, cancel := context.WithCancel(context.Background())
	e := &endpoint{
		log: log, l: loop.New(ctx, loop.Real), tr: tr, core: core,
		links: map[AssocID]*loop.Link{}, dials: map[AssocID]func(){},
		onEvent: onEvent, cancel: cancel, stopped: make(chan struct{}),
		lst: ln.lst, acc: ln.acc, maxAcc: ln.max, auth: auth,
	}
	if e.lst != nil {
		e.l.Accept(e.lst, e.accept, func(now time.Time, err error) {
			e.log.Debug("asap: endpoint stopped accepting", "addr", e.lst.Addr(), "err", err)
		})
	}
	if a := o.announcer; a != nil {
		e.l.Go(func(ctx context.Context) {
			defer a.Close()
			for {
				b, from, err := a.Recv(ctx)
				if err != nil {
					if ctx.Err() != nil {
						return
					}
					continue
				}
				m, err := tlv.ParseASAP(b)
				sa, ok := m.(*tlv.ServerAnnounce)
				if err != nil || !ok {
					continue
				}
				if !e.l.Post(func(now time.Time) { e.core.HandleAnnounce(now, from, sa) }) {
					return
				}
			}
		})
	}
	go func() {
		defer close(e.stopped)
		e.l.Run(core, e.flush)
		for _, k := range e.links {
			k.Close()
		}
		if e.lst != nil {
			// After Run: every association on it has been closed.
			_ = e.lst.Close()
		}
	}()
	return e
}

// openEndpoint opens a pool element's ASAP endpoint (see
// PEConfig.EndpointAddr), or returns nil when the transport cannot or
// cfg.MaxAccepted turns it off.
func openEndpoint(cfg PEConfig, tr transport.Transport) (transport.Endpoint, error) {
	et, ok := tr.(transport.EndpointTransport)
	if !ok || cfg.MaxAccepted < 0 {
		return nil, nil
	}
	at := cfg.EndpointAddr
	if !at.IsValid() {
		ip := netip.IPv4Unspecified()
		if len(cfg.Registrars) > 0 && !cfg.Registrars[0].AddrPort.Addr().Unmap().Is4() {
			ip = netip.IPv6Unspecified()
		}
		at = transport.Addr{Kind: cfg.Kind, AddrPort: netip.AddrPortFrom(ip, 0)}
	}
	ep, err := et.ListenEndpoint(at)
	if err != nil {
		return nil, fmt.Errorf("asap: pool element endpoint at %v: %w", at, err)
	}
	return ep, nil
}

// accept hands an association a registrar opened to the endpoint to the
// core (RFC 5352 §3.7: a registrar that took the PE over sends its
// Endpoint Keep Alive on it). Beyond maxAcc such associations, the oldest
// that is not the home is closed. One the registrar check refuses is
// aborted before the core sees it: it cannot become the home.
func (e *endpoint) accept(now time.Time, c transport.Conn) {
	if e.refuse(now, c, c.RemoteAddr(), true) != nil {
		return
	}
	if len(e.accepted) >= e.maxAcc {
		old := e.accepted[0]
		e.accepted = slices.Delete(e.accepted, 0, 1)
		if k, ok := e.links[old]; ok {
			k.Abort()
			delete(e.links, old)
		}
		e.log.Debug("asap: too many associations from registrars, closing the oldest", "assoc", old, "max", e.maxAcc)
		e.core.HandleLost(now, old)
	}
	id := e.acc.HandleAccepted(now, c.RemoteAddr())
	e.accepted = append(e.accepted, id)
	e.attach(id, c)
}

// unaccept forgets an accepted association: it became the home, or it
// is closed.
func (e *endpoint) unaccept(id AssocID) {
	if i := slices.Index(e.accepted, id); i >= 0 {
		e.accepted = slices.Delete(e.accepted, i, i+1)
	}
}

// dialer is what the core's Connect to addr dials with: the endpoint
// when there is one of addr's Kind and IP family, else the transport.
func (e *endpoint) dialer(to transport.Addr) transport.Transport {
	if e.lst != nil {
		a := e.lst.Addr()
		if a.Kind == to.Kind && a.AddrPort.Addr().Unmap().Is4() == to.AddrPort.Addr().Unmap().Is4() {
			return fromEndpoint{e.lst}
		}
	}
	return e.tr
}

// fromEndpoint dials from an endpoint, for loop.Dial.
type fromEndpoint struct{ ep transport.Endpoint }

func (f fromEndpoint) Dial(ctx context.Context, to transport.Addr) (transport.Conn, error) {
	return f.ep.DialFrom(ctx, to)
}

func (f fromEndpoint) Listen(transport.Addr) (transport.Listener, error) {
	return nil, errors.New("asap: an endpoint does not listen again")
}

// flush carries out the core's outputs; it runs on the loop.
func (e *endpoint) flush(now time.Time) {
	for {
		outs := e.core.Outbox()
		if len(outs) == 0 {
			return
		}
		for _, o := range outs {
			switch o := o.(type) {
			case Send:
				e.send(o)
			case Connect:
				e.connect(o)
			case Close:
				e.unaccept(o.Assoc)
				if stop, ok := e.dials[o.Assoc]; ok {
					stop()
					delete(e.dials, o.Assoc)
				}
				if k, ok := e.links[o.Assoc]; ok {
					k.Close()
					delete(e.links, o.Assoc)
				}
			case HomeChanged:
				e.unaccept(o.Assoc)
				if e.onEvent != nil {
					e.onEvent(now, o)
				}
			default:
				if e.onEvent != nil {
					e.onEvent(now, o)
				}
			}
		}
	}
}

func (e *endpoint) send(s Send) {
	k := e.links[s.Assoc]
	if k == nil {
		return
	}
	b, err := tlv.Append(e.buf[:0], s.Msg)
	if err != nil {
		e.log.Debug("asap: cannot encode", "type", s.Msg.ASAPType(), "err", err)
		return
	}
	if !k.SendCopy(transport.Message{PPID: transport.PPIDASAP, Data: b}) {
		e.log.Debug("asap: send queue full, dropped", "assoc", s.Assoc)
	}
	e.buf = b
}

func (e *endpoint) connect(c Connect) {
	id := c.Assoc
	e.dials[id] = e.l.Dial(e.dialer(c.Addr), c.Addr, 0, func(now time.Time, conn transport.Conn, err error) {
		delete(e.dials, id)
		if err != nil {
			e.log.Debug("asap: dial failed", "addr", c.Addr.AddrPort, "err", err)
			e.core.HandleConnectFailed(now, id, err)
			return
		}
		if err := e.refuse(now, conn, c.Addr, false); err != nil {
			// A refused registrar is a failed dial of the hunt.
			e.core.HandleConnectFailed(now, id, err)
			return
		}
		e.attach(id, conn)
		e.core.HandleConnected(now, id)
	})
}

// refuse runs the registrar check on an association with the registrar
// at addr, before any ASAP message goes over it. A refused one is
// aborted, counted, logged and reported (regAuth.refused), and refuse
// returns its *RegistrarRefusedError; otherwise nil.
func (e *endpoint) refuse(now time.Time, c transport.Conn, addr transport.Addr, accepted bool) error {
	err := authorizeRegistrar(e.auth.check, c, addr, accepted)
	if err == nil {
		return nil
	}
	_ = c.Abort()
	e.nRefusedR.Add(1)
	e.log.Debug("asap: registrar refused", "addr", addr, "err", err)
	if e.auth.refused != nil {
		e.auth.refused(now, err)
	}
	return err
}

// attach drives an association for the core under id.
func (e *endpoint) attach(id AssocID, conn transport.Conn) {
	e.links[id] = e.l.Attach(conn, func(now time.Time, m transport.Message) {
		if m.PPID != transport.PPIDASAP {
			return
		}
		msg, err := tlv.ParseASAP(m.Data)
		if err != nil {
			e.log.Debug("asap: bad message from registrar", "assoc", id, "err", err)
			return
		}
		e.core.Handle(now, id, msg)
	}, func(now time.Time, err error) {
		if _, ok := e.links[id]; !ok {
			return
		}
		delete(e.links, id)
		e.unaccept(id)
		e.core.HandleLost(now, id)
	})
}

// call runs f on the loop, failing with ErrClosed after close.
func (e *endpoint) call(ctx context.Context, f func(now time.Time)) error {
	if err := e.l.Call(ctx, f); err != nil {
		if err == loop.ErrStopped {
			return ErrClosed
		}
		return err
	}
	return nil
}

// close stops the loop and waits for every goroutine.
func (e *endpoint) close() {
	e.cancel()
	<-e.stopped
}
