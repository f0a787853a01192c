package enrp

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"testing"
	"testing/synctest"
	"time"

	"github.com/go-rserpool/rserpool/asap"
	"github.com/go-rserpool/rserpool/internal/leakcheck"
	"github.com/go-rserpool/rserpool/policy"
	"github.com/go-rserpool/rserpool/tlv"
	"github.com/go-rserpool/rserpool/transport"
	"github.com/go-rserpool/rserpool/transport/memnet"
	"github.com/go-rserpool/rserpool/transport/sctp"
)

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// client is a hand-driven ASAP endpoint: it sends the messages a test
// builds and reads what the registrar answers.
type client struct {
	t testing.TB
	c transport.Conn
}

func dial(t testing.TB, ctx context.Context, tr transport.Transport, at transport.Addr) *client {
	t.Helper()
	c, err := tr.Dial(ctx, at)
	if err != nil {
		t.Fatalf("dial %v: %v", at, err)
	}
	t.Cleanup(func() { c.Close() })
	return &client{t: t, c: c}
}

func (c *client) send(ctx context.Context, m tlv.ASAPMessage) {
	c.t.Helper()
	b, err := tlv.Marshal(m)
	if err != nil {
		c.t.Fatal(err)
	}
	if err := c.c.Send(ctx, transport.Message{PPID: transport.PPIDASAP, Data: b}); err != nil {
		c.t.Fatalf("send %T: %v", m, err)
	}
}

// recvWithin returns the next message, or an error when none comes
// within d.
func (c *client) recvWithin(ctx context.Context, d time.Duration) (tlv.ASAPMessage, error) {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	m, err := c.c.Recv(ctx)
	if err != nil {
		return nil, err
	}
	return tlv.ParseASAP(m.Data)
}

func recvAs[M tlv.ASAPMessage](c *client, ctx context.Context) M {
	c.t.Helper()
	m, err := c.recvWithin(ctx, 10*time.Second)
	if err != nil {
		c.t.Fatalf("recv: %v", err)
	}
	v, ok := m.(M)
	if !ok {
		c.t.Fatalf("got %T, want %T", m, *new(M))
	}
	return v
}

// registration builds an ASAP_REGISTRATION for a round-robin PE whose user
// transport is the client's own address, port 7000.
func (c *client) registration(handle string, id uint32, life time.Duration) *tlv.Registration {
	ip := c.c.LocalAddr().AddrPort.Addr()
	return &tlv.Registration{
		PoolHandle: tlv.PoolHandle(handle),
		PE: tlv.PoolElement{
			ID:               id,
			RegistrationLife: int32(life / time.Millisecond),
			UserTransport:    tlv.NewSCTPTransport(7000, tlv.TransportUseDataOnly, ip),
			Policy:           policy.Encode(policy.RoundRobin, policy.Values{}),
		},
	}
}

// waitFor blocks on the client's association (it must stay silent) until
// cond holds, for at most limit.
func waitFor(t testing.TB, ctx context.Context, idle *client, limit time.Duration, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(limit); !cond(); {
		if time.Now().After(end) {
			t.Fatal("condition not reached in time")
		}
		if m, err := idle.recvWithin(ctx, 50*time.Millisecond); err == nil {
			t.Fatalf("unexpected %T", m)
		}
	}
}

