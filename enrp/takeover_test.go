package enrp

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"testing"
	"time"

	"github.com/go-rserpool/rserpool/handlespace"
	"github.com/go-rserpool/rserpool/policy"
	"github.com/go-rserpool/rserpool/tlv"
)

// Tests of the takeover sub-state-machine (RFC 5353 §3.9), driven input by
// input with an explicit now. The steps named in prose: a peer presumed
// dead that owns PEs is taken over unless someone else already is; the
// initiator sends ENRP_INIT_TAKEOVER to every peer and waits for an ACK from
// each but the target, for TAKEOVER-EXPIRY at most; a receiver that is the
// target shows it lives with Presence, one that runs its own takeover of
// the same target gives way to a lower server ID, any other acknowledges;
// the initiator that has all ACKs announces ENRP_TAKEOVER_SERVER and adopts
// the PEs with H=1 keep-alives; a Presence from the target cancels it all.

var toT0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

const (
	toSelf   = 0x20
	toTarget = 0x99
)

func TestTakeoverStart(t *testing.T) {
	// RFC 5353 §3.9: a takeover starts only for a dead peer that owns PEs in
	// our table and that nobody else is taking over; INIT goes to every peer
	// (the target too, so that it may protest), ACKs are awaited from all
	// but the target.
	type setup func(tk *takeovers)
	cases := []struct {
		name    string
		setup   setup
		target  uint32
		owned   int
		peers   []uint32
		want    takeoverStart
		missing int
	}{
		{name: "normal", target: toTarget, owned: 3, peers: []uint32{0x10, toTarget, 0x30},
			want: takeoverStart{Started: true, Init: []uint32{0x10, toTarget, 0x30}}, missing: 2},
		{name: "self, 0 and repeats sorted out", target: toTarget, owned: 1,
			peers: []uint32{0, toSelf, 0x10, 0x10, toTarget, toTarget, 0x30},
			want:  takeoverStart{Started: true, Init: []uint32{0x10, toTarget, 0x30}}, missing: 2},
		{name: "no PEs of the target", target: toTarget, owned: 0, peers: []uint32{0x10, toTarget}},
		{name: "target 0", target: 0, owned: 1, peers: []uint32{0x10}},
		{name: "target is ourselves", target: toSelf, owned: 1, peers: []uint32{0x10}},
		{name: "already running", target: toTarget, owned: 1, peers: []uint32{0x10, toTarget},
			setup: func(tk *takeovers) { tk.start(toT0, toTarget, 1, []uint32{0x10, 0x30, toTarget}) }, missing: 2},
		{name: "another registrar takes it over: wait for it", target: toTarget, owned: 1, peers: []uint32{0x10, toTarget},
			setup: func(tk *takeovers) { tk.onInit(toT0, 0x10, toTarget) }},
		{name: "no peer to wait for: done at once", target: toTarget, owned: 1, peers: []uint32{toTarget},
			want: takeoverStart{Started: true, Init: []uint32{toTarget}, Done: true}},
		{name: "taken over already", target: toTarget, owned: 1, peers: []uint32{toTarget},
			setup: func(tk *takeovers) { tk.start(toT0, toTarget, 1, []uint32{toTarget}) }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tk := newTakeovers(toSelf, 0)
			if c.setup != nil {
				c.setup(tk)
			}
			got := tk.start(toT0, c.target, c.owned, c.peers)
			if !reflect.DeepEqual(got, c.want) {
				t.Fatalf("start = %+v, want %+v", got, c.want)
			}
			missing, ok := tk.running(c.target)
			if missing != c.missing || ok != (c.missing > 0) {
				t.Fatalf("running = %d, %v; want %d missing", missing, ok, c.missing)
			}
			if c.missing > 0 && !tk.nextDeadline().Equal(toT0.Add(defaultTakeoverExpiry)) {
				t.Fatalf("deadline %v, want TAKEOVER-EXPIRY (5 s) after the start", tk.nextDeadline())
			}
		})
	}
}

