package asap

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/go-rserpool/rserpool/internal/leakcheck"
	"github.com/go-rserpool/rserpool/tlv"
	"github.com/go-rserpool/rserpool/transport"
	"github.com/go-rserpool/rserpool/transport/memnet"
)

// endpointPE starts a pool element on a node of n registered at a fake
// registrar (server ID 0xa); it returns the PE, its registrar, and the
// address the registrar saw the PE's association come from.
func endpointPE(t *testing.T, n *memnet.Network, cfg PEConfig) (*PoolElement, *fakeRegistrar, transport.Addr) {
	t.Helper()
	regNode := n.NewNode()
	regL, err := regNode.Listen(regNode.Addr(transport.PortASAP))
	if err != nil {
		t.Fatal(err)
	}
	reg := startFakeRegistrar(t, regL, 0xa)
	t.Cleanup(reg.close)
	node := n.NewNode()
	ut, _ := TransportParam(node.Addr(7000), tlv.TransportUseDataOnly)
	cfg.PoolHandle, cfg.UserTransport, cfg.PEID = []byte("echo"), ut, 42
	cfg.Registrars = []transport.Addr{regL.Addr()}
	pe, err := NewPoolElement(cfg, node)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pe.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := pe.Register(ctx); err != nil {
		t.Fatal(err)
	}
	synctest.Wait()
	reg.mu.Lock()
	defer reg.mu.Unlock()
	if len(reg.conns) != 1 {
		t.Fatalf("registrar holds %d associations, want 1", len(reg.conns))
	}
	return pe, reg, reg.conns[0].RemoteAddr()
}

func sendASAP(t *testing.T, c transport.Conn, m tlv.ASAPMessage) {
	t.Helper()
	b, err := tlv.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Send(context.Background(), transport.Message{PPID: transport.PPIDASAP, Data: b}); err != nil {
		t.Fatal(err)
	}
}

func recvASAP(t *testing.T, c transport.Conn) tlv.ASAPMessage {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	raw, err := c.Recv(ctx)
	if err != nil {
		t.Fatalf("Recv: %v", err)
	}
	m, err := tlv.ParseASAP(raw.Data)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// RFC 5353 §3.9, RFC 5352 §3.7, the PE side: a registrar that took the PE
// over dials the address the PE registered from and sends an Endpoint
// Keep Alive with the H flag; the PE answers it there, adopts the sender
// as its home (PEEventHomeChanged), closes the old home association and
// deregisters through the new home. (Before: the PE dialled
// from an ephemeral port and accepted nothing, so the new home's dial was
// refused: "memnet: association refused".)
func TestPEAcceptsNewHomeAtItsRegisteredAddress(t *testing.T) {
	leakcheck.Check(t)
	synctest.Test(t, func(t *testing.T) {
		n := memnet.New(1)
		defer n.Close()
		events := make(chan PEEvent, 16)
		pe, old, seen := endpointPE(t, n, PEConfig{Events: events})
		if seen != pe.EndpointAddr() {
			t.Errorf("registrar saw the PE at %v, its endpoint is %v", seen, pe.EndpointAddr())
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		newHome, err := n.NewNode().Dial(ctx, seen)
		if err != nil {
			t.Fatalf("the new home cannot reach the PE at %v: %v", seen, err)
		}
		defer newHome.Close()
		sendASAP(t, newHome, &tlv.EndpointKeepAlive{ServerID: 0xb, PoolHandle: []byte("echo"), PEID: 42, HasPEID: true, Home: true})
		if ack, ok := recvASAP(t, newHome).(*tlv.EndpointKeepAliveAck); !ok || ack.PEID != 42 {
			t.Fatalf("PE answered the H=1 keep-alive with %#v", ack)
		}
		synctest.Wait()
		var changed bool
		for len(events) > 0 {
			if e := <-events; e.Kind == PEEventHomeChanged && e.ServerID == 0xb {
				changed = true
			}
		}
		if !changed || pe.Stats().HomeChanged == 0 {
			t.Errorf("no PEEventHomeChanged to 0xb (stats %+v)", pe.Stats())
		}
		old.mu.Lock()
		oldConn := old.conns[0]
		old.mu.Unlock()
		if _, err := oldConn.Recv(ctx); !errors.Is(err, transport.ErrPeerClosed) && !errors.Is(err, transport.ErrClosed) {
			t.Errorf("old home association after the takeover: %v, want it closed", err)
		}
		dereg := make(chan error, 1)
		go func() { dereg <- pe.Deregister(ctx) }()
		if m, ok := recvASAP(t, newHome).(*tlv.Deregistration); !ok || m.PEID != 42 {
			t.Fatalf("after the takeover the new home got %#v, want the PE's deregistration", m)
		}
		sendASAP(t, newHome, &tlv.DeregistrationResponse{PoolHandle: []byte("echo"), PEID: 42})
		if err := <-dereg; err != nil {
			t.Errorf("Deregister through the new home: %v", err)
		}
	})
}

// The associations registrars open to the PE that are not its home are
// bounded by MaxAccepted: one more aborts the oldest; the home is kept.
// A negative MaxAccepted turns the endpoint off (the PE accepts nothing,
// as before).
func TestPEMaxAccepted(t *testing.T) {
	leakcheck.Check(t)
	synctest.Test(t, func(t *testing.T) {
		n := memnet.New(1)
		defer n.Close()
		pe, _, seen := endpointPE(t, n, PEConfig{MaxAccepted: 2})
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		other := n.NewNode()
		var cs []transport.Conn
		for range 3 {
			c, err := other.Dial(ctx, seen)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			cs = append(cs, c)
			synctest.Wait()
		}
		if _, err := cs[0].Recv(ctx); !errors.Is(err, transport.ErrAssociationLost) {
			t.Errorf("oldest of 3 idle associations with MaxAccepted 2: %v, want it aborted", err)
		}
		for i, c := range cs[1:] {
			sendASAP(t, c, &tlv.EndpointKeepAlive{ServerID: 0xb, PoolHandle: []byte("other"), PEID: 42, HasPEID: true})
			short, cancel := context.WithTimeout(ctx, time.Second)
			if _, err := c.Recv(short); !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("association %d: %v, want it open (and a keep-alive for another pool unanswered)", i+1, err)
			}
			cancel()
		}
		if !pe.Registered() {
			t.Error("PE lost its registration to idle associations")
		}

		off, _, seen := endpointPE(t, n, PEConfig{MaxAccepted: -1})
		if a := off.EndpointAddr(); a.IsValid() {
			t.Errorf("EndpointAddr with MaxAccepted -1 = %v, want none", a)
		}
		if c, err := other.Dial(ctx, seen); !errors.Is(err, memnet.ErrRefused) {
			if c != nil {
				c.Close()
			}
			t.Errorf("dial to a PE without endpoint: %v, want refused", err)
		}
	})
}
