package e2e

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/go-rserpool/rserpool/asap"
	"github.com/go-rserpool/rserpool/enrp"
	"github.com/go-rserpool/rserpool/internal/leakcheck"
	"github.com/go-rserpool/rserpool/tlv"
	"github.com/go-rserpool/rserpool/transport"
	"github.com/go-rserpool/rserpool/transport/memnet"
)

// TestENRPChaos runs 3 and 5 registrars peered by ENRP (RFC 5353) over
// memnet in virtual time, with PEs spread over 10 pools registering at
// random registrars (the server hunt's random order, RFC 5352 §3.6) and
// pool users resolving at random registrars, on links that lose 20 % of
// the packets (association messages come late by the retransmissions,
// RFC 9260 §6.3) and reorder them (jitter). While that runs:
//
//   - the registrars are partitioned into two groups for longer than a
//     takeover takes (RFC 5353 §3.9), then healed; a tenth of the PEs
//     registers and a twentieth deregisters while it lasts (the handle
//     updates that cannot cross it are repaired by the audit, §3.7);
//   - one registrar crashes (its node cut off, the registrar stopped
//     without a word);
//   - another restarts empty (a new server ID at the same address,
//     joining through a mentor, RFC 5353 §3.4).
//
// After a quiet period with perfect links, long enough for checksum
// audits (§3.7) and re-registrations (RFC 5352 §3.1, T4), and again 30 s
// later:
//
//   - every live registrar holds the same PEs, each with the same home,
//     and the same ownership checksum for every home (RFC 5353 §3.7);
//   - every PE is there (no registration lost), none that deregistered
//     is, and each has exactly one home, a live registrar, agreed by all:
//     the crashed and the restarted registrar's PEs were taken over (by
//     one registrar at most) or re-registered by the PEs themselves;
//   - every PE is resolvable at every registrar (RFC 5352 §3.5).
//
// The PEs are real asap.PoolElement instances on their own memnet nodes.
func TestENRPChaos(t *testing.T) {
	for _, regs := range []int{3, 5} {
		t.Run(fmt.Sprintf("registrars=%d", regs), func(t *testing.T) {
			numPEs := 1000
			if testing.Short() {
				numPEs = 200
			}
			chaos(t, int64(regs), regs, numPEs, 10, regs == 5)
		})
	}
}

// chaosPeers are ENRP timers for a lossy LAN: a Presence every second, a
// peer probed after 5 s of silence and presumed dead 2 s later.
func chaosPeers(static []transport.Addr) enrp.PeersConfig {
	return enrp.PeersConfig{
		Static:            static,
		HeartbeatCycle:    time.Second,
		MaxTimeLastHeard:  5 * time.Second,
		MaxTimeNoResponse: 2 * time.Second,
		TakeoverExpiry:    2 * time.Second,
		MentorTimeout:     2 * time.Second,
		RedialMin:         500 * time.Millisecond,
		RedialMax:         2 * time.Second,
	}
}

// chaosRig is one run of the chaos test.
type chaosRig struct {
	t     *testing.T
	net   *memnet.Network
	nodes []*memnet.Node // registrar nodes, fixed
	addrs []transport.Addr

	mu   sync.Mutex
	regs []*enrp.Registrar // nil: crashed
	// clients are the nodes of PEs and PUs.
	clients []*memnet.Node
	// events of every registrar instance ever started, by server ID.
	events map[uint32]*tracker
}

// link sets the links between nd and every registrar node, both ways.
func (c *chaosRig) link(nd *memnet.Node, l memnet.Link) {
	c.mu.Lock()
	if !slices.Contains(c.clients, nd) {
		c.clients = append(c.clients, nd)
	}
	c.mu.Unlock()
	for _, r := range c.nodes {
		if r != nd {
			c.net.SetLink(nd, r, l)
			c.net.SetLink(r, nd, l)
		}
	}
}

// startRegistrar starts registrar i on its node, peered with all others
// by their ASAP addresses (ENRP routed by PPID, RFC 5353 §2), with server
// ID id (0: a random one).
func (c *chaosRig) startRegistrar(i int, seed uint64, id uint32) {
	var static []transport.Addr
	for j, a := range c.addrs {
		if j != i {
			static = append(static, a)
		}
	}
	cfg := enrp.Config{
		Transport: c.nodes[i], ListenAddr: c.addrs[i],
		ServerID: id,
		Rand:     rand.NewPCG(seed, uint64(i)),
		Peers:    chaosPeers(static),
		ASAP:     enrp.ASAPConfig{MaxResolutionItems: 1000},
	}
	ev := track(c.t, &cfg, 8192)
	r := startRegistrar(c.t, cfg)
	c.mu.Lock()
	c.regs[i] = r
	c.events[r.ServerID()] = ev
	c.mu.Unlock()
}

