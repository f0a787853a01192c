package enrp

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/netip"
	"testing"
	"testing/synctest"
	"time"

	"github.com/go-rserpool/rserpool/internal/leakcheck"
	"github.com/go-rserpool/rserpool/tlv"
	"github.com/go-rserpool/rserpool/transport"
	"github.com/go-rserpool/rserpool/transport/memnet"
)

// The driver side of ENRP peering (RFC 5353): what the Registrar does
// with the ENRP inputs and outputs of its core, over memnet in virtual
// time. synctest fails a test whose goroutines do not all end, and
// leakcheck one that leaves any behind.

// recorder returns a hook for Registrar.seen and the channel of the ENRP
// inputs it sees the driver give the core.
func recorder(t *testing.T) (<-chan driverInput, func(driverInput)) {
	ch := make(chan driverInput, 512)
	return ch, func(k driverInput) {
		select {
		case ch <- k:
		default:
			t.Errorf("too many core inputs; dropped %+v", k)
		}
	}
}

// nextCall returns the next input of the core, within an hour of virtual
// time.
func nextCall(t *testing.T, ch <-chan driverInput, kind string) driverInput {
	t.Helper()
	select {
	case k := <-ch:
		if k.kind != kind {
			t.Fatalf("core input %q (%+v), want %q", k.kind, k, kind)
		}
		return k
	case <-time.After(time.Hour):
		t.Fatalf("no %q input to the core within an hour", kind)
		return driverInput{}
	}
}

// noCall checks that the core got no further ENRP input once the bubble
// is idle.
func noCall(t *testing.T, ch <-chan driverInput) {
	t.Helper()
	synctest.Wait()
	select {
	case k := <-ch:
		t.Fatalf("unexpected core input %q: %+v", k.kind, k)
	default:
	}
}

