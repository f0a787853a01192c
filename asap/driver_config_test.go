package asap

import (
	"context"
	"errors"
	"net/netip"
	"testing"
	"testing/synctest"
	"time"

	"github.com/go-rserpool/rserpool/internal/leakcheck"
	"github.com/go-rserpool/rserpool/tlv"
	"github.com/go-rserpool/rserpool/transport"
)

// A zero Kind in PUConfig and PEConfig is taken from the transport
// (transport.KindReporter): over memnet, PE user transports and announced
// registrars map to memnet addresses. (Before: the PU mapped them to
// sctp-udp and every Dial failed with "not a memnet address"; the PE
// never reached an announced registrar.)
func TestDriverKindFromTransport(t *testing.T) {
	leakcheck.Check(t)
	synctest.Test(t, func(t *testing.T) {
		p := newPUNet(t, 1)
		defer p.close()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()

		pu, err := NewPoolUser(PUConfig{Registrars: []transport.Addr{p.reg.l.Addr()}, Logger: testLogger(t)}, p.n.NewNode())
		if err != nil {
			t.Fatal(err)
		}
		defer pu.Close()
		c, pe, err := pu.Dial(ctx, []byte("echo"))
		if err != nil {
			t.Fatalf("Dial with a zero Kind over memnet: %v", err)
		}
		c.Close()
		if pe.ID != 1 {
			t.Fatalf("dialled PE %d", pe.ID)
		}

		// A PE that knows its registrar only from announces (RFC 5352 §3.6).
		group := netip.MustParseAddrPort("239.0.0.50:3863")
		regNode := p.n.NewNode()
		regL, err := regNode.Listen(regNode.Addr(transport.PortASAP))
		if err != nil {
			t.Fatal(err)
		}
		reg := startFakeRegistrar(t, regL, 0x55)
		defer reg.close()
		send, err := p.n.JoinGroup(regNode, group)
		if err != nil {
			t.Fatal(err)
		}
		defer send.Close()
		peNode := p.n.NewNode()
		recv, err := p.n.JoinGroup(peNode, group)
		if err != nil {
			t.Fatal(err)
		}
		ut, _ := TransportParam(peNode.Addr(7000), tlv.TransportUseDataOnly)
		el, err := NewPoolElement(PEConfig{PoolHandle: []byte("echo"), UserTransport: ut, Logger: testLogger(t)}, peNode, WithAnnouncer(recv))
		if err != nil {
			t.Fatal(err)
		}
		defer el.Close()
		b, _ := tlv.Marshal(&tlv.ServerAnnounce{ServerID: 0x55})
		if err := send.Send(ctx, b); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		short, cancel2 := context.WithTimeout(ctx, 10*time.Second)
		defer cancel2()
		if err := el.Register(short); err != nil {
			t.Fatalf("Register via an announced registrar with a zero Kind: %v", err)
		}
		el.Close()
		pu.Close()
	})
}

// RFC 5352 §3.6: an endpoint finds registrars by configuration or by
// announces. With neither, NewPoolElement and NewPoolUser fail with
// ErrInvalidConfig. (Before: both were created; Register hung until the
// caller's context ended, Resolve failed only after T1.)
func TestDriverNeedsRegistrarsOrAnnouncer(t *testing.T) {
	leakcheck.Check(t)
	synctest.Test(t, func(t *testing.T) {
		p := newPUNet(t, 0)
		defer p.close()
		node := p.n.NewNode()
		ut, _ := TransportParam(node.Addr(7000), tlv.TransportUseDataOnly)
		if _, err := NewPoolElement(PEConfig{PoolHandle: []byte("p"), UserTransport: ut}, node); !errors.Is(err, ErrInvalidConfig) {
			t.Fatalf("NewPoolElement without registrars or announcer: %v", err)
		}
		if _, err := NewPoolUser(PUConfig{}, node); !errors.Is(err, ErrInvalidConfig) {
			t.Fatalf("NewPoolUser without registrars or announcer: %v", err)
		}
		if _, err := NewPoolUser(PUConfig{Registrars: []transport.Addr{{}}}, node); !errors.Is(err, ErrInvalidConfig) {
			t.Fatalf("NewPoolUser with an invalid registrar address: %v", err)
		}
		a, err := p.n.JoinGroup(node, netip.MustParseAddrPort("239.0.0.50:3863"))
		if err != nil {
			t.Fatal(err)
		}
		pu, err := NewPoolUser(PUConfig{}, node, WithAnnouncer(a))
		if err != nil {
			t.Fatalf("NewPoolUser with an announcer: %v", err)
		}
		pu.Close()
	})
}
