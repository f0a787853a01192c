package e2e

import (
	"context"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-rserpool/rserpool/asap"
	"github.com/go-rserpool/rserpool/enrp"
	"github.com/go-rserpool/rserpool/internal/leakcheck"
	"github.com/go-rserpool/rserpool/policy"
	"github.com/go-rserpool/rserpool/tlv"
	"github.com/go-rserpool/rserpool/transport"
	"github.com/go-rserpool/rserpool/transport/sctp"
)

// TestLoopbackAttacksHonestServed runs the attacks of RFC 5355 §3 together
// against a registrar with its default configuration, over user-space
// SCTP on loopback: from 127.0.0.1, false ASAP_ENDPOINT_UNREACHABLE
// reports about the honest PE from several associations (RFC 5355 §3.4),
// a 60 KiB registration in the honest pool (§3.3), a pool-creation flood
// (§3.3), and a flood of raw SCTP INITs, each at a fixed rate. The honest PE and PU run from
// 127.0.0.2. Throughout, every resolution of the honest PU must name the
// honest PE, the PE must stay registered, and afterwards every goroutine
// must end.
func TestLoopbackAttacksHonestServed(t *testing.T) {
	if testing.Short() {
		t.Skip("real SCTP over loopback")
	}
	leakcheck.Check(t)
	const handle = "honest"
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()

	regTp := sctp.New(sctp.Config{ShutdownTimeout: time.Second})
	cfg := enrp.Config{Transport: regTp, ListenAddr: loopbackAny}
	events := track(t, &cfg, 4096)
	r := startRegistrar(t, cfg)

	second := netip.MustParseAddr("127.0.0.2")
	honestTp := sctp.New(sctp.Config{ShutdownTimeout: time.Second, LocalAddr: second})
	honestAt := transport.Addr{Kind: transport.KindSCTPUDP, AddrPort: netip.AddrPortFrom(second, 0)}
	pe := startPE(t, "honest-pe", honestTp, honestAt, honestTp, asap.PEConfig{PoolHandle: []byte(handle), Registrars: []transport.Addr{r.Addr()}})
	if err := pe.Register(ctx); err != nil {
		t.Fatal(err)
	}
	pu := newPU(t, asap.PUConfig{Registrars: []transport.Addr{r.Addr()}, StaleCache: -1}, honestTp)

	atkTp := sctp.New(sctp.Config{ShutdownTimeout: time.Second})
	actx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var sent struct{ reports, pools, inits atomic.Int64 }

	// False reports (RFC 5355 §3.4): four associations, each reporting
	// the honest PE as fast as the registrar takes them.
	for range 4 {
		c, err := atkTp.Dial(ctx, r.Addr())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Abort()
		wg.Go(func() {
			b := mustMarshal(t, &tlv.EndpointUnreachable{PoolHandle: tlv.PoolHandle(handle), PEID: pe.ID()})
			pace(actx, reportsPerMs, func() bool {
				if c.Send(actx, transport.Message{PPID: transport.PPIDASAP, Data: b}) != nil {
					return false
				}
				sent.reports.Add(1)
				return true
			})
		})
		wg.Go(func() { drain(actx, c) })
	}

	// Registration flooding (RFC 5355 §3.3): a PE of 60 KiB in the honest
	// pool, then pools created as fast as possible from four associations.
	for a := range 4 {
		c, err := atkTp.Dial(ctx, r.Addr())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Abort()
		ip := c.LocalAddr().AddrPort.Addr()
		wg.Go(func() {
			if a == 0 {
				m := attackerPE(handle, 0xbad, ip)
				m.PE.Unknown = []tlv.RawParam{{Type: 0x8abc, Value: make([]byte, 60<<10), Index: 9}}
				if b, err := tlv.Marshal(m); err == nil {
					_ = c.Send(actx, transport.Message{PPID: transport.PPIDASAP, Data: b})
				}
			}
			i := 0
			pace(actx, poolsPerMs, func() bool {
				i++
				b := mustMarshal(t, attackerPE(fmt.Sprintf("flood-%d-%d", a, i), uint32(i), ip))
				if i > 4000 || c.Send(actx, transport.Message{PPID: transport.PPIDASAP, Data: b}) != nil {
					return false
				}
				sent.pools.Add(1)
				return true
			})
		})
		wg.Go(func() { drain(actx, c) })
	}

	// An INIT flood from 127.0.0.1, a new association each time.
	udp, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(r.Addr().AddrPort))
	if err != nil {
		t.Fatal(err)
	}
	defer udp.Close()
	wg.Go(func() {
		rng := rand.New(rand.NewPCG(1, 2))
		pace(actx, initsPerMs, func() bool {
			if _, err := udp.Write(rawInit(rng)); err == nil {
				sent.inits.Add(1)
			}
			return true
		})
	})

	// The honest PU resolves throughout; every answer must name the PE.
	var failures, total int
	var slowest time.Duration
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) || total < 10 {
		start := time.Now()
		rctx, rcancel := context.WithTimeout(ctx, resolveLimit)
		pes, err := pu.Resolve(rctx, []byte(handle))
		rcancel()
		slowest = max(slowest, time.Since(start))
		total++
		if err != nil || !containsPE(pes, pe.ID()) {
			failures++
			t.Logf("resolution %d: %d PEs, err %v", total, len(pes), err)
		}
	}
	stop()
	wg.Wait()

	st := r.Stats()
	t.Logf("during the attacks: %d honest resolutions, %d failed, slowest %v; sent %d false reports, %d pool registrations, %d INITs; registrar: %d pools, %d reports dropped over rate, %d repeated, %d checks, %d cleared",
		total, failures, slowest.Round(time.Millisecond), sent.reports.Load(), sent.pools.Load(), sent.inits.Load(), st.Pools, st.ASAP.EURateDropped, st.ASAP.UnreachableRepeated, st.ASAP.UnreachableChecks, st.ASAP.UnreachableCleared)
	if failures != 0 {
		t.Errorf("%d of %d honest resolutions failed", failures, total)
	}
	if !pe.Registered() {
		t.Error("the honest PE lost its registration")
	}
	for _, ev := range events.seen() {
		if ev.PEID == pe.ID() && ev.Kind == enrp.EventRemoved {
			t.Errorf("the honest PE was removed: %v", ev.Reason)
		}
	}
	if st.Pools > enrp.DefaultMaxPoolsPerSource+1 {
		t.Errorf("the flood created %d pools, more than the per-source cap %d", st.Pools, enrp.DefaultMaxPoolsPerSource)
	}
	if st.ASAP.UnreachableRemoved != 0 {
		t.Errorf("%d PEs removed on reports", st.ASAP.UnreachableRemoved)
	}
}