func TestTakeoverInit(t *testing.T) {
	// RFC 5353 §3.9, the receiver of ENRP_INIT_TAKEOVER.
	run := func(tk *takeovers) { tk.start(toT0, toTarget, 1, []uint32{0x10, 0x30, toTarget}) }
	cases := []struct {
		name      string
		setup     func(tk *takeovers)
		from, tgt uint32
		want      takeoverInit
		stillOurs bool
		takenOver uint32 // who we remember as taking tgt over, 0: nobody
	}{
		{name: "we are the target: alive, no ACK", from: 0x10, tgt: toSelf, want: takeoverInit{Alive: true}},
		{name: "bystander acknowledges", from: 0x10, tgt: toTarget, want: takeoverInit{Ack: true}, takenOver: 0x10},
		{name: "unknown target acknowledged, taker remembered", from: 0x10, tgt: 0xdead, want: takeoverInit{Ack: true}, takenOver: 0x10},
		{name: "concurrent, sender lower: ACK and give way", setup: run, from: 0x10, tgt: toTarget,
			want: takeoverInit{Ack: true, Cancelled: true}, takenOver: 0x10},
		{name: "concurrent, sender higher: silent, keep ours", setup: run, from: 0x30, tgt: toTarget,
			stillOurs: true},
		{name: "our own message", from: toSelf, tgt: toTarget},
		{name: "sender 0", from: 0, tgt: toTarget},
		{name: "target 0", from: 0x10, tgt: 0},
		{name: "sender names itself", from: toTarget, tgt: toTarget},
		{name: "taken over by us already: silent",
			setup: func(tk *takeovers) { tk.start(toT0, toTarget, 1, []uint32{toTarget}) },
			from:  0x10, tgt: toTarget},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tk := newTakeovers(toSelf, 0)
			if c.setup != nil {
				c.setup(tk)
			}
			got := tk.onInit(toT0, c.from, c.tgt)
			if got != c.want {
				t.Fatalf("onInit = %+v, want %+v", got, c.want)
			}
			if _, ok := tk.running(c.tgt); ok != c.stillOurs {
				t.Fatalf("our takeover running = %v, want %v", ok, c.stillOurs)
			}
			by, ok := tk.takenOverBy(c.tgt)
			if ok != (c.takenOver != 0) || by != c.takenOver {
				t.Fatalf("takenOverBy = %#x, %v; want %#x", by, ok, c.takenOver)
			}
		})
	}
}

func TestTakeoverSingleTaker(t *testing.T) {
	// RFC 5353 §3.9: the initiator needs an ACK from every peer; repeated
	// ACKs, ACKs from strangers, from the target and for other targets
	// count for nothing; the last one completes it, once.
	tk := newTakeovers(toSelf, 0)
	tk.start(toT0, toTarget, 5, []uint32{0x10, 0x30, 0x40, toTarget})
	steps := []struct {
		from, tgt uint32
		done      bool
		missing   int
	}{
		{0x10, toTarget, false, 2},
		{0x10, toTarget, false, 2}, // repeated
		{0x77, toTarget, false, 2}, // stranger
		{toTarget, toTarget, false, 2},
		{toSelf, toTarget, false, 2},
		{0x30, 0x1234, false, 2}, // other target
		{0x30, toTarget, false, 1},
		{0x40, toTarget, true, 0},
		{0x40, toTarget, false, 0}, // after completion
	}
	for i, s := range steps {
		if done := tk.onAck(toT0, s.from, s.tgt); done != s.done {
			t.Fatalf("step %d: onAck(%#x, %#x) = %v, want %v", i, s.from, s.tgt, done, s.done)
		}
		if m, _ := tk.running(toTarget); m != s.missing {
			t.Fatalf("step %d: %d ACKs missing, want %d", i, m, s.missing)
		}
	}
	if !tk.nextDeadline().IsZero() {
		t.Fatalf("deadline left after completion: %v", tk.nextDeadline())
	}
	// Not taken over twice until the target is heard from again.
	if r := tk.start(toT0, toTarget, 5, []uint32{0x10, toTarget}); r.Started {
		t.Fatalf("second takeover of the same target: %+v", r)
	}
	tk.onPresence(toT0, toTarget)
	if r := tk.start(toT0, toTarget, 5, []uint32{0x10, toTarget}); !r.Started {
		t.Fatalf("no takeover after the target came back and died again: %+v", r)
	}
}