// scenario runs RFC 5352 §3.2-3.7 end to end against a running
// registrar: register, resolve, keep-alive, deregister, removal on
// keep-alive timeout and on association loss.
func scenario(t *testing.T, ctx context.Context, r *Registrar, peTr, puTr transport.Transport, ka time.Duration) {
	pe := dial(t, ctx, peTr, r.Addr())
	pe.send(ctx, pe.registration("echo", 1, time.Minute))
	if resp := recvAs[*tlv.RegistrationResponse](pe, ctx); resp.Reject || resp.PEID != 1 {
		t.Fatalf("registration: %+v", resp)
	}

	// §3.5: the pool user resolves the handle.
	pu := dial(t, ctx, puTr, r.Addr())
	pu.send(ctx, &tlv.HandleResolution{PoolHandle: tlv.PoolHandle("echo")})
	hr := recvAs[*tlv.HandleResolutionResponse](pu, ctx)
	if hr.Error != nil || len(hr.PEs) != 1 || hr.PEs[0].ID != 1 || hr.PEs[0].HomeServerID != r.ServerID() {
		t.Fatalf("resolution: %+v", hr)
	}
	if got, want := hr.PEs[0].UserTransport.Addrs[0], pe.c.LocalAddr().AddrPort.Addr(); got != want {
		t.Errorf("resolved address %v, want %v", got, want)
	}
	pu.send(ctx, &tlv.HandleResolution{PoolHandle: tlv.PoolHandle("none")})
	if hr := recvAs[*tlv.HandleResolutionResponse](pu, ctx); hr.Error.First() != tlv.CauseUnknownPoolHandle {
		t.Errorf("unknown pool: %+v", hr)
	}

	pools, err := r.Pools(ctx)
	if err != nil || len(pools) != 1 || string(pools[0].Handle) != "echo" || pools[0].PEs != 1 || pools[0].Policy != policy.RoundRobin {
		t.Fatalf("Pools = %+v, %v", pools, err)
	}
	pes, err := r.PoolElements(ctx, []byte("echo"))
	if err != nil || len(pes) != 1 || !pes[0].Owned || pes[0].Remote.AddrPort.Addr() != pe.c.LocalAddr().AddrPort.Addr() {
		t.Fatalf("PoolElements = %+v, %v", pes, err)
	}

	// §3.7: keep-alives come every interval and are acknowledged.
	for range 2 {
		ka := recvAs[*tlv.EndpointKeepAlive](pe, ctx)
		if ka.ServerID != r.ServerID() || string(ka.PoolHandle) != "echo" {
			t.Fatalf("keep-alive %+v", ka)
		}
		pe.send(ctx, &tlv.EndpointKeepAliveAck{PoolHandle: ka.PoolHandle, PEID: 1})
	}

	// §3.4: deregistration.
	pe.send(ctx, &tlv.Deregistration{PoolHandle: tlv.PoolHandle("echo"), PEID: 1})
	var dr *tlv.DeregistrationResponse
	for dr == nil { // a keep-alive may cross the deregistration
		m, err := pe.recvWithin(ctx, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		dr, _ = m.(*tlv.DeregistrationResponse)
	}
	if dr.Error != nil || r.Stats().PEs != 0 {
		t.Fatalf("deregistration: %+v, %d PEs", dr, r.Stats().PEs)
	}

	// §3.7: a PE that stops answering keep-alives is removed.
	pe.send(ctx, pe.registration("echo", 2, time.Minute))
	recvAs[*tlv.RegistrationResponse](pe, ctx)
	recvAs[*tlv.EndpointKeepAlive](pe, ctx) // not answered
	waitFor(t, ctx, pu, 20*ka, func() bool { return r.Stats().PEs == 0 })
	if s := r.Stats(); s.ASAP.KeepAliveTimeouts != 1 || s.Owned != 0 {
		t.Errorf("stats after keep-alive timeout: %+v", s)
	}

	// §3.7: losing the association removes its PEs.
	pe2 := dial(t, ctx, peTr, r.Addr())
	pe2.send(ctx, pe2.registration("echo", 3, time.Minute))
	recvAs[*tlv.RegistrationResponse](pe2, ctx)
	if r.Stats().PEs != 1 {
		t.Fatalf("PEs %d", r.Stats().PEs)
	}
	pe2.c.Close()
	waitFor(t, ctx, pu, 10*time.Second, func() bool { return r.Stats().PEs == 0 })
	if got := r.Stats().ASAP.AssocLostRemoved; got != 1 {
		t.Errorf("AssocLostRemoved %d", got)
	}
}

func TestRegistrarMemnet(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := t.Context()
		net := memnet.New(1)
		defer net.Close()
		regNode := net.NewNode()
		group := netip.MustParseAddrPort("239.0.0.50:3863")
		regAnn, err := net.JoinGroup(regNode, group)
		if err != nil {
			t.Fatal(err)
		}
		defer regAnn.Close()
		listen, err := net.JoinGroup(net.NewNode(), group)
		if err != nil {
			t.Fatal(err)
		}
		defer listen.Close()
		r, err := New(Config{
			Transport:  regNode,
			ListenAddr: regNode.Addr(transport.PortASAP),
			Announcer:  regAnn,
			ASAP:       ASAPConfig{KeepAliveInterval: 2 * time.Second, KeepAliveTimeout: time.Second},
			Logger:     testLogger(t),
		})
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- r.Run(ctx) }()
		defer func() {
			r.Close()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		}()

		// §3.6: the registrar announces itself with its ASAP address.
		b, _, err := listen.Recv(ctx)
		if err != nil {
			t.Fatal(err)
		}
		m, err := tlv.ParseASAP(b)
		if err != nil {
			t.Fatal(err)
		}
		sa, ok := m.(*tlv.ServerAnnounce)
		if !ok || sa.ServerID != r.ServerID() || sa.ServerID == 0 || len(sa.Transports) != 1 {
			t.Fatalf("announce %+v", m)
		}
		if a, _ := asap.AddrOf(sa.Transports[0], transport.KindMem); a != r.Addr() {
			t.Errorf("announced %v, listening at %v", a, r.Addr())
		}
		scenario(t, ctx, r, net.NewNode(), net.NewNode(), 3*time.Second)
	})
}