// The attackers' rates, per millisecond: bounded so that the test measures
// the registrar under a known load (about 8,000 reports/s from four
// associations, 4,000 registrations/s, 2,000 INITs/s) rather than the
// speed of the attackers, which share this process and its CPUs.
const (
	reportsPerMs = 2
	poolsPerMs   = 1
	initsPerMs   = 2
	// resolveLimit bounds one honest resolution: two SCTP retransmissions
	// (RTO.Initial 1 s, doubled, RFC 9260 §16, §6.3.3) and the answer fit,
	// with room for a loaded machine (-race on two cores). The slowest
	// resolution is logged.
	resolveLimit = 10 * time.Second
)

// pace calls f n times a millisecond until ctx ends or f returns false.
func pace(ctx context.Context, n int, f func() bool) {
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		for range n {
			if !f() {
				return
			}
		}
	}
}

func attackerPE(handle string, id uint32, ip netip.Addr) *tlv.Registration {
	return &tlv.Registration{
		PoolHandle: tlv.PoolHandle(handle),
		PE: tlv.PoolElement{
			ID: id, RegistrationLife: 3600000,
			UserTransport: tlv.NewSCTPTransport(4000, tlv.TransportUseDataOnly, ip),
			Policy:        policy.Encode(policy.RoundRobin, policy.Values{}),
		},
	}
}

func mustMarshal(t *testing.T, m tlv.Message) []byte {
	b, err := tlv.Marshal(m)
	if err != nil {
		t.Error(err)
	}
	return b
}

// drain reads an attacker's association so that the registrar's answers
// do not back up.
func drain(ctx context.Context, c transport.Conn) {
	for {
		if _, err := c.Recv(ctx); err != nil {
			return
		}
	}
}

func containsPE(pes []tlv.PoolElement, id uint32) bool {
	for _, p := range pes {
		if p.ID == id {
			return true
		}
	}
	return false
}

// rawInit builds an SCTP packet carrying only an INIT chunk (RFC 9260
// §3.3.2) from a random SCTP source port, with a valid CRC32c.
func rawInit(rng *rand.Rand) []byte {
	p := make([]byte, 12+20)
	binary.BigEndian.PutUint16(p[0:], uint16(1024+rng.IntN(60000))) // source port
	binary.BigEndian.PutUint16(p[2:], 5000)                         // destination port
	p[12] = 1                                                       // INIT
	binary.BigEndian.PutUint16(p[14:], 20)
	binary.BigEndian.PutUint32(p[16:], rng.Uint32()|1) // initiate tag
	binary.BigEndian.PutUint32(p[20:], 1<<20)          // a_rwnd
	binary.BigEndian.PutUint16(p[24:], 10)             // outbound streams
	binary.BigEndian.PutUint16(p[26:], 10)             // inbound streams
	binary.BigEndian.PutUint32(p[28:], rng.Uint32())   // initial TSN
	binary.LittleEndian.PutUint32(p[8:], crc32.Checksum(p, crc32.MakeTable(crc32.Castagnoli)))
	return p
}