func TestTakeoverExpiry(t *testing.T) {
	// RFC 5353 §7 names TAKEOVER-EXPIRY without a value; RSPLIB's 5 s is the
	// default. When it runs out with ACKs missing, RSPLIB gives up (drops
	// the target without a takeover): timeout reports it as Expired.
	for _, c := range []struct {
		name   string
		expiry time.Duration
		want   time.Duration
	}{
		{"default", 0, 5 * time.Second},
		{"negative is the default", -time.Second, 5 * time.Second},
		{"tuned", 800 * time.Millisecond, 800 * time.Millisecond},
	} {
		t.Run(c.name, func(t *testing.T) {
			tk := newTakeovers(toSelf, c.expiry)
			tk.start(toT0, toTarget, 1, []uint32{0x10, 0x30, toTarget})
			tk.onAck(toT0, 0x10, toTarget)
			later := toT0.Add(time.Second / 10)
			tk.onInit(later, 0x40, 0x55) // a takeover by another, acknowledged later
			if d := tk.nextDeadline(); !d.Equal(toT0.Add(c.want)) {
				t.Fatalf("nextDeadline %v, want %v", d, toT0.Add(c.want))
			}
			if r := tk.timeout(toT0.Add(c.want - 1)); r.Expired != nil || r.Forgotten != nil {
				t.Fatalf("timeout before the deadline: %+v", r)
			}
			r := tk.timeout(toT0.Add(c.want))
			if !reflect.DeepEqual(r, takeoverTimeout{Expired: []uint32{toTarget}}) {
				t.Fatalf("timeout at the deadline = %+v", r)
			}
			if tk.onAck(toT0.Add(c.want), 0x30, toTarget) {
				t.Fatal("a late ACK completed an expired takeover")
			}
			// The takeover by 0x40 that we acknowledged: its TAKEOVER_SERVER
			// never came; after one TAKEOVER-EXPIRY we stop waiting for it.
			if d := tk.nextDeadline(); !d.Equal(later.Add(c.want)) {
				t.Fatalf("nextDeadline %v, want %v", d, later.Add(c.want))
			}
			r = tk.timeout(later.Add(c.want))
			if !reflect.DeepEqual(r, takeoverTimeout{Forgotten: []uint32{0x55}}) {
				t.Fatalf("timeout of the acknowledged takeover = %+v", r)
			}
			if !tk.nextDeadline().IsZero() {
				t.Fatalf("deadline left: %v", tk.nextDeadline())
			}
			// An expired target may be tried again (the caller drops it from
			// its peer list, as RSPLIB does, so this takes a new failure).
			if s := tk.start(later.Add(c.want), toTarget, 1, []uint32{0x10, toTarget}); !s.Started {
				t.Fatalf("no new takeover after the expiry: %+v", s)
			}
		})
	}
}

func TestTakeoverCancelledByPresence(t *testing.T) {
	// RFC 5353 §3.9: a Presence from the target shows it alive and cancels
	// our takeover and the one we acknowledged; ACKs after it do nothing.
	tk := newTakeovers(toSelf, 0)
	tk.start(toT0, toTarget, 2, []uint32{0x10, 0x30, toTarget})
	tk.onAck(toT0, 0x10, toTarget)
	tk.onInit(toT0, 0x10, 0x55)
	if c := tk.onPresence(toT0, 0x30); c {
		t.Fatal("a Presence from a bystander cancelled the takeover")
	}
	if c := tk.onPresence(toT0, toTarget); !c {
		t.Fatal("Presence from the target did not cancel our takeover")
	}
	if tk.onAck(toT0, 0x30, toTarget) {
		t.Fatal("ACK after the cancellation completed the takeover")
	}
	if c := tk.onPresence(toT0, 0x55); c {
		t.Fatal("cancelled an own takeover that did not run")
	}
	if _, ok := tk.takenOverBy(0x55); ok {
		t.Fatal("the acknowledged takeover survived the target's Presence")
	}
	if !tk.nextDeadline().IsZero() {
		t.Fatalf("deadline left: %v", tk.nextDeadline())
	}
	if tk.cancel(toTarget) {
		t.Fatal("cancel of nothing reported a takeover")
	}
}