// live returns the registrars that run.
func (c *chaosRig) live() []*enrp.Registrar {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*enrp.Registrar
	for _, r := range c.regs {
		if r != nil {
			out = append(out, r)
		}
	}
	return out
}

// owned returns the PE IDs registrar r is home of.
func owned(ctx context.Context, r *enrp.Registrar, pools []string) (map[uint32]bool, error) {
	out := map[uint32]bool{}
	for _, p := range pools {
		pes, err := r.PoolElements(ctx, []byte(p))
		if err != nil {
			return nil, err
		}
		for _, pe := range pes {
			if pe.PE.HomeServerID == r.ServerID() {
				out[pe.PE.ID] = true
			}
		}
	}
	return out, nil
}

// chaosView is what one registrar holds: pool -> PE ID -> home.
type chaosView map[string]map[uint32]uint32

func viewOf(ctx context.Context, r *enrp.Registrar, pools []string) (chaosView, error) {
	v := chaosView{}
	for _, p := range pools {
		pes, err := r.PoolElements(ctx, []byte(p))
		if err != nil {
			return nil, err
		}
		m := map[uint32]uint32{}
		for _, pe := range pes {
			if _, dup := m[pe.PE.ID]; dup {
				return nil, fmt.Errorf("registrar %s holds PE %s of %s twice", hex(r.ServerID()), hex(pe.PE.ID), p)
			}
			m[pe.PE.ID] = pe.PE.HomeServerID
		}
		v[p] = m
	}
	return v, nil
}