func TestRegistrarSCTP(t *testing.T) {
	if testing.Short() {
		t.Skip("real SCTP over loopback")
	}
	leakcheck.Check(t)
	ctx := t.Context()
	tr := sctp.New(sctp.Config{})
	r, err := New(Config{
		Transport:  tr,
		ListenAddr: transport.Addr{Kind: transport.KindSCTPUDP, AddrPort: netip.MustParseAddrPort("127.0.0.1:0")},
		ASAP:       ASAPConfig{KeepAliveInterval: 300 * time.Millisecond, KeepAliveTimeout: 300 * time.Millisecond},
		Logger:     testLogger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() {
		r.Close()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	scenario(t, ctx, r, tr, tr, 600*time.Millisecond)
}

func TestRegistrarConfig(t *testing.T) {
	net := memnet.New(1)
	defer net.Close()
	nd := net.NewNode()
	for _, cfg := range []Config{
		{},
		{Transport: nd},
		{Transport: nd, ListenAddr: nd.Addr(1), SendQueue: -1},
		{Transport: nd, ListenAddr: nd.Addr(2), ASAP: ASAPConfig{MaxBadPEReport: -1}},
		{Transport: nd, ListenAddr: nd.Addr(3), ASAP: ASAPConfig{AnnounceAddrs: []transport.Addr{{}}}},
	} {
		if _, err := New(cfg); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%+v: %v", cfg, err)
		}
	}
	// The failed constructors released their listeners.
	r, err := New(Config{Transport: nd, ListenAddr: nd.Addr(2), ServerID: 77})
	if err != nil {
		t.Fatal(err)
	}
	if r.ServerID() != 77 {
		t.Errorf("ServerID %d", r.ServerID())
	}
	if _, err := r.Pools(t.Context()); !errors.Is(err, ErrNotRunning) {
		t.Errorf("Pools before Run: %v", err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if err := r.Run(t.Context()); !errors.Is(err, ErrClosed) {
		t.Errorf("Run after Close: %v", err)
	}
	// A random server ID is never 0 (RFC 5353 §3.1).
	r2, err := New(Config{Transport: nd, ListenAddr: nd.Addr(4)})
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	if r2.ServerID() == 0 {
		t.Error("zero server ID")
	}
}