func TestTakeoverPeerDown(t *testing.T) {
	// RFC 5353 §3.9, the initiator waits for an ACK from each peer: a peer that left the
	// list meanwhile is no longer waited for; if it was the last, the
	// takeover is done. A peer taking over a target we acknowledged that
	// goes down leaves the target orphaned (the caller may start its own).
	tk := newTakeovers(toSelf, 0)
	tk.start(toT0, toTarget, 2, []uint32{0x10, 0x30, 0x40, toTarget})
	tk.start(toT0, 0x98, 2, []uint32{0x10, 0x98})
	tk.onInit(toT0, 0x30, 0x55)
	tk.onInit(toT0, 0x40, 0x56)
	tk.onAck(toT0, 0x40, toTarget)

	if r := tk.peerDown(toT0, toTarget); r.Done != nil || r.Orphaned != nil {
		t.Fatalf("the target going down changed something: %+v", r)
	}
	if r := tk.peerDown(toT0, 0x30); !reflect.DeepEqual(r, takeoverPeerDown{Orphaned: []uint32{0x55}}) {
		t.Fatalf("peerDown(0x30) = %+v", r)
	}
	if m, _ := tk.running(toTarget); m != 1 {
		t.Fatalf("%d ACKs missing, want 1 (0x10)", m)
	}
	if r := tk.peerDown(toT0, 0x10); !reflect.DeepEqual(r, takeoverPeerDown{Done: []uint32{0x98, toTarget}}) {
		t.Fatalf("peerDown(0x10) = %+v", r)
	}
	if r := tk.peerDown(toT0, 0x10); r.Done != nil || r.Orphaned != nil {
		t.Fatalf("a second peerDown did something: %+v", r)
	}
	if tk.onAck(toT0, 0x10, toTarget) {
		t.Fatal("completed twice")
	}
	if by, ok := tk.takenOverBy(0x56); !ok || by != 0x40 {
		t.Fatalf("takenOverBy(0x56) = %#x, %v", by, ok)
	}
}

func TestTakeoverServerReceived(t *testing.T) {
	// RFC 5353 §3.9: ENRP_TAKEOVER_SERVER names the new home of the
	// target's PEs; a takeover of ours of the same target has nothing left
	// to take.
	tk := newTakeovers(toSelf, 0)
	tk.start(toT0, toTarget, 1, []uint32{0x10, toTarget})
	tk.onInit(toT0, 0x10, 0x55)
	if !tk.onTakeoverServer(toT0, 0x10, toTarget) {
		t.Fatal("our takeover not cancelled")
	}
	if tk.onTakeoverServer(toT0, 0x10, 0x55) {
		t.Fatal("reported a cancellation of a takeover we did not run")
	}
	if _, ok := tk.takenOverBy(0x55); ok {
		t.Fatal("the acknowledged takeover is not over")
	}
	tk.start(toT0, toTarget, 1, []uint32{0x10, toTarget})
	for _, c := range [][2]uint32{{toSelf, toTarget}, {0, toTarget}, {toTarget, toTarget}, {0x10, toSelf}, {0x10, 0}} {
		if tk.onTakeoverServer(toT0, c[0], c[1]) {
			t.Fatalf("onTakeoverServer(%#x, %#x) cancelled", c[0], c[1])
		}
	}
	if _, ok := tk.running(toTarget); !ok {
		t.Fatal("a meaningless TAKEOVER_SERVER cancelled our takeover")
	}
}

