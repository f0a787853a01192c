package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/go-rserpool/rserpool/asap"
	"github.com/go-rserpool/rserpool/enrp"
	"github.com/go-rserpool/rserpool/internal/echo"
	"github.com/go-rserpool/rserpool/tlv"
	"github.com/go-rserpool/rserpool/transport"
)

// The ENRP scene (RFC 5353): three registrars that peer, the third
// joining later through a mentor; PEs and a pool user spread over them;
// the home registrar of a PE killed; the pool user carries on.

const enrpPool = "echo-enrp"

// lanPeers are ENRP timers tuned for loopback (RFC 5353 §7 names), so
// that a dead peer is noticed within about a second.
func lanPeers(static ...transport.Addr) enrp.PeersConfig {
	return enrp.PeersConfig{
		Static:            static,
		HeartbeatCycle:    200 * time.Millisecond,
		MaxTimeLastHeard:  600 * time.Millisecond,
		MaxTimeNoResponse: 300 * time.Millisecond,
		TakeoverExpiry:    500 * time.Millisecond,
		MentorTimeout:     300 * time.Millisecond,
	}
}

// peerReg is one registrar of the ENRP scene; its peer events (from
// enrp.Config.Events) go to the trace under its name.
type peerReg struct {
	*enrp.Registrar
	name   string
	events chan enrp.Event
	down   chan uint32 // the server IDs of the peers it saw go down
	cancel context.CancelFunc
	ran    chan error
	done   chan struct{}
	once   sync.Once
}

// peerNames maps server IDs to the demo's registrar names.
type peerNames struct {
	mu    sync.Mutex
	names map[uint32]string
}

func (n *peerNames) of(id uint32) string {
	n.mu.Lock()
	defer n.mu.Unlock()
	if s := n.names[id]; s != "" {
		return s
	}
	return tlv.ServerID(id).String()
}

func startPeerReg(tr *tracer, names *peerNames, tp transport.Transport, name string, peers enrp.PeersConfig) (*peerReg, error) {
	r := &peerReg{name: name, events: make(chan enrp.Event, 64), down: make(chan uint32, 8), ran: make(chan error, 1), done: make(chan struct{})}
	reg, err := enrp.New(enrp.Config{
		Transport: tp, ListenAddr: loopbackAny, Peers: peers, Events: r.events,
		ASAP: enrp.ASAPConfig{KeepAliveInterval: keepAliveInterval, KeepAliveTimeout: keepAliveTimeout},
	})
	if err != nil {
		return nil, err
	}
	r.Registrar = reg
	names.mu.Lock()
	names.names[reg.ServerID()] = name
	names.mu.Unlock()
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go func() {
		defer close(r.done)
		for ev := range r.events {
			if !ev.Kind.IsPeer() {
				continue
			}
			peer := names.of(ev.ServerID)
			switch ev.Kind {
			case enrp.EventPeerUp:
				tr.printf("  %s: peer %s up", name, peer)
			case enrp.EventPeerDown:
				tr.printf("  %s: peer %s DOWN (home of %d PE(s) here)", name, peer, ev.PEs)
				select {
				case r.down <- ev.ServerID:
				default:
				}
			case enrp.EventTakeoverStarted:
				tr.printf("  %s: takeover of %s started (INIT_TAKEOVER to every peer)", name, peer)
			case enrp.EventTakeoverDone:
				tr.printf("  %s: takeover of %s done: home of its %d PE(s) now", name, peer, ev.PEs)
			case enrp.EventTakenOver:
				tr.printf("  %s: taken over by %s: %d PE(s)", name, peer, ev.PEs)
			}
		}
	}()
	go func() { r.ran <- reg.Run(ctx) }()
	return r, nil
}

// kill stops the registrar as a crash would, for its peers: its
// associations go down and it says nothing more (idempotent).
func (r *peerReg) kill() {
	r.once.Do(func() {
		r.cancel()
		r.Registrar.Close()
		<-r.ran
		close(r.events) // Run has returned: nothing sends on it any more
		<-r.done
	})
}

// homes reports the PEs of the scene's pool at r and their homes.
func (r *peerReg) homes(ctx context.Context) (map[uint32]uint32, error) {
	pes, err := r.PoolElements(ctx, []byte(enrpPool))
	if errors.Is(err, enrp.ErrNotRunning) {
		return nil, nil // its Run is just starting
	}
	if err != nil {
		return nil, err
	}
	m := map[uint32]uint32{}
	for _, p := range pes {
		m[p.PE.ID] = p.PE.HomeServerID
	}
	return m, nil
}

// until polls cond every 20 ms until it holds or ctx ends.
func until(ctx context.Context, what string, cond func() (bool, error)) error {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		ok, err := cond()
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w", what, ctx.Err())
		case <-t.C:
		}
	}
}

