package enrp_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/go-rserpool/rserpool/enrp"
	"github.com/go-rserpool/rserpool/policy"
	"github.com/go-rserpool/rserpool/tlv"
	"github.com/go-rserpool/rserpool/transport"
	"github.com/go-rserpool/rserpool/transport/memnet"
	"github.com/go-rserpool/rserpool/transport/sctp"
)

const (
	benchPEs      = 10000 // PEs in the registrar's handlespace
	benchPEAssocs = 20    // associations that register them
	benchClients  = 64    // concurrent pool users
)

// benchNet gives the registrar's transport and address, and a transport
// per client (memnet: one node each; sctp: one shared transport).
type benchNet struct {
	name  string
	setup func(b *testing.B) (reg transport.Transport, at transport.Addr, client func() transport.Transport)
}

var benchNets = []benchNet{
	{name: "memnet", setup: func(b *testing.B) (transport.Transport, transport.Addr, func() transport.Transport) {
		n := memnet.New(1)
		b.Cleanup(func() { n.Close() })
		reg := n.NewNode()
		return reg, reg.Addr(transport.PortASAP), func() transport.Transport { return n.NewNode() }
	}},
	{name: "sctp", setup: func(b *testing.B) (transport.Transport, transport.Addr, func() transport.Transport) {
		tr := sctp.New(sctp.Config{})
		at := transport.Addr{Kind: transport.KindSCTPUDP, AddrPort: netip.MustParseAddrPort("127.0.0.1:0")}
		return tr, at, func() transport.Transport { return tr }
	}},
}

// startRegistrar runs a registrar for the benchmark. Keep-alives are
// spaced out so that the clients need not answer them, and the limits per
// association and per source are off: over loopback SCTP every PE and
// client comes from 127.0.0.1, and none of them is an attacker.
func startRegistrar(b *testing.B, tr transport.Transport, at transport.Addr, mod func(*enrp.Config)) *enrp.Registrar {
	cfg := enrp.Config{Transport: tr, ListenAddr: at, ASAP: enrp.ASAPConfig{
		KeepAliveInterval: time.Hour, MaxPEsPerAssoc: enrp.Unlimited, MaxPEsPerSource: enrp.Unlimited,
		MaxPoolsPerAssoc: enrp.Unlimited, MaxPoolsPerSource: enrp.Unlimited, MaxEURate: enrp.Unlimited,
	}}
	if mod != nil {
		mod(&cfg)
	}
	r, err := enrp.New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
	b.Cleanup(func() { cancel(); r.Close(); <-done })
	return r
}

type benchConn struct {
	c   transport.Conn
	ctx context.Context
}

func benchDial(b *testing.B, tr transport.Transport, at transport.Addr) benchConn {
	ctx := context.Background()
	c, err := tr.Dial(ctx, at)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	return benchConn{c: c, ctx: ctx}
}

func (bc benchConn) send(b []byte) error {
	return bc.c.Send(bc.ctx, transport.Message{PPID: transport.PPIDASAP, Data: b})
}

// recvType reads messages until one of type t arrives.
func (bc benchConn) recvType(t tlv.ASAPType) ([]byte, error) {
	for {
		m, err := bc.c.Recv(bc.ctx)
		if err != nil {
			return nil, err
		}
		if len(m.Data) > 0 && tlv.ASAPType(m.Data[0]) == t {
			return m.Data, nil
		}
	}
}

func registration(handle string, id uint32, ip netip.Addr, pt policy.Type, load uint32) []byte {
	b, err := tlv.Marshal(&tlv.Registration{
		PoolHandle: tlv.PoolHandle(handle),
		PE: tlv.PoolElement{
			ID: id, RegistrationLife: 3600000,
			UserTransport: tlv.NewSCTPTransport(uint16(1000+id%60000), tlv.TransportUseDataOnly, ip),
			Policy:        policy.Encode(pt, policy.Values{Load: load}),
		},
	})
	if err != nil {
		panic(err)
	}
	return b
}