func TestTakeoverAdoptPEs(t *testing.T) {
	// RFC 5353 §3.9: the new home makes itself home of every PE of the
	// target and sends each ASAP_ENDPOINT_KEEP_ALIVE with H=1 (RFC 5352
	// §3.7); PEs of other homes stay as they are.
	st, err := handlespace.New(handlespace.Config{})
	if err != nil {
		t.Fatal(err)
	}
	reg := func(pool string, id, home uint32) {
		pe := tlv.PoolElement{
			ID: id, HomeServerID: home, RegistrationLife: 30000,
			UserTransport: tlv.NewSCTPTransport(7000, tlv.TransportUseDataOnly, netip.MustParseAddr("10.0.0.2")),
			ASAPTransport: tlv.NewSCTPTransport(40000, tlv.TransportUseDataOnly, netip.MustParseAddr("10.0.0.3")),
			Policy:        policy.Encode(policy.RoundRobin, policy.Values{}),
		}
		if _, err := st.Register(toT0, tlv.PoolHandle(pool), &pe, time.Time{}); err != nil {
			t.Fatal(err)
		}
	}
	reg("EchoPool", 1, toTarget)
	reg("EchoPool", 2, toSelf)
	reg("Other", 3, toTarget)
	reg("Other", 4, 0x10)

	if kas := adoptPEs(toT0, st, toSelf, toSelf); kas != nil {
		t.Fatalf("adopting our own PEs: %d keep-alives", len(kas))
	}
	kas := adoptPEs(toT0, st, toTarget, toSelf)
	if len(kas) != 2 {
		t.Fatalf("%d keep-alives, want 2", len(kas))
	}
	got := map[string]bool{}
	for _, ka := range kas {
		m := ka.Msg
		if !m.Home || m.ServerID != toSelf || !m.HasPEID || m.PEID != ka.PE.ID {
			t.Fatalf("keep-alive %+v: want H=1 from %#x with the PE ID", m, toSelf)
		}
		if ka.PE.HomeServerID != toTarget || ka.PE.ASAPTransport.Port != 40000 {
			t.Fatalf("PE copy %+v: want the stored PE with its ASAP transport", ka.PE)
		}
		got[fmt.Sprintf("%s/%d", m.PoolHandle, m.PEID)] = true
	}
	if !got["EchoPool/1"] || !got["Other/3"] {
		t.Fatalf("keep-alives for %v, want EchoPool/1 and Other/3", got)
	}
	if st.Owned(toTarget) != 0 || st.Owned(toSelf) != 3 || st.Owned(0x10) != 1 {
		t.Fatalf("owned: target %d, self %d, 0x10 %d; want 0, 3, 1", st.Owned(toTarget), st.Owned(toSelf), st.Owned(0x10))
	}
	// The copies do not alias the store.
	for _, ka := range kas {
		ka.Msg.PoolHandle[0] = 'X'
	}
	if _, _, ok := st.Lookup(tlv.PoolHandle("EchoPool"), 1); !ok {
		t.Fatal("the keep-alive's pool handle aliases the store")
	}
	if kas := takeoverKeepAlives(st, toTarget, toSelf); kas != nil {
		t.Fatalf("keep-alives for a target without PEs: %d", len(kas))
	}
}

// takeoverNet is a tiny in-test router between registrars running only the
// takeover procedure (RFC 5353 §3.9), as the Core will drive it. It
// delivers the queued messages in an order a seeded rand picks.
type takeoverNet struct {
	t      *testing.T
	rnd    *rand.Rand
	now    time.Time
	target uint32
	alive  bool // the target answers INIT_TAKEOVER with Presence
	nodes  map[uint32]*toNode
	queue  []toMsg
	log    []string
	ticks  int  // timer runs
	late   bool // a takeover completed only after a timer ran
}

type toNode struct {
	id        uint32
	tk        *takeovers
	peers     map[uint32]bool // our peer list, the target included until removed
	owned     int             // PEs of the target we hold with home = target
	completed int
	crashed   bool
	// heardTarget: a Presence from the target arrived; the caller would not
	// presume it dead now.
	heardTarget bool
}

type toMsg struct {
	kind     string // "start", "init", "ack", "server", "presence", "down"
	from, to uint32
	target   uint32
}

func newTakeoverNet(t *testing.T, seed uint64, ids []uint32, target uint32, alive bool) *takeoverNet {
	n := &takeoverNet{t: t, rnd: rand.New(rand.NewPCG(seed, 1)), now: toT0, target: target, alive: alive,
		nodes: map[uint32]*toNode{}}
	for _, id := range ids {
		nd := &toNode{id: id, tk: newTakeovers(id, 0), peers: map[uint32]bool{target: true}, owned: 4}
		for _, p := range ids {
			if p != id {
				nd.peers[p] = true
			}
		}
		n.nodes[id] = nd
		// Each registrar finds the target dead at its own moment.
		n.queue = append(n.queue, toMsg{kind: "start", to: id, target: target})
	}
	return n
}

func (n *takeoverNet) send(m toMsg) { n.queue = append(n.queue, m) }

func (n *takeoverNet) peerList(nd *toNode) []uint32 {
	var ps []uint32
	for p := range nd.peers {
		ps = append(ps, p)
	}
	sortIDs(ps)
	return ps
}