func chaos(t *testing.T, seed int64, numRegs, numPEs, numPools int, sameID bool) {
	leakcheck.Check(t)
	wall := time.Now()
	synctest.Test(t, func(t *testing.T) {
		lossy := memnet.Link{Loss: 0.2, Delay: 2 * time.Millisecond, Jitter: 5 * time.Millisecond}
		n := memnet.New(seed, memnet.WithRTO(200*time.Millisecond))
		t.Cleanup(func() { n.Close() })
		c := &chaosRig{t: t, net: n, regs: make([]*enrp.Registrar, numRegs), events: map[uint32]*tracker{}}
		for range numRegs {
			nd := n.NewNode()
			c.nodes = append(c.nodes, nd)
			c.addrs = append(c.addrs, nd.Addr(transport.PortASAP))
		}
		for _, a := range c.nodes {
			for _, b := range c.nodes {
				if a != b {
					n.SetLink(a, b, lossy)
				}
			}
		}
		for i := range numRegs {
			c.startRegistrar(i, uint64(seed), 0)
		}
		begin := time.Now()
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Minute)
		defer cancel()

		pools := make([]string, numPools)
		for i := range pools {
			pools[i] = fmt.Sprintf("chaos-%d", i)
		}

		// The PEs: each knows every registrar and hunts them in a random
		// order of its own, so it registers at a random one.
		type chaosPE struct {
			*asap.PoolElement
			pool string
		}
		pes := make([]chaosPE, numPEs)
		for i := range pes {
			nd := n.NewNode()
			c.link(nd, lossy)
			pool := pools[i%numPools]
			user, err := asap.TransportParam(nd.Addr(7), tlv.TransportUseDataOnly)
			if err != nil {
				t.Fatal(err)
			}
			el, err := asap.NewPoolElement(asap.PEConfig{
				PoolHandle: []byte(pool), UserTransport: user, PEID: uint32(i + 1),
				Registrars: c.addrs, Kind: transport.KindMem,
				RegistrationLife: 30 * time.Second, // T4 = 10 s
				Rand:             rand.NewPCG(uint64(seed), uint64(i)),
			}, nd)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { el.Close() })
			pes[i] = chaosPE{el, pool}
		}
		// The last tenth registers only during the partition; a
		// twentieth of the others deregisters then and stops.
		numLate, numGone := numPEs/10, numPEs/20
		early, late := pes[:numPEs-numLate], pes[numPEs-numLate:]
		gone := early[:numGone]
		register := func(set []chaosPE) {
			t.Helper()
			var wg sync.WaitGroup
			regErr := make([]error, len(set))
			for i, p := range set {
				wg.Go(func() { regErr[i] = p.Register(ctx) })
			}
			wg.Wait()
			// A registrar in its start-up phase refuses registrations
			// with Lack of Resources (RFC 5353 §3.4), and one cut off
			// from the PE makes it hunt; the PE retries by itself.
			for i, err := range regErr {
				var rej *asap.RejectError
				var none *asap.NoRegistrarError
				if err != nil && !(errors.As(err, &rej) && rej.Transient()) && !errors.As(err, &none) {
					t.Fatalf("PE %s: Register: %v", hex(set[i].ID()), err)
				}
			}
			for end := time.Now().Add(time.Minute); ; time.Sleep(100 * time.Millisecond) {
				waiting := 0
				for _, p := range set {
					if !p.Registered() {
						waiting++
					}
				}
				if waiting == 0 {
					break
				}
				if time.Now().After(end) {
					for _, r := range c.live() {
						t.Logf("registrar %s: %+v", hex(r.ServerID()), r.Stats())
					}
					t.Fatalf("%d of %d PEs not registered after %v", waiting, len(set), time.Since(begin))
				}
			}
		}
		register(early)
		t.Logf("%d PEs registered after %v (virtual)", len(early), time.Since(begin).Round(time.Millisecond))

		// Pool users resolve random pools at random registrars (the
		// server hunt's order) all along the chaos; failures while a
		// registrar is cut off or dead are expected, answers are counted.
		var resolved, failed atomic.Int64
		stopPUs := make(chan struct{})
		var puWG sync.WaitGroup
		for i := range 10 {
			nd := n.NewNode()
			c.link(nd, lossy)
			pu := newPU(t, asap.PUConfig{
				Registrars: c.addrs, Kind: transport.KindMem, StaleCache: -1,
				Rand: rand.NewPCG(uint64(seed), uint64(1000+i)),
			}, nd)
			prng := rand.New(rand.NewPCG(uint64(seed), uint64(2000+i)))
			puWG.Go(func() {
				tick := time.NewTicker(time.Second)
				defer tick.Stop()
				for {
					select {
					case <-stopPUs:
						return
					case <-tick.C:
					}
					rctx, rcancel := context.WithTimeout(ctx, 10*time.Second)
					got, err := pu.Resolve(rctx, []byte(pools[prng.IntN(numPools)]))
					rcancel()
					if err != nil || len(got) == 0 {
						failed.Add(1)
					} else {
						resolved.Add(1)
					}
				}
			})
		}

		// Lossy run, then a partition of the registrars into two groups
		// for longer than MAX-TIME-LAST-HEARD + MAX-TIME-NO-RESPONSE +
		// TAKEOVER-EXPIRY and the association timeout, then a heal.
		time.Sleep(10 * time.Second)
		half := numRegs / 2
		partAt := time.Now()
		n.Partition(c.nodes[:half], c.nodes[half:])
		t.Logf("partition %d | %d at %v", half, numRegs-half, time.Since(begin).Round(time.Millisecond))
		time.Sleep(2 * time.Second)
		register(late)
		var wg sync.WaitGroup
		for _, p := range gone {
			wg.Go(func() {
				if err := p.Deregister(ctx); err != nil {
					t.Logf("PE %s: Deregister: %v (it stops anyway)", hex(p.ID()), err)
				}
				p.Close()
			})
		}
		wg.Wait()
		t.Logf("%d more PEs registered and %d deregistered during the partition, by %v", len(late), len(gone), time.Since(begin).Round(time.Millisecond))
		time.Sleep(max(0, 20*time.Second-time.Since(partAt)))
		n.Heal()
		time.Sleep(15 * time.Second)

		// Registrar 0 crashes: its node is cut off, then it stops.
		crashedAt := time.Now()
		crashed := c.regs[0]
		crashedID := crashed.ServerID()
		crashedPEs, err := owned(ctx, crashed, pools)
		if err != nil {
			t.Fatal(err)
		}
		n.Isolate(c.nodes[0])
		crashed.Close()
		c.mu.Lock()
		c.regs[0] = nil
		c.mu.Unlock()
		t.Logf("registrar %s crashed at %v, home of %d PEs", hex(crashedID), time.Since(begin).Round(time.Millisecond), len(crashedPEs))
		time.Sleep(5 * time.Second)

		// The last registrar restarts empty at the same address.
		last := numRegs - 1
		old := c.regs[last]
		oldID := old.ServerID()
		oldPEs, err := owned(ctx, old, pools)
		if err != nil {
			t.Fatal(err)
		}
		restartedAt := time.Now()
		old.Close()
		// With 5 registrars it keeps its server ID, as one configured
		// with a fixed ServerID does: its peers then hold PEs of its ID
		// that it does not, until the audit of its Presence sweeps them
		// (RFC 5353 §3.7) or the PEs re-register.
		newID := uint32(0)
		if sameID {
			newID = oldID
		}
		c.startRegistrar(last, uint64(seed)+1, newID)
		t.Logf("registrar %s restarted empty as %s at %v, was home of %d PEs", hex(oldID), hex(c.regs[last].ServerID()), time.Since(begin).Round(time.Millisecond), len(oldPEs))
		time.Sleep(15 * time.Second)
		close(stopPUs)
		puWG.Wait()

		// Quiet: perfect links from now on (the crashed node stays cut
		// off). Wait for audits and re-registrations to settle.
		for _, a := range c.nodes {
			for _, b := range c.nodes {
				if a != b {
					n.SetLink(a, b, memnet.Link{})
				}
			}
		}
		c.mu.Lock()
		clients := slices.Clone(c.clients)
		c.mu.Unlock()
		for _, nd := range clients {
			c.link(nd, memnet.Link{})
		}
		quietAt := time.Now()
		live := c.live()
		liveIDs := map[uint32]bool{}
		for _, r := range live {
			liveIDs[r.ServerID()] = true
		}
		want := map[string][]uint32{}
		for _, p := range pes[numGone:] {
			want[p.pool] = append(want[p.pool], p.ID())
		}
		var report string
		settled := func() (bool, error) {
			views := make([]chaosView, len(live))
			sums := make([]map[uint32]uint16, len(live))
			for i, r := range live {
				var err error
				if views[i], err = viewOf(ctx, r, pools); err != nil {
					return false, err
				}
				if sums[i], err = r.Checksums(ctx); err != nil {
					return false, err
				}
			}
			report = diff(live, views, sums, want, liveIDs)
			return report == "", nil
		}
		deadline := time.Now().Add(3 * time.Minute)
		for {
			ok, err := settled()
			if err != nil {
				t.Fatal(err)
			}
			if ok {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("registrars not in sync %v after the quiet period began:\n%s", time.Since(quietAt), report)
			}
			time.Sleep(time.Second)
		}
		t.Logf("in sync %v after the quiet period began (virtual); %d resolutions answered, %d failed during the chaos",
			time.Since(quietAt).Round(time.Millisecond), resolved.Load(), failed.Load())
		// And it stays so: nothing left in flight undoes it.
		time.Sleep(30 * time.Second)
		if ok, err := settled(); err != nil || !ok {
			t.Fatalf("registrars out of sync again 30 s later (%v):\n%s", err, report)
		}
		for _, r := range live {
			s := r.Stats()
			t.Logf("registrar %s: %d PEs, %d owned; peers dead %d, audits %d (%d PEs swept), updates sent %d applied %d refused %d; PEs removed at association loss %d, keep-alive timeouts %d",
				hex(r.ServerID()), s.PEs, s.Owned, s.ENRP.PeersDead, s.ENRP.Audits, s.ENRP.AuditRemoved,
				s.ENRP.UpdatesSent, s.ENRP.UpdatesApplied, s.ENRP.UpdatesRefused, s.ASAP.AssocLostRemoved, s.ASAP.KeepAliveTimeouts)
		}

		// RFC 5353 §3.9: at most one registrar completed the takeover of
		// the crashed registrar (the tie-break between concurrent takers);
		// the PEs not taken over re-registered by themselves.
		c.mu.Lock()
		events := maps.Clone(c.events)
		c.mu.Unlock()
		for _, d := range []struct {
			id    uint32
			since time.Time
		}{{crashedID, crashedAt}, {oldID, restartedAt}} {
			dead := d.id
			var takers []string
			adopted := 0
			for id, ev := range events {
				for _, e := range ev.seen() {
					if e.Kind == enrp.EventTakeoverDone && e.ServerID == dead && !e.Time.Before(d.since) {
						takers = append(takers, hex(id))
						adopted += e.PEs
					}
				}
			}
			if len(takers) > 1 {
				t.Errorf("registrar %s taken over by %d registrars %v", hex(dead), len(takers), takers)
			}
			t.Logf("registrar %s taken over by %v (%d PEs)", hex(dead), takers, adopted)
		}
		partitionTakeovers := 0
		for _, ev := range events {
			for _, e := range ev.seen() {
				if e.Kind == enrp.EventTakeoverDone && e.Time.Before(crashedAt) {
					partitionTakeovers++
				}
			}
		}
		t.Logf("%d takeovers before the crash (registrars behind the partition)", partitionTakeovers)

		// Who took over the crashed and the restarted registrar's PEs.
		view, err := viewOf(ctx, live[0], pools)
		if err != nil {
			t.Fatal(err)
		}
		homes := map[uint32]uint32{}
		for _, m := range view {
			maps.Copy(homes, m)
		}
		for what, set := range map[string]map[uint32]bool{"crashed": crashedPEs, "restarted": oldPEs} {
			by := map[uint32]int{}
			for id := range set {
				by[homes[id]]++
			}
			t.Logf("the %s registrar's %d PEs now at homes %v", what, len(set), by)
		}

		// Every PE resolvable at every live registrar.
		for _, r := range live {
			nd := n.NewNode()
			pu := newPU(t, asap.PUConfig{Registrars: []transport.Addr{r.Addr()}, Kind: transport.KindMem, StaleCache: -1, Items: 0xffffffff}, nd)
			for _, pool := range pools {
				got, err := pu.Resolve(ctx, []byte(pool))
				if err != nil {
					t.Fatalf("resolve %s at %s: %v", pool, hex(r.ServerID()), err)
				}
				ids := make([]uint32, len(got))
				for i, pe := range got {
					ids[i] = pe.ID
				}
				slices.Sort(ids)
				w := slices.Sorted(slices.Values(want[pool]))
				if !slices.Equal(ids, w) {
					t.Errorf("resolve %s at %s: %d PEs, want %d", pool, hex(r.ServerID()), len(ids), len(w))
				}
			}
		}
		for _, p := range pes[numGone:] {
			if !p.Registered() {
				t.Errorf("PE %s not registered at the end", hex(p.ID()))
			}
		}
	})
	t.Logf("wall time %v", time.Since(wall).Round(time.Millisecond))
}