// presence is the raw ENRP_PRESENCE (RFC 5353 §2.2.1) of server from.
func presence(t *testing.T, from uint32) []byte {
	t.Helper()
	b, err := tlv.Marshal(&tlv.Presence{ENRPHeader: tlv.ENRPHeader{SenderID: from}, Checksum: 0x4e0d})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func sendRaw(t *testing.T, c transport.Conn, ppid uint32, b []byte) {
	t.Helper()
	if err := c.Send(t.Context(), transport.Message{PPID: ppid, Data: b}); err != nil {
		t.Fatalf("send PPID %d: %v", ppid, err)
	}
}

// newPeerRig is newEventRig whose tune also gets the network; seen, if
// not nil, is the registrar's hook on the core's ENRP inputs.
func newPeerRig(t *testing.T, buf int, seen func(driverInput), tune func(*memnet.Network, *Config)) *eventRig {
	t.Helper()
	net := memnet.New(1)
	t.Cleanup(func() { net.Close() })
	nd := net.NewNode()
	g := &eventRig{t: t, net: net, events: make(chan Event, buf), done: make(chan error, 1)}
	cfg := Config{
		Transport: nd, ListenAddr: nd.Addr(transport.PortASAP),
		ASAP:   ASAPConfig{KeepAliveInterval: time.Hour, KeepAliveTimeout: time.Hour},
		Events: g.events, Logger: testLogger(t),
	}
	if tune != nil {
		tune(net, &cfg)
	}
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	g.r = r
	r.seen = seen
	go func() { g.done <- r.Run(t.Context()) }()
	t.Cleanup(g.stop)
	synctest.Wait() // Run is serving
	return g
}

// recvASAP returns the next ASAP message on c, and how many ENRP
// messages (PPID 12, each a valid one) came before it.
func recvASAP(t *testing.T, c transport.Conn) (tlv.ASAPMessage, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	for n := 0; ; n++ {
		m, err := c.Recv(ctx)
		if err != nil {
			t.Fatalf("recv: %v", err)
		}
		switch m.PPID {
		case transport.PPIDENRP:
			if _, err := tlv.ParseENRP(m.Data); err != nil {
				t.Fatalf("ENRP message that does not parse: %v", err)
			}
			continue
		case transport.PPIDASAP:
			a, err := tlv.ParseASAP(m.Data)
			if err != nil {
				t.Fatal(err)
			}
			return a, n
		}
		t.Fatalf("message with PPID %d", m.PPID)
	}
}

// inject queues outputs in the registrar's core, as if a procedure had
// produced them: the driver carries them out after that piece of work.
func inject(t *testing.T, r *Registrar, outs ...Output) {
	t.Helper()
	if err := r.do(t.Context(), func() { r.core.out = append(r.core.out, outs...) }); err != nil {
		t.Fatal(err)
	}
}

// RFC 5353 §2 and RFC 5352 §4: on one association of the ASAP listener,
// PPID 12 goes to the ENRP side of the core and PPID 11 to ASAP; any
// other PPID is dropped.
func TestDriverRoutesByPPID(t *testing.T) {
	leakcheck.Check(t)
	synctest.Test(t, func(t *testing.T) {
		calls, seen := recorder(t)
		g := newPeerRig(t, 16, seen, nil)
		ctx := t.Context()
		c := dial(t, ctx, g.net.NewNode(), g.r.Addr())

		g.register(c, "echo", 1, time.Minute, 7000) // ASAP
		sendRaw(t, c.c, transport.PPIDENRP, presence(t, 0x1111))
		sendRaw(t, c.c, 99, presence(t, 0x2222))
		// ASAP again, after both: answered on the same association
		// (behind whatever ENRP the core answers the Presence with).
		c.send(ctx, &tlv.HandleResolution{PoolHandle: tlv.PoolHandle("echo")})
		if m, enrpMsgs := recvASAP(t, c.c); m.ASAPType() != tlv.ASAPHandleResolutionResponse {
			t.Errorf("got %v (after %d ENRP messages), want the resolution's answer", m.ASAPType(), enrpMsgs)
		}

		k := nextCall(t, calls, "enrp")
		if !bytes.Equal(k.b, presence(t, 0x1111)) {
			t.Errorf("core got % x, want the presence of 0x1111", k.b)
		}
		var id AssocID
		if err := g.r.do(ctx, func() { id, _, _ = g.r.core.AssocOf(tlv.PoolHandle("echo"), 1) }); err != nil {
			t.Fatal(err)
		}
		if k.id != id || id == 0 {
			t.Errorf("ENRP on association %d, the PE registered on %d", k.id, id)
		}
		noCall(t, calls) // PPID 99 did not reach it
		// The core took the Presence in (RFC 5353 §3.2), and only it.
		if s := g.r.Stats(); s.ENRP.PresencesReceived != 1 || s.ENRP.Malformed != 0 {
			t.Errorf("ENRP counts %+v, want 1 presence received", s.ENRP)
		}
		if s := g.r.Stats(); s.ASAP.Registrations != 1 || s.ASAP.Resolutions != 1 || s.ASAP.Malformed != 0 || s.Associations != 1 {
			t.Errorf("Stats %+v", s)
		}
	})
}

// Peers.Listener: a separate ENRP listener whose associations reach the
// same core (HandleAccepted, then HandleENRP); it carries ENRP only, so
// an ASAP registration on it is not served.
func TestDriverENRPListener(t *testing.T) {
	leakcheck.Check(t)
	synctest.Test(t, func(t *testing.T) {
		calls, seen := recorder(t)
		var enrpL transport.Listener
		g := newPeerRig(t, 16, seen, func(_ *memnet.Network, c *Config) {
			nd := c.Transport.(*memnet.Node)
			var err error
			if enrpL, err = nd.Listen(nd.Addr(transport.PortENRP)); err != nil {
				t.Fatal(err)
			}
			// The host's, closed after the registrar (cleanups run last
			// first): the Registrar leaves it open.
			t.Cleanup(func() { enrpL.Close() })
			c.Peers.Listener = enrpL
		})
		ctx := t.Context()
		if got := g.r.cfg.Peers.ENRPAddrs; len(got) != 1 || got[0] != enrpL.Addr() {
			t.Errorf("Peers.ENRPAddrs %v, want the ENRP listener's %v", got, enrpL.Addr())
		}
		if g.r.ENRPAddr() != enrpL.Addr() {
			t.Errorf("ENRPAddr %v, want %v", g.r.ENRPAddr(), enrpL.Addr())
		}

		peer := dial(t, ctx, g.net.NewNode(), enrpL.Addr())
		sendRaw(t, peer.c, transport.PPIDENRP, presence(t, 0x3333))
		k := nextCall(t, calls, "enrp")
		if !bytes.Equal(k.b, presence(t, 0x3333)) || k.id == 0 {
			t.Errorf("core input %+v", k)
		}
		// The association is the core's like an ASAP one (one id space).
		pe := dial(t, ctx, g.net.NewNode(), g.r.Addr())
		g.register(pe, "echo", 1, time.Minute, 7000)
		var peID AssocID
		g.r.do(ctx, func() { peID, _, _ = g.r.core.AssocOf(tlv.PoolHandle("echo"), 1) })
		if peID == k.id {
			t.Errorf("ASAP and ENRP associations share id %d", peID)
		}
		if s := g.r.Stats(); s.Associations != 2 || s.ENRP.PresencesReceived != 1 {
			t.Errorf("Associations = %d, want 2; ENRP counts %+v, want 1 presence", s.Associations, s.ENRP)
		}

		peer.send(ctx, peer.registration("echo", 2, time.Minute))
		if m, err := peer.recvWithin(ctx, 10*time.Second); err == nil {
			t.Errorf("ENRP listener answered ASAP with %T", m)
		}
		if s := g.r.Stats(); s.PEs != 1 || s.ASAP.Registrations != 1 {
			t.Errorf("registration over the ENRP listener served: %+v", s)
		}
		noCall(t, calls)
	})
}

// Peers.ENRPAddrs is filled from the ASAP listener when there is no
// separate ENRP listener, and left alone when given.
func TestDriverENRPAddrs(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := newPeerRig(t, 1, nil, nil)
		if got := g.r.cfg.Peers.ENRPAddrs; len(got) != 1 || got[0] != g.r.Addr() {
			t.Errorf("Peers.ENRPAddrs %v, want the ASAP listener's %v", got, g.r.Addr())
		}
		if g.r.ENRPAddr() != g.r.Addr() {
			t.Errorf("ENRPAddr %v, want the ASAP listener's %v", g.r.ENRPAddr(), g.r.Addr())
		}
		given := transport.Addr{Kind: transport.KindMem, AddrPort: netip.MustParseAddrPort("10.9.9.9:9901")}
		h := newPeerRig(t, 1, nil, func(_ *memnet.Network, c *Config) { c.Peers.ENRPAddrs = []transport.Addr{given} })
		if got := h.r.cfg.Peers.ENRPAddrs; len(got) != 1 || got[0] != given {
			t.Errorf("Peers.ENRPAddrs %v, want %v as given", got, given)
		}
	})
}