// complete is the caller's finish of a takeover: TAKEOVER_SERVER to every
// peer, adopt the PEs, drop the target from the peer list.
func (n *takeoverNet) complete(nd *toNode, target uint32) {
	nd.completed++
	n.late = n.late || n.ticks > 0
	n.log = append(n.log, fmt.Sprintf("%#x completes", nd.id))
	for _, p := range n.peerList(nd) {
		n.send(toMsg{kind: "server", from: nd.id, to: p, target: target})
	}
	nd.owned = 0
	delete(nd.peers, target)
}

func (n *takeoverNet) deliver(m toMsg) {
	if m.to == n.target {
		if n.alive && m.kind == "init" {
			for _, id := range n.ids() {
				n.send(toMsg{kind: "presence", from: n.target, to: id})
			}
		}
		return
	}
	nd := n.nodes[m.to]
	if nd == nil || nd.crashed {
		return
	}
	if m.kind != "start" && m.kind != "down" && !nd.peers[m.from] && m.from != n.target {
		return // the Core drops ENRP from peers no longer in its list
	}
	switch m.kind {
	case "start":
		if !nd.peers[m.target] || nd.heardTarget {
			return // a Presence from the target restarted its MAX-TIME-LAST-HEARD: not dead
		}
		r := nd.tk.start(n.now, m.target, nd.owned, n.peerList(nd))
		for _, p := range r.Init {
			n.send(toMsg{kind: "init", from: nd.id, to: p, target: m.target})
		}
		if r.Done {
			n.complete(nd, m.target)
		}
	case "init":
		r := nd.tk.onInit(n.now, m.from, m.target)
		if r.Ack {
			n.send(toMsg{kind: "ack", from: nd.id, to: m.from, target: m.target})
		}
	case "ack":
		if nd.tk.onAck(n.now, m.from, m.target) {
			n.complete(nd, m.target)
		}
	case "server":
		nd.tk.onTakeoverServer(n.now, m.from, m.target)
		if m.target == n.target {
			nd.owned = 0
			delete(nd.peers, m.target)
		}
	case "presence":
		nd.heardTarget = true
		nd.tk.onPresence(n.now, m.from)
	case "down":
		delete(nd.peers, m.from)
		r := nd.tk.peerDown(n.now, m.from)
		for _, tg := range r.Done {
			n.complete(nd, tg)
		}
		for _, tg := range r.Orphaned {
			if nd.owned > 0 && nd.peers[tg] {
				n.send(toMsg{kind: "start", to: nd.id, target: tg})
			}
		}
	}
}

// run delivers everything, in random order; crash (if not 0) crashes that
// registrar after crashAfter deliveries and tells the others.
func (n *takeoverNet) run(crash uint32, crashAfter int) {
	told := false
	for steps := 0; len(n.queue) > 0 || (crash != 0 && !told) || n.pending(); steps++ {
		if steps > 10000 {
			n.t.Fatal("no quiescence after 10,000 deliveries")
		}
		if crash != 0 && steps == crashAfter {
			n.nodes[crash].crashed = true
		}
		// The others find the crashed registrar dead (MAX-TIME-NO-RESPONSE,
		// seconds) only after what it sent before it crashed has arrived.
		if crash != 0 && steps >= crashAfter && !told && !n.inFlightFrom(crash) {
			told = true
			for _, id := range n.ids() {
				if id != crash {
					n.send(toMsg{kind: "down", from: crash, to: id})
				}
			}
		}
		if len(n.queue) == 0 {
			if crash == 0 || told {
				n.tick()
			}
			continue
		}
		i := n.rnd.IntN(len(n.queue))
		m := n.queue[i]
		n.queue[i] = n.queue[len(n.queue)-1]
		n.queue = n.queue[:len(n.queue)-1]
		n.log = append(n.log, fmt.Sprintf("%s %#x->%#x", m.kind, m.from, m.to))
		n.deliver(m)
	}
}

// pending reports whether a live registrar still has a deadline.
func (n *takeoverNet) pending() bool {
	for _, nd := range n.nodes {
		if !nd.crashed && !nd.tk.nextDeadline().IsZero() {
			return true
		}
	}
	return false
}

