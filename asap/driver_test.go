package asap

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/go-rserpool/rserpool/internal/leakcheck"
	"github.com/go-rserpool/rserpool/policy"
	"github.com/go-rserpool/rserpool/tlv"
	"github.com/go-rserpool/rserpool/transport"
	"github.com/go-rserpool/rserpool/transport/memnet"
)

// fakeRegistrar is a minimal ASAP registrar for driver tests: it accepts
// every registration, answers resolutions with all PEs, sends one Endpoint
// Keep Alive after each registration and removes PEs on deregistration or
// the first Endpoint Unreachable report. (The real one is enrp.Registrar.)
type fakeRegistrar struct {
	l        transport.Listener
	serverID uint32

	mu           sync.Mutex
	pes          map[uint32]tlv.PoolElement
	acks         int
	hrs          int  // ASAP_HANDLE_RESOLUTIONs answered
	keepReported bool // keep reported PEs, as a registrar below MAX-BAD-PE-REPORT does
	unreachables []uint32
	// Registrations before refuseUntil are refused with refuseCode, as
	// when an attacker holds the PE's identifier or re-created its pool.
	refuseUntil time.Time
	refuseCode  tlv.CauseCode
	regs        int // ASAP_REGISTRATIONs received
	conns       []transport.Conn
	wg          sync.WaitGroup
}

// dropAll aborts every association the registrar holds, as a registrar
// that crashed would lose them.
func (r *fakeRegistrar) dropAll() {
	r.mu.Lock()
	cs := r.conns
	r.conns = nil
	r.mu.Unlock()
	for _, c := range cs {
		c.Abort()
	}
}

func startFakeRegistrar(t testing.TB, l transport.Listener, sid uint32) *fakeRegistrar {
	r := &fakeRegistrar{l: l, serverID: sid, pes: map[uint32]tlv.PoolElement{}}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		for {
			c, err := l.Accept(context.Background())
			if err != nil {
				return
			}
			r.wg.Add(1)
			go func() { defer r.wg.Done(); r.serve(t, c) }()
		}
	}()
	return r
}

func (r *fakeRegistrar) close() { r.l.Close(); r.wg.Wait() }

func (r *fakeRegistrar) serve(t testing.TB, c transport.Conn) {
	defer c.Close()
	r.mu.Lock()
	r.conns = append(r.conns, c)
	r.mu.Unlock()
	ctx := context.Background()
	send := func(m tlv.ASAPMessage) {
		b, err := tlv.Marshal(m)
		if err != nil {
			t.Errorf("fake registrar: %v", err)
			return
		}
		c.Send(ctx, transport.Message{PPID: transport.PPIDASAP, Data: b})
	}
	for {
		raw, err := c.Recv(ctx)
		if err != nil {
			return
		}
		msg, err := tlv.ParseASAP(raw.Data)
		if err != nil {
			t.Errorf("fake registrar got a bad message: %v", err)
			return
		}
		r.mu.Lock()
		switch m := msg.(type) {
		case *tlv.Registration:
			r.regs++
			if time.Now().Before(r.refuseUntil) {
				code := r.refuseCode
				r.mu.Unlock()
				send(&tlv.RegistrationResponse{Reject: true, PoolHandle: m.PoolHandle, PEID: m.PE.ID,
					Error: &tlv.OperationError{Causes: []tlv.Cause{{Code: code}}}})
				continue
			}
			pe := clonePE(m.PE)
			pe.HomeServerID = r.serverID
			r.pes[pe.ID] = pe
			r.mu.Unlock()
			send(&tlv.RegistrationResponse{PoolHandle: m.PoolHandle, PEID: m.PE.ID})
			send(&tlv.EndpointKeepAlive{ServerID: r.serverID, PoolHandle: m.PoolHandle})
			continue
		case *tlv.Deregistration:
			delete(r.pes, m.PEID)
			r.mu.Unlock()
			send(&tlv.DeregistrationResponse{PoolHandle: m.PoolHandle, PEID: m.PEID})
			continue
		case *tlv.EndpointKeepAliveAck:
			r.acks++
		case *tlv.EndpointUnreachable:
			r.unreachables = append(r.unreachables, m.PEID)
			if !r.keepReported {
				delete(r.pes, m.PEID)
			}
		case *tlv.HandleResolution:
			r.hrs++
			resp := &tlv.HandleResolutionResponse{PoolHandle: bytes.Clone(m.PoolHandle)}
			for id := uint32(1); string(m.PoolHandle) == "echo" && id < 1<<16 && len(resp.PEs) < len(r.pes); id++ {
				if pe, ok := r.pes[id]; ok {
					resp.PEs = append(resp.PEs, pe)
				}
			}
			if len(resp.PEs) == 0 {
				resp.Error = &tlv.OperationError{Causes: []tlv.Cause{{Code: tlv.CauseUnknownPoolHandle}}}
			}
			r.mu.Unlock()
			send(resp)
			continue
		}
		r.mu.Unlock()
	}
}