// enrpScene runs the ENRP scene on its own registrars, PEs and pool user.
func enrpScene(ctx context.Context, tr *tracer, tp transport.Transport) error {
	ctx, cancel := context.WithTimeout(ctx, 8*time.Second)
	defer cancel()
	names := &peerNames{names: map[uint32]string{}}
	tr.printf("ENRP: registrars that peer (RFC 5353), pool %q", enrpPool)
	r1, err := startPeerReg(tr, names, tp, "r1", lanPeers())
	if err != nil {
		return err
	}
	defer r1.kill()
	r2, err := startPeerReg(tr, names, tp, "r2", lanPeers(r1.Addr()))
	if err != nil {
		return err
	}
	defer r2.kill()
	tr.printf("r1 %08x at %v; r2 %08x at %v, peering with r1", r1.ServerID(), r1.Addr(), r2.ServerID(), r2.Addr())

	// Two PEs, one at each registrar; each knows both registrars, its
	// home first.
	type elem struct {
		name string
		pe   *asap.PoolElement
		ln   transport.Listener
		srv  *echo.Server
		ran  chan error
	}
	var elems []*elem
	defer func() {
		for _, e := range elems {
			e.pe.Close()
			e.ln.Close()
			<-e.ran
		}
	}()
	for i, regs := range [][]transport.Addr{{r1.Addr(), r2.Addr()}, {r2.Addr(), r1.Addr()}} {
		ln, err := tp.Listen(loopbackAny)
		if err != nil {
			return err
		}
		user, err := asap.TransportParam(ln.Addr(), tlv.TransportUseDataOnly)
		if err != nil {
			ln.Close()
			return err
		}
		e := &elem{name: fmt.Sprintf("pe-%c", 'a'+i), ln: ln, ran: make(chan error, 1)}
		e.srv = &echo.Server{Name: e.name}
		e.pe, err = asap.NewPoolElement(asap.PEConfig{PoolHandle: []byte(enrpPool), UserTransport: user, Registrars: regs}, tp)
		if err != nil {
			ln.Close()
			return err
		}
		go func() { e.ran <- e.srv.Serve(context.Background(), ln) }()
		elems = append(elems, e)
		if err := until(ctx, e.name+"'s registration", func() (bool, error) {
			err := e.pe.Register(ctx)
			return err == nil, nil // refused while its registrar starts (RFC 5353 §3.4): try again
		}); err != nil {
			return err
		}
		tr.printf("%s registered at %s as PE %08x", e.name, []string{"r1", "r2"}[i], e.pe.ID())
	}
	// RFC 5353 §3.6: each PE reaches the other registrar by handle update.
	for _, r := range []*peerReg{r1, r2} {
		if err := until(ctx, r.name+" holding both PEs", func() (bool, error) {
			h, err := r.homes(ctx)
			return len(h) == 2, err
		}); err != nil {
			return err
		}
	}
	tr.printf("r1 and r2 each hold both PEs (ENRP_HANDLE_UPDATE)")

	// r3 joins later, with r1 as its mentor (RFC 5353 §3.4).
	r3, err := startPeerReg(tr, names, tp, "r3", lanPeers(r1.Addr()))
	if err != nil {
		return err
	}
	defer r3.kill()
	if err := until(ctx, "r3's table from its mentor", func() (bool, error) {
		h, err := r3.homes(ctx)
		return len(h) == 2, err
	}); err != nil {
		return err
	}
	tr.printf("r3 %08x joined through mentor r1: its handle table (ENRP_HANDLE_TABLE_RESPONSE) holds both PEs", r3.ServerID())

	// The pool user asks r3.
	pu, err := asap.NewPoolUser(asap.PUConfig{Registrars: []transport.Addr{r3.Addr()}, DialTimeout: reqTimeout}, tp)
	if err != nil {
		return err
	}
	defer pu.Close()
	call := func(label string, n int) ([]string, error) {
		var who []string
		for i := 1; i <= n; i++ {
			msg := fmt.Sprintf("request %s%d", label, i)
			a, err := echo.Call(ctx, pu, []byte(enrpPool), msg, reqTimeout)
			if err != nil {
				return who, fmt.Errorf("%s: %w", msg, err)
			}
			tr.printf("%s (pool user of r3) answered by %s", msg, a.From)
			if !slices.Contains(who, a.From) {
				who = append(who, a.From)
			}
		}
		return who, nil
	}
	if who, err := call("E", 4); err != nil {
		return err
	} else if len(who) != 2 {
		return fmt.Errorf("the pool user of r3 reached %v, want both PEs", who)
	}

	// r1, home of pe-a, dies.
	pa := elems[0]
	tr.printf("r1 (home of %s) is KILLED", pa.name)
	start := time.Now()
	r1.kill()
	// A survivor becomes pe-a's home: by takeover (RFC 5353 §3.9), or by
	// pe-a's own registration at r2 when it finds its home gone.
	var home uint32
	if err := until(ctx, "a new home of "+pa.name+" at r3", func() (bool, error) {
		h, err := r3.homes(ctx)
		home = h[pa.pe.ID()]
		return home != 0 && home != r1.ServerID(), err
	}); err != nil {
		return err
	}
	tr.printf("%s's home is %s now, %v after r1 died", pa.name, names.of(home), time.Since(start).Round(time.Millisecond))
	// The survivors notice r1's death by its silence (RFC 5353 §3.3).
	for _, r := range []*peerReg{r2, r3} {
		select {
		case id := <-r.down:
			if id != r1.ServerID() {
				return fmt.Errorf("%s saw %s go down, not r1", r.name, names.of(id))
			}
		case <-ctx.Done():
			return fmt.Errorf("%s did not see r1 go down: %w", r.name, ctx.Err())
		}
	}
	if who, err := call("F", 4); err != nil {
		return err
	} else if len(who) != 2 {
		return fmt.Errorf("after r1 died the pool user of r3 reached %v, want both PEs", who)
	}
	tr.printf("the pool user carries on: both PEs still served through r3")
	return nil
}