// tick advances the clock to the earliest deadline and runs the timers as
// the Core would: an expired takeover of ours gives the target up (it
// leaves the peer list, as in RSPLIB); a takeover by another that never
// finished lets us start our own.
func (n *takeoverNet) tick() {
	var next time.Time
	for _, nd := range n.nodes {
		if d := nd.tk.nextDeadline(); !nd.crashed && !d.IsZero() && (next.IsZero() || d.Before(next)) {
			next = d
		}
	}
	if next.IsZero() {
		return
	}
	n.now = next
	n.ticks++
	for _, id := range n.ids() {
		nd := n.nodes[id]
		if nd.crashed {
			continue
		}
		r := nd.tk.timeout(n.now)
		for _, tg := range r.Expired {
			n.log = append(n.log, fmt.Sprintf("%#x gives up", nd.id))
			delete(nd.peers, tg)
		}
		for _, tg := range r.Forgotten {
			n.log = append(n.log, fmt.Sprintf("%#x forgets", nd.id))
			n.send(toMsg{kind: "start", to: nd.id, target: tg})
		}
	}
}

func (n *takeoverNet) ids() []uint32 {
	var ids []uint32
	for id := range n.nodes {
		ids = append(ids, id)
	}
	sortIDs(ids)
	return ids
}

func (n *takeoverNet) inFlightFrom(id uint32) bool {
	for _, m := range n.queue {
		if m.from == id && m.kind != "down" {
			return true
		}
	}
	return false
}

func TestTakeoverConcurrentTakers(t *testing.T) {
	// RFC 5353 §3.9's tie-break between concurrent initiators (RSPLIB's
	// direction, the lower server ID wins): three registrars find the same
	// peer dead at moments of their own; in 1,000 delivery orders exactly
	// one takes it over. When the target is alive after all (it answers
	// INIT_TAKEOVER with Presence), at most one does, and none whenever its
	// Presence reached every initiator before it completed.
	ids := []uint32{0x30, 0x10, 0x20}
	counts := map[string][3]int{}
	timed := map[string]int{} // orders whose takeover completed only after a TAKEOVER-EXPIRY
	for _, variant := range []string{"dead", "alive", "crash"} {
		var c [3]int // orders with 0, 1, >1 completions
		for seed := uint64(0); seed < 1000; seed++ {
			target := uint32(toTarget)
			if seed%2 == 1 {
				target = 0x15 // between the initiators' IDs
			}
			n := newTakeoverNet(t, seed, ids, target, variant == "alive")
			var crash uint32
			after := 0
			if variant == "crash" {
				crash = ids[seed%3]
				after = int(seed/3) % 12
			}
			n.run(crash, after)
			total := 0
			for _, nd := range n.nodes {
				if nd.completed > 1 {
					t.Fatalf("%s, seed %d: %#x completed %d takeovers of one target", variant, seed, nd.id, nd.completed)
				}
				total += nd.completed
			}
			switch {
			case total == 0:
				c[0]++
			case total == 1:
				c[1]++
			default:
				c[2]++
			}
			switch variant {
			case "dead":
				if total != 1 {
					t.Fatalf("dead target, seed %d: %d completions, want exactly 1 (%v)", seed, total, n.log)
				}
			case "alive", "crash":
				// A crashed registrar may have completed before it crashed;
				// a survivor completes then too only if the crashed one's
				// TAKEOVER_SERVER was lost, which this router never does.
				if total > 1 {
					t.Fatalf("%s, seed %d: %d completions, want at most 1 (%v)", variant, seed, total, n.log)
				}
			}
			if variant == "crash" && total != 1 {
				t.Fatalf("crash, seed %d: %d completions, want exactly 1 (%v)", seed, total, n.log)
			}
			if n.late {
				timed[variant]++
			}
		}
		counts[variant] = c
	}
	t.Logf("orders with 0 / 1 / >1 completions: dead %v, alive %v, crash %v; completed only after a TAKEOVER-EXPIRY (a stale INIT made two initiators give way to each other): dead %d, alive %d, crash %d",
		counts["dead"], counts["alive"], counts["crash"], timed["dead"], timed["alive"], timed["crash"])
	if counts["alive"][0] == 0 {
		t.Error("the target's Presence never cancelled a takeover in 1,000 orders")
	}
}