// ConnectPeer: the driver dials (Config.Transport, or Peers.Transport),
// reports HandleConnected with the core's id, sends the core's SendENRP
// with PPID 12, feeds ENRP from the peer to the core under the same id,
// and ASAP too (the core dials the PEs it takes over, RFC 5353 §3.9, and
// they answer with ASAP there); a refused dial and one that times out
// (Peers.MaxTimeNoResponse) are reported with HandleConnectFailed; CloseAssoc
// ends the association.
func TestDriverConnectPeer(t *testing.T) {
	leakcheck.Check(t)
	synctest.Test(t, func(t *testing.T) {
		calls, seen := recorder(t)
		var peerTr *memnet.Node
		g := newPeerRig(t, 16, seen, func(n *memnet.Network, c *Config) {
			c.Peers.MaxTimeNoResponse = 2 * time.Second
			peerTr = n.NewNode()
			c.Peers.Transport = peerTr
		})
		ctx := t.Context()
		peerNd := g.net.NewNode()
		ln, err := peerNd.Listen(peerNd.Addr(transport.PortENRP))
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()

		const id = AssocID(1 << 63)
		inject(t, g.r, ConnectPeer{Assoc: id, Addr: ln.Addr()})
		conn, err := ln.Accept(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		k := nextCall(t, calls, "connected")
		if k.id != id || k.info.Remote != ln.Addr() || k.info.Local != conn.RemoteAddr() {
			t.Errorf("HandleConnected %+v, want id %d from %v to %v", k, id, conn.RemoteAddr(), ln.Addr())
		}
		if k.info.Local.AddrPort.Addr() != peerTr.IP() {
			t.Errorf("dialled from %v, not from Peers.Transport %v", k.info.Local, peerTr.IP())
		}
		inject(t, g.r, ConnectPeer{Assoc: id, Addr: ln.Addr()}) // a repeat: ignored

		inject(t, g.r, SendENRP{Assoc: id, Msg: &tlv.Presence{ENRPHeader: tlv.ENRPHeader{SenderID: g.r.ServerID(), ReceiverID: 0x4444}, ReplyRequired: true}})
		m, err := conn.Recv(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := tlv.ParseENRP(m.Data); m.PPID != transport.PPIDENRP || err != nil {
			t.Errorf("peer got PPID %d, %T, %v", m.PPID, got, err)
		} else if p, ok := got.(*tlv.Presence); !ok || p.SenderID != g.r.ServerID() || p.ReceiverID != 0x4444 || !p.ReplyRequired {
			t.Errorf("peer got %+v", got)
		}

		sendRaw(t, conn, transport.PPIDENRP, presence(t, 0x4444))
		if k := nextCall(t, calls, "enrp"); k.id != id || !bytes.Equal(k.b, presence(t, 0x4444)) {
			t.Errorf("core input %+v, want the presence on %d", k, id)
		}
		if s := g.r.Stats(); s.Associations != 1 {
			t.Errorf("Associations = %d, want the peer's", s.Associations)
		}
		// An Endpoint Keep Alive Ack reaches the ASAP side of the core,
		// which (with no PE taken over on this association) drops it.
		ack, _ := tlv.Marshal(&tlv.EndpointKeepAliveAck{PoolHandle: tlv.PoolHandle("echo"), PEID: 1})
		sendRaw(t, conn, transport.PPIDASAP, ack)
		noCall(t, calls)
		if s := g.r.Stats(); s.ASAP.Dropped != 1 {
			t.Errorf("ASAP on the dialled association did not reach the core: %+v", s.ASAP)
		}

		// Refused: nothing listens there.
		inject(t, g.r, ConnectPeer{Assoc: id + 1, Addr: peerNd.Addr(1)})
		if k := nextCall(t, calls, "failed"); k.id != id+1 || !errors.Is(k.err, memnet.ErrRefused) {
			t.Errorf("HandleConnectFailed %+v, want id %d refused", k, id+1)
		}
		// No answer: the dial gives up after Peers.MaxTimeNoResponse.
		far := g.net.NewNode()
		farL, _ := far.Listen(far.Addr(transport.PortENRP))
		defer farL.Close()
		g.net.Partition([]*memnet.Node{peerTr}, []*memnet.Node{far})
		start := time.Now()
		inject(t, g.r, ConnectPeer{Assoc: id + 2, Addr: farL.Addr()})
		if k := nextCall(t, calls, "failed"); k.id != id+2 || !errors.Is(k.err, context.DeadlineExceeded) {
			t.Errorf("HandleConnectFailed %+v, want id %d timed out", k, id+2)
		}
		if d := time.Since(start); d != 2*time.Second {
			t.Errorf("dial gave up after %v, want Peers.MaxTimeNoResponse 2s", d)
		}
		// Given up on by the core before it came up: no report.
		inject(t, g.r, ConnectPeer{Assoc: id + 3, Addr: farL.Addr()}, CloseAssoc{Assoc: id + 3, Abort: true})
		time.Sleep(time.Minute)
		noCall(t, calls)
		g.net.Heal()

		inject(t, g.r, CloseAssoc{Assoc: id})
		if _, err := conn.Recv(ctx); !errors.Is(err, transport.ErrPeerClosed) {
			t.Errorf("peer association after CloseAssoc: %v", err)
		}
		synctest.Wait()
		if s := g.r.Stats(); s.Associations != 0 {
			t.Errorf("Associations = %d after CloseAssoc", s.Associations)
		}
	})
}

// Without any transport to dial with (Config.Listener given, no
// Transport), a ConnectPeer fails at once, told to the core.
func TestDriverConnectPeerNoTransport(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		calls, seen := recorder(t)
		g := newPeerRig(t, 1, seen, func(_ *memnet.Network, c *Config) {
			nd := c.Transport.(*memnet.Node)
			l, err := nd.Listen(nd.Addr(transport.PortASAP))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { l.Close() })
			c.Listener, c.Transport = l, nil
		})
		inject(t, g.r, ConnectPeer{Assoc: 1 << 63, Addr: g.r.Addr()})
		if k := nextCall(t, calls, "failed"); k.id != 1<<63 || !errors.Is(k.err, errNoPeerTransport) {
			t.Errorf("HandleConnectFailed %+v", k)
		}
	})
}