// diff says how the registrars' views differ from each other and from
// want, or "" when they agree: the same PEs with the same live home
// everywhere, every PE of want there, and the same checksum per home.
func diff(live []*enrp.Registrar, views []chaosView, sums []map[uint32]uint16, want map[string][]uint32, liveIDs map[uint32]bool) string {
	var b strings.Builder
	const maxLines = 20
	lines := 0
	add := func(format string, a ...any) {
		if lines < maxLines {
			fmt.Fprintf(&b, format+"\n", a...)
		}
		lines++
	}
	pools := slices.Sorted(maps.Keys(want))
	for _, pool := range pools {
		for _, id := range want[pool] {
			homes := map[uint32][]string{}
			for i, v := range views {
				h, ok := v[pool][id]
				if !ok {
					add("%s: PE %s missing", hex(live[i].ServerID()), hex(id))
					continue
				}
				homes[h] = append(homes[h], hex(live[i].ServerID()))
			}
			if len(homes) > 1 {
				add("PE %s of %s has homes %v", hex(id), pool, homes)
			}
			for h := range homes {
				if !liveIDs[h] {
					add("PE %s of %s has home %s, not a live registrar (held by %v)", hex(id), pool, hex(h), homes[h])
				}
			}
		}
		for i, v := range views {
			for id := range v[pool] {
				if !slices.Contains(want[pool], id) {
					add("%s: PE %s of %s, which deregistered or never was", hex(live[i].ServerID()), hex(id), pool)
				}
			}
		}
	}
	for i := 1; i < len(sums); i++ {
		if !maps.Equal(sums[0], sums[i]) {
			add("checksums of %s %v differ from those of %s %v", hex(live[0].ServerID()), fmtSums(sums[0]), hex(live[i].ServerID()), fmtSums(sums[i]))
		}
	}
	if lines > maxLines {
		fmt.Fprintf(&b, "... and %d more\n", lines-maxLines)
	}
	return b.String()
}

func fmtSums(m map[uint32]uint16) string {
	keys := slices.Collect(maps.Keys(m))
	sort.Slice(keys, func(i, j int) bool { return keys[i] < keys[j] })
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s:%04x", hex(k), m[k]))
	}
	return "{" + strings.Join(parts, " ") + "}"
}