func TestTakeoverAliveFirst(t *testing.T) {
	// RFC 5353 §3.9: when the target's Presence reaches the initiators
	// before the ACKs do, nobody takes it over.
	n := newTakeoverNet(t, 1, []uint32{0x30, 0x10, 0x20}, toTarget, true)
	for _, id := range []uint32{0x10, 0x20, 0x30} {
		n.deliver(toMsg{kind: "start", to: id, target: toTarget})
	}
	n.queue = n.queue[3:] // the random starts, done above
	// Deliver INITs to the target first, then its Presences, then the rest.
	for pass := 0; pass < 3; pass++ {
		var rest []toMsg
		q := n.queue
		n.queue = nil
		for _, m := range q {
			first := (pass == 0 && m.to == toTarget) || (pass == 1 && m.kind == "presence")
			if first {
				n.deliver(m)
			} else {
				rest = append(rest, m)
			}
		}
		n.queue = append(rest, n.queue...)
	}
	n.run(0, 0)
	for _, nd := range n.nodes {
		if nd.completed != 0 {
			t.Fatalf("%#x took over a live target", nd.id)
		}
		if _, ok := nd.tk.running(toTarget); ok {
			t.Fatalf("%#x still runs a takeover of a live target", nd.id)
		}
	}
}

// FuzzTakeovers drives one machine with random inputs and checks its
// invariants: no panic; one target is never completed twice without a
// Presence from it in between; the deadlines are those of live state and
// none is left due after timeout; the remembered takeovers stay bounded.
func FuzzTakeovers(f *testing.F) {
	f.Add([]byte{0, 9, 1, 1, 9, 2, 2, 9, 3})
	f.Add([]byte{0, 9, 1, 2, 9, 6, 3, 9, 0, 4, 2, 0, 5, 9, 0, 6, 0, 200})
	f.Add([]byte{1, 1, 9, 1, 3, 9, 7, 1, 1, 0, 9, 2, 5, 3, 0, 6, 0, 60})
	f.Fuzz(func(t *testing.T, data []byte) {
		const self = 4
		tk := newTakeovers(self, time.Second)
		now := toT0
		completed := map[uint32]int{}
		complete := func(tg uint32) {
			completed[tg]++
			if completed[tg] > 1 {
				t.Fatalf("target %#x completed twice without a Presence from it", tg)
			}
		}
		peers := []uint32{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}
		for len(data) >= 3 {
			op, a, b := data[0]%8, uint32(data[1]%10), uint32(data[2]%10)
			data = data[3:]
			switch op {
			case 0:
				r := tk.start(now, a, int(b%3), peers[:1+b%10])
				for _, p := range r.Init {
					if p == self || p == 0 {
						t.Fatalf("INIT to %#x", p)
					}
				}
				if r.Done {
					complete(a)
				}
			case 1:
				r := tk.onInit(now, a, b)
				if r.Alive && (r.Ack || b != self) {
					t.Fatalf("onInit(%d, %d) = %+v", a, b, r)
				}
			case 2:
				if tk.onAck(now, a, b) {
					complete(b)
				}
			case 3:
				tk.onTakeoverServer(now, a, b)
			case 4:
				tk.onPresence(now, a)
				completed[a] = 0
			case 5:
				r := tk.peerDown(now, a)
				for _, tg := range r.Done {
					complete(tg)
				}
			case 6:
				now = now.Add(time.Duration(b) * 150 * time.Millisecond)
				tk.timeout(now)
				if d := tk.nextDeadline(); !d.IsZero() && !d.After(now) {
					t.Fatalf("deadline %v due at %v after timeout", d, now)
				}
			case 7:
				tk.cancel(a)
			}
			for tg, o := range tk.own {
				if _, ok := o.waiting[tg]; ok || len(o.waiting) == 0 {
					t.Fatalf("takeover of %#x waits for %v", tg, o.waiting)
				}
				if _, ok := o.waiting[self]; ok {
					t.Fatal("waiting for our own ACK")
				}
			}
			if len(tk.others) > maxAckedTakeovers || len(tk.finished) > maxFinishedTakeovers ||
				len(tk.finished) != len(tk.finishedFIFO) {
				t.Fatalf("unbounded state: %d acked, %d finished (%d)", len(tk.others), len(tk.finished), len(tk.finishedFIFO))
			}
			if (len(tk.own)+len(tk.others) == 0) != tk.nextDeadline().IsZero() {
				t.Fatal("nextDeadline does not match the state")
			}
		}
	})
}