// RFC 5353 §3.2: ENRP Presence datagrams of the ENRP group reach the core
// with their sender; the core's ENRP multicasts go on that group and its
// ASAP Server Announces (RFC 5352 §3.6) on the ASAP one, never crossed.
func TestDriverENRPMulticast(t *testing.T) {
	leakcheck.Check(t)
	synctest.Test(t, func(t *testing.T) {
		calls, seen := recorder(t)
		enrpG := netip.MustParseAddrPort("239.0.0.51:9901")
		asapG := netip.MustParseAddrPort("239.0.0.50:3863")
		g := newPeerRig(t, 1, seen, func(n *memnet.Network, c *Config) {
			nd := c.Transport.(*memnet.Node)
			var err error
			if c.Peers.Announcer, err = n.JoinGroup(nd, enrpG); err != nil {
				t.Fatal(err)
			}
			if c.Announcer, err = n.JoinGroup(nd, asapG); err != nil {
				t.Fatal(err)
			}
			c.ASAP.AnnounceInterval = time.Hour
		})
		ctx := t.Context()
		other := g.net.NewNode()
		oe, _ := g.net.JoinGroup(other, enrpG)
		oa, _ := g.net.JoinGroup(other, asapG)
		defer oe.Close()
		defer oa.Close()

		// The first Server Announce (RFC 5352 §3.6) goes on the ASAP group.
		if b, _, err := oa.Recv(ctx); err != nil {
			t.Fatal(err)
		} else if m, err := tlv.ParseASAP(b); err != nil || m.ASAPType() != tlv.ASAPServerAnnounce {
			t.Fatalf("ASAP group got %v, %v", m, err)
		}

		if err := oe.Send(ctx, presence(t, 0x5555)); err != nil {
			t.Fatal(err)
		}
		k := nextCall(t, calls, "multicast")
		if !bytes.Equal(k.b, presence(t, 0x5555)) || k.from.AddrPort.Addr() != other.IP() {
			t.Errorf("core got % x from %v", k.b, k.from)
		}
		for i := range 300 { // more than the loop's queue: none lost or blocked
			oe.Send(ctx, presence(t, uint32(i+1)))
		}
		for i := range 300 {
			if k := nextCall(t, calls, "multicast"); !bytes.Equal(k.b, presence(t, uint32(i+1))) {
				t.Fatalf("datagram %d: % x", i, k.b)
			}
		}
		synctest.Wait()
		if s := g.r.Stats(); s.ENRP.PresencesReceived != 301 {
			t.Errorf("the core took in %d presences, want 301", s.ENRP.PresencesReceived)
		}

		inject(t, g.r, Multicast{Msg: &tlv.Presence{ENRPHeader: tlv.ENRPHeader{SenderID: g.r.ServerID()}, Checksum: 7}})
		b, _, err := oe.Recv(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if m, err := tlv.ParseENRP(b); err != nil || m.(*tlv.Presence).SenderID != g.r.ServerID() {
			t.Errorf("ENRP group got %v, %v", m, err)
		}
		rctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		if b, _, err := oa.Recv(rctx); err == nil {
			t.Errorf("ASAP group got % x, want nothing", b)
		}
		noCall(t, calls)
	})
}

// The core's PeerEvents reach Config.Events as the peer kinds of Event,
// readable in String and JSON; PE events are unchanged.
func TestDriverPeerEvents(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := newPeerRig(t, 16, nil, nil)
		start := time.Now()
		inject(t, g.r,
			PeerEvent{Kind: PeerUp, ServerID: 0x1234abcd},
			PeerEvent{Kind: TakeoverStarted, ServerID: 0x1234abcd, PEs: 12},
			PeerEvent{Kind: TakeoverDone, ServerID: 0x1234abcd, PEs: 12},
			PeerEvent{Kind: PeerDown, ServerID: 0x1234abcd, PEs: 1},
			PeerEvent{Kind: TakenOverBy, ServerID: 0x0badcafe, PEs: 3},
			PeerEvent{Kind: 200, ServerID: 1}, // unknown: not told
		)
		for _, w := range []struct {
			kind EventKind
			id   uint32
			pes  int
			text string
		}{
			{EventPeerUp, 0x1234abcd, 0, "peer 0x1234abcd up"},
			{EventTakeoverStarted, 0x1234abcd, 12, "takeover of peer 0x1234abcd started: 12 PEs"},
			{EventTakeoverDone, 0x1234abcd, 12, "takeover of peer 0x1234abcd done: 12 PEs"},
			{EventPeerDown, 0x1234abcd, 1, "peer 0x1234abcd down: 1 PE"},
			{EventTakenOver, 0x0badcafe, 3, "taken over by peer 0x0badcafe: 3 PEs"},
		} {
			ev := g.next()
			if ev.Kind != w.kind || ev.ServerID != w.id || ev.PEs != w.pes || !ev.Time.Equal(start) || !ev.Kind.IsPeer() {
				t.Errorf("event %+v, want %v of %08x with %d PEs", ev, w.kind, w.id, w.pes)
			}
			if ev.String() != w.text {
				t.Errorf("String %q, want %q", ev, w.text)
			}
		}
		g.none()
	})
}