// fill registers benchPEs PEs in pool "bench" over benchPEAssocs
// associations (fillN) and checks that the registrar holds them all.
func fill(b *testing.B, r *enrp.Registrar, client func() transport.Transport) {
	fillN(b, r, client, benchPEs, benchPEAssocs, 0)
	if got := r.Stats().PEs; got != benchPEs {
		b.Fatalf("registrar holds %d PEs, want %d", got, benchPEs)
	}
}

// lockstep runs one operation on every worker at once per b.Loop
// iteration, as transporttest.BenchmarkRoundTrip does, and reports the
// operations per second over all workers as unit.
func lockstep(b *testing.B, workers []func() error, unit string) {
	n := len(workers)
	start := make([]chan struct{}, n)
	done := make(chan error, n)
	var wg sync.WaitGroup
	for i, w := range workers {
		start[i] = make(chan struct{}, 1)
		wg.Go(func() {
			for range start[i] {
				done <- w()
			}
		})
	}
	defer func() {
		for _, ch := range start {
			close(ch)
		}
		wg.Wait()
	}()
	b.ReportAllocs()
	for b.Loop() {
		for _, ch := range start {
			ch <- struct{}{}
		}
		for range n {
			if err := <-done; err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(b.N)*float64(n)/b.Elapsed().Seconds(), unit)
}

// BenchmarkRegistrarResolve measures handle resolutions (RFC 5352 §3.5,
// 3 PEs each, round robin) per second against a registrar holding 10,000
// PEs, from 64 concurrent pool users. Compare "resolutions/s" with
// "msgs/s" of the transport's BenchmarkRoundTrip/assocs=64.
func BenchmarkRegistrarResolve(b *testing.B) {
	for _, bn := range benchNets {
		b.Run("transport="+bn.name, func(b *testing.B) {
			tr, at, client := bn.setup(b)
			r := startRegistrar(b, tr, at, nil)
			fill(b, r, client)
			req, err := tlv.Marshal(&tlv.HandleResolution{PoolHandle: tlv.PoolHandle("bench")})
			if err != nil {
				b.Fatal(err)
			}
			workers := make([]func() error, benchClients)
			for i := range workers {
				bc := benchDial(b, client(), r.Addr())
				workers[i] = func() error {
					if err := bc.send(req); err != nil {
						return err
					}
					m, err := bc.c.Recv(bc.ctx)
					if err != nil {
						return err
					}
					if len(m.Data) < 4 || tlv.ASAPType(m.Data[0]) != tlv.ASAPHandleResolutionResponse {
						return fmt.Errorf("answer %x", m.Data[:min(len(m.Data), 8)])
					}
					return nil
				}
			}
			lockstep(b, workers, "resolutions/s")
			if d := r.Stats().ASAP.Dropped; d != 0 {
				b.Errorf("%d messages dropped by flood protection", d)
			}
		})
	}
}

// BenchmarkRegistrarRegister measures registrations (RFC 5352 §3.2) per
// second over memnet from 64 PE associations, each cycling through 100 PE
// identifiers of a Least Used pool (the first round creates PEs, later
// ones re-register them with a new load, which re-sorts the pool).
func BenchmarkRegistrarRegister(b *testing.B) {
	bn := benchNets[0]
	tr, at, client := bn.setup(b)
	r := startRegistrar(b, tr, at, func(c *enrp.Config) {
		c.ASAP.AssocRate = enrp.Unlimited
		c.Handlespace.MaxPEs = 1 << 20
	})
	const ids = 100
	workers := make([]func() error, benchClients)
	for w := range workers {
		bc := benchDial(b, client(), r.Addr())
		ip := bc.c.LocalAddr().AddrPort.Addr()
		msgs := make([][]byte, ids*2)
		for i := range msgs {
			msgs[i] = registration("reg", uint32(w*ids+i%ids+1), ip, policy.LeastUsed, uint32(i)*1000)
		}
		k := 0
		workers[w] = func() error {
			if err := bc.send(msgs[k%len(msgs)]); err != nil {
				return err
			}
			k++
			m, err := bc.recvType(tlv.ASAPRegistrationResponse)
			if err != nil {
				return err
			}
			if m[1]&tlv.FlagRegistrationReject != 0 {
				return errors.New("registration refused")
			}
			return nil
		}
	}
	lockstep(b, workers, "registrations/s")
}

// BenchmarkCoreResolve measures the registrar's own handle resolution
// path, without a transport: the Core answers an ASAP_HANDLE_RESOLUTION
// (RFC 5352 §3.5) for a pool of 10,000 PEs and the host encodes the
// response, as the Registrar's driver does. items=3 is the default count
// (round robin, as BenchmarkRegistrarResolve), items=16 asks for 16 PEs
// with the Handle Resolution Option (RFC 5352 §2.2.5) from a Least Used
// pool.
func BenchmarkCoreResolve(b *testing.B) {
	for _, tc := range []struct {
		items int
		pt    policy.Type
	}{{3, policy.RoundRobin}, {16, policy.LeastUsed}} {
		b.Run(fmt.Sprintf("items=%d", tc.items), func(b *testing.B) {
			c, err := enrp.NewCore(enrp.Config{ServerID: 0x5e4e4001, ASAP: enrp.ASAPConfig{
				KeepAliveInterval: time.Hour, MaxPEsPerAssoc: enrp.Unlimited, MaxPEsPerSource: enrp.Unlimited,
				MaxPoolsPerAssoc: enrp.Unlimited, MaxPoolsPerSource: enrp.Unlimited, MaxHRRate: enrp.Unlimited,
				AssocRate: enrp.Unlimited,
			}})
			if err != nil {
				b.Fatal(err)
			}
			now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
			mem := func(ip netip.Addr, port uint16) transport.Addr {
				return transport.Addr{Kind: transport.KindMem, AddrPort: netip.AddrPortFrom(ip, port)}
			}
			local := mem(netip.MustParseAddr("10.0.0.1"), transport.PortASAP)
			c.HandleTimeout(now)
			c.Outbox()
			for a := range benchPEAssocs {
				ip := netip.AddrFrom4([4]byte{10, 0, 1, byte(a + 1)})
				id := enrp.AssocID(a + 1)
				c.HandleAccepted(now, id, enrp.AssocInfo{Local: local, Remote: mem(ip, 40000)})
				for i := a; i < benchPEs; i += benchPEAssocs {
					c.HandleASAP(now, id, registration("bench", uint32(i+1), ip, tc.pt, uint32(i%100)*1000))
					for _, o := range c.Outbox() {
						if s, ok := o.(enrp.SendASAP); ok && s.Msg.ASAPType() == tlv.ASAPRegistrationResponse {
							if r := s.Msg.(*tlv.RegistrationResponse); r.Reject {
								b.Fatalf("registration refused: %v", r.Error)
							}
						}
					}
				}
			}
			if got := c.Owned(); got != benchPEs {
				b.Fatalf("core holds %d PEs, want %d", got, benchPEs)
			}
			const pu = enrp.AssocID(1000)
			c.HandleAccepted(now, pu, enrp.AssocInfo{Local: local, Remote: mem(netip.MustParseAddr("10.0.2.1"), 40000)})
			req, err := tlv.Marshal(&tlv.HandleResolution{PoolHandle: tlv.PoolHandle("bench"), HasItems: true, Items: uint32(tc.items)})
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				c.HandleASAP(now, pu, req)
				outs := c.Outbox()
				if len(outs) != 1 {
					b.Fatalf("%d outputs for one resolution", len(outs))
				}
				for _, o := range outs {
					s, ok := o.(enrp.SendASAP)
					if !ok {
						b.Fatalf("output %T", o)
					}
					// The driver's encoding: a buffer the association owns.
					out, err := tlv.Append(make([]byte, 0, s.Msg.Len()), s.Msg)
					if err != nil || len(out) < 44*tc.items || tlv.ASAPType(out[0]) != tlv.ASAPHandleResolutionResponse {
						b.Fatalf("answer %d bytes, %v", len(out), err)
					}
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "resolutions/s")
		})
	}
}