// End to end over memnet: two PEs register (RFC 5352 §3.1) and answer the
// keep-alive (§3.7); a PU resolves the handle (§3.5) and dials PEs; after
// one PE dies the PU reports it (§3.5 Endpoint Unreachable) and fails over
// to the other; the survivor deregisters (§3.3). No goroutine outlives
// Close.
func TestDriversOverMemnet(t *testing.T) {
	leakcheck.Check(t)
	synctest.Test(t, func(t *testing.T) {
		n := memnet.New(1)
		defer n.Close()
		regNode := n.NewNode()
		regL, err := regNode.Listen(regNode.Addr(transport.PortASAP))
		if err != nil {
			t.Fatal(err)
		}
		reg := startFakeRegistrar(t, regL, 0xabc)
		defer reg.close()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()

		type runningPE struct {
			pe *PoolElement
			l  transport.Listener
		}
		var pes []runningPE
		for i := range 2 {
			node := n.NewNode()
			l, err := node.Listen(node.Addr(7000))
			if err != nil {
				t.Fatal(err)
			}
			ut, err := TransportParam(l.Addr(), tlv.TransportUseDataOnly)
			if err != nil {
				t.Fatal(err)
			}
			pe, err := NewPoolElement(PEConfig{
				PoolHandle: []byte("echo"), UserTransport: ut, PEID: uint32(i + 1),
				Registrars: []transport.Addr{regL.Addr()}, Kind: transport.KindMem, Logger: testLogger(t),
			}, node)
			if err != nil {
				t.Fatal(err)
			}
			defer pe.Close()
			if err := pe.Register(ctx); err != nil {
				t.Fatalf("PE %d: %v", i+1, err)
			}
			if !pe.Registered() {
				t.Fatal("Registered() false after Register")
			}
			pes = append(pes, runningPE{pe, l})
			go func() { // accept and hold user associations until the listener dies
				for {
					c, err := l.Accept(context.Background())
					if err != nil {
						return
					}
					c.Close()
				}
			}()
		}
		synctest.Wait()
		reg.mu.Lock()
		if reg.acks != 2 {
			t.Errorf("registrar got %d keep-alive acks, want 2", reg.acks)
		}
		reg.mu.Unlock()

		puNode := n.NewNode()
		pu, err := NewPoolUser(PUConfig{Registrars: []transport.Addr{regL.Addr()}, Kind: transport.KindMem, Logger: testLogger(t)}, puNode)
		if err != nil {
			t.Fatal(err)
		}
		defer pu.Close()
		got, err := pu.Resolve(ctx, []byte("echo"))
		if err != nil || len(got) != 2 {
			t.Fatalf("Resolve: %v %v", got, err)
		}
		if _, err := pu.Resolve(ctx, []byte("nope")); !errors.Is(err, ErrUnknownPool) {
			t.Fatalf("Resolve unknown pool: %v", err)
		}
		seen := map[uint32]bool{}
		for range 4 {
			c, pe, err := pu.Dial(ctx, []byte("echo"))
			if err != nil {
				t.Fatal(err)
			}
			seen[pe.ID] = true
			c.Close()
		}
		if !seen[1] || !seen[2] {
			t.Fatalf("round robin over 2 PEs reached %v", seen)
		}

		// PE 1 dies: its listener goes and it stops without deregistering.
		pes[0].l.Close()
		pes[0].pe.Close()
		for range 4 {
			c, pe, err := pu.Dial(ctx, []byte("echo"))
			if err != nil {
				t.Fatal(err)
			}
			if pe.ID != 2 {
				t.Fatalf("dialled dead PE %d", pe.ID)
			}
			c.Close()
		}
		synctest.Wait()
		reg.mu.Lock()
		if len(reg.unreachables) != 1 || reg.unreachables[0] != 1 {
			t.Errorf("unreachable reports %v, want [1]", reg.unreachables)
		}
		reg.mu.Unlock()

		if err := pes[1].pe.UpdatePolicy(ctx, policy.Values{}); err != nil {
			t.Fatal(err)
		}
		if err := pes[1].pe.Deregister(ctx); err != nil {
			t.Fatalf("Deregister: %v", err)
		}
		if err := pes[1].pe.Deregister(ctx); !errors.Is(err, ErrNotRegistered) {
			t.Fatalf("second Deregister: %v", err)
		}
		reg.mu.Lock()
		if len(reg.pes) != 0 {
			t.Errorf("registrar still holds %d PEs", len(reg.pes))
		}
		reg.mu.Unlock()
		pes[1].l.Close()
		pu.Close()
		if _, err := pu.Resolve(ctx, []byte("echo")); !errors.Is(err, ErrClosed) {
			t.Fatalf("Resolve after Close: %v", err)
		}
		for _, p := range pes {
			p.pe.Close()
		}
	})
}

// RFC 5352 §3.6: with its only registrar gone, Register returns the
// context's error when it ends before MaxServerHunts failed hunts, and the
// PE keeps hunting; a registrar that appears later is found within one
// backed-off round.
func TestDriverRegisterHuntsUntilRegistrarAppears(t *testing.T) {
	leakcheck.Check(t)
	synctest.Test(t, func(t *testing.T) {
		n := memnet.New(2)
		defer n.Close()
		regNode, peNode := n.NewNode(), n.NewNode()
		ut, _ := TransportParam(peNode.Addr(7000), tlv.TransportUseDataOnly)
		pe, err := NewPoolElement(PEConfig{PoolHandle: []byte("p"), UserTransport: ut,
			Registrars: []transport.Addr{regNode.Addr(transport.PortASAP)}, Kind: transport.KindMem}, peNode)
		if err != nil {
			t.Fatal(err)
		}
		defer pe.Close()
		short, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		if err := pe.Register(short); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Register without registrar: %v", err)
		}
		regL, err := regNode.Listen(regNode.Addr(transport.PortASAP))
		if err != nil {
			t.Fatal(err)
		}
		reg := startFakeRegistrar(t, regL, 1)
		defer reg.close()
		ctx, cancel2 := context.WithTimeout(context.Background(), time.Minute)
		defer cancel2()
		start := time.Now()
		for err := pe.Register(ctx); err != nil; err = pe.Register(ctx) {
			if !errors.Is(err, ErrNoRegistrar) {
				t.Fatal(err)
			}
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("found the registrar after %v of hunting; the round was at most %v", d, time.Second)
		}
		pe.Close()
	})
}