func TestPeerEventJSON(t *testing.T) {
	at := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		ev   Event
		want string
	}{
		{Event{Kind: EventPeerUp, Time: at, ServerID: 0x1234abcd},
			`{"Kind":"peer up","Time":"2026-12-01T10:00:00Z","ServerID":"0x1234abcd"}`},
		{Event{Kind: EventTakeoverDone, Time: at, ServerID: 0x1234abcd, PEs: 0},
			`{"Kind":"takeover done","Time":"2026-12-01T10:00:00Z","ServerID":"0x1234abcd","PEs":0}`},
		{Event{Kind: EventPeerDown, Time: at, ServerID: 0xcafe, PEs: 3},
			`{"Kind":"peer down","Time":"2026-12-01T10:00:00Z","ServerID":"0x0000cafe","PEs":3}`},
		{Event{Kind: EventTakenOver, Time: at, ServerID: 0xcafe, PEs: 3},
			`{"Kind":"taken over","Time":"2026-12-01T10:00:00Z","ServerID":"0x0000cafe","PEs":3}`},
	} {
		b, err := json.Marshal(c.ev)
		if err != nil || string(b) != c.want {
			t.Errorf("got  %s (%v)\nwant %s", b, err, c.want)
		}
	}
	for _, k := range []EventKind{EventRegistered, EventUpdated, EventRemoved, EventPeerUp, EventPeerDown, EventTakeoverStarted, EventTakeoverDone, EventTakenOver} {
		var back EventKind
		if b, _ := k.MarshalText(); back.UnmarshalText(b) != nil || back != k {
			t.Errorf("%v read back as %v", k, back)
		}
		if k.IsPeer() != (k >= EventPeerUp) {
			t.Errorf("%v.IsPeer() = %v", k, k.IsPeer())
		}
	}
	if EventKind(0).IsPeer() || EventKind(99).IsPeer() {
		t.Error("unknown kinds are peer kinds")
	}
}
