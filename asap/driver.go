package asap

import (
	"context"
	"fmt"
	"log/slog"
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

func startEndpoint(core endpointCore, tr transport.Transport, log *slog.Logger, onEvent func(time.Time, Output), o options) *endpoint {
	ctx, cancel := context.WithCancel(context.Background())
	e := &endpoint{
		log: log, l: loop.New(ctx, loop.Real), tr: tr, core: core,
		links: map[AssocID]*loop.Link{}, dials: map[AssocID]func(){},
		onEvent: onEvent, cancel: cancel, stopped: make(chan struct{}),
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
	}()
	return e
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
				if stop, ok := e.dials[o.Assoc]; ok {
					stop()
					delete(e.dials, o.Assoc)
				}
				if k, ok := e.links[o.Assoc]; ok {
					k.Close()
					delete(e.links, o.Assoc)
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
	if !k.Send(transport.Message{PPID: transport.PPIDASAP, Data: append([]byte(nil), b...)}) {
		e.log.Debug("asap: send queue full, dropped", "assoc", s.Assoc)
	}
	e.buf = b
}

func (e *endpoint) connect(c Connect) {
	id := c.Assoc
	e.dials[id] = e.l.Dial(e.tr, c.Addr, 0, func(now time.Time, conn transport.Conn, err error) {
		delete(e.dials, id)
		if err != nil {
			e.log.Debug("asap: dial failed", "addr", c.Addr.AddrPort, "err", err)
			e.core.HandleConnectFailed(now, id, err)
			return
		}
		e.attach(id, conn)
		e.core.HandleConnected(now, id)
	})
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
