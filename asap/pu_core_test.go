package asap

import (
	"errors"
	"testing"
	"time"

	"github.com/go-rserpool/rserpool/policy"
	"github.com/go-rserpool/rserpool/tlv"
	"github.com/go-rserpool/rserpool/transport"
)

func newPU(t *testing.T, mod func(*PUConfig)) *PoolUserCore {
	t.Helper()
	cfg := PUConfig{
		Registrars:   []transport.Addr{regA},
		Kind:         transport.KindMem,
		Rand:         seeded(),
		Logger:       testLogger(t),
		HuntParallel: 1,
	}
	if mod != nil {
		mod(&cfg)
	}
	c, err := NewPoolUserCore(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func testPE(id uint32, pt policy.Type, v policy.Values) tlv.PoolElement {
	return tlv.PoolElement{
		ID:               id,
		HomeServerID:     9,
		RegistrationLife: 30000,
		UserTransport:    tlv.Transport{Type: tlv.ParamSCTPTransport, Port: uint16(1000 + id), Addrs: []netipAddr{mustAddr("10.0.2.1")}},
		Policy:           policy.Encode(pt, v),
	}
}

func rrResponse(handle string, ids ...uint32) *tlv.HandleResolutionResponse {
	m := &tlv.HandleResolutionResponse{PoolHandle: []byte(handle)}
	p := policy.Encode(policy.RoundRobin, policy.Values{})
	m.Policy = &p
	for _, id := range ids {
		m.PEs = append(m.PEs, testPE(id, policy.RoundRobin, policy.Values{}))
	}
	return m
}

// connectPU gets the PU a home and returns it with the outputs that
// followed (the queued resolutions).
func connectPU(t *testing.T, c *PoolUserCore, now time.Time) (AssocID, []Output) {
	t.Helper()
	conn := only[Connect](c.Outbox())
	if len(conn) == 0 {
		t.Fatal("no Connect")
	}
	c.HandleConnected(now, conn[0].Assoc)
	return conn[0].Assoc, c.Outbox()
}

// RFC 5352 §3.5 and draft-dreibholz-rserpool-asap-hropt: the PU sends
// ASAP_HANDLE_RESOLUTION (with the HROPT item count) to its home, caches
// the answer, and answers later resolutions from the cache until it is
// older than stale.cache.value (RFC 5352 §5.3).
func TestPUResolutionAndCache(t *testing.T) {
	c := newPU(t, func(cfg *PUConfig) { cfg.Items = 5; cfg.StaleCache = 10 * time.Second })
	req := c.Resolve(t0, []byte("echo"))
	home, outs := connectPU(t, c, t0)
	hrs, as := sent[*tlv.HandleResolution](t, outs)
	if len(hrs) != 1 || as[0] != home || string(hrs[0].PoolHandle) != "echo" || !hrs[0].HasItems || hrs[0].Items != 5 {
		t.Fatalf("resolution %+v on %v", hrs, as)
	}
	if d := c.NextDeadline(); !d.Equal(t0.Add(DefaultT1ENRPRequest)) {
		t.Fatalf("T1 deadline %v", d)
	}
	c.Handle(t0, home, wire(t, rrResponse("echo", 1, 2, 3)))
	done := only[ResolutionDone](c.Outbox())
	if len(done) != 1 || done[0].Req != req || done[0].Err != nil || len(done[0].PEs) != 3 {
		t.Fatalf("done %+v", done)
	}
	if !c.NextDeadline().IsZero() {
		t.Fatal("T1 still armed")
	}
	// Within stale.cache.value: answered from the cache, nothing sent.
	fresh := t0.Add(10*time.Second - time.Millisecond)
	req2 := c.Resolve(fresh, []byte("echo"))
	outs = c.Outbox()
	if len(only[Send](outs)) != 0 {
		t.Fatal("fresh cache not used")
	}
	if d := only[ResolutionDone](outs); len(d) != 1 || d[0].Req != req2 || len(d[0].PEs) != 3 {
		t.Fatalf("cached answer %+v", d)
	}
	if _, err := c.Select(fresh, []byte("echo")); err != nil {
		t.Fatal(err)
	}
	// At stale.cache.value the entry is stale: Select refuses, Resolve asks.
	stale := t0.Add(10 * time.Second)
	if _, err := c.Select(stale, []byte("echo")); !errors.Is(err, ErrStale) {
		t.Fatalf("Select on stale cache: %v", err)
	}
	c.Resolve(stale, []byte("echo"))
	if hrs, _ := sent[*tlv.HandleResolution](t, c.Outbox()); len(hrs) != 1 {
		t.Fatal("stale cache not refreshed")
	}
	// Without Items the option is left out (the registrar picks N).
	c2 := newPU(t, nil)
	c2.Resolve(t0, []byte("echo"))
	_, outs = connectPU(t, c2, t0)
	if hrs, _ := sent[*tlv.HandleResolution](t, outs); len(hrs) != 1 || hrs[0].HasItems {
		t.Fatalf("HROPT sent without Items: %+v", hrs)
	}
}

// RFC 5356 §2.1 at the PU (RFC 5352 §3.5 local selection): Select runs the
// pool's policy over the cached PEs; round robin visits each in turn.
func TestPUSelectRoundRobin(t *testing.T) {
	c := newPU(t, func(cfg *PUConfig) { cfg.StaleCache = time.Second })
	c.Resolve(t0, []byte("echo"))
	home, _ := connectPU(t, c, t0)
	c.Handle(t0, home, wire(t, rrResponse("echo", 1, 2, 3)))
	c.Outbox()
	counts := map[uint32]int{}
	for range 30 {
		pe, err := c.Select(t0, []byte("echo"))
		if err != nil {
			t.Fatal(err)
		}
		counts[pe.ID]++
	}
	if len(counts) != 3 || counts[1] != 10 || counts[2] != 10 || counts[3] != 10 {
		t.Fatalf("round robin counts %v", counts)
	}
	// A new response keeps the PEs that stay and drops those that left.
	later := t0.Add(time.Second)
	c.Resolve(later, []byte("echo")) // stale: asks the registrar
	c.Handle(later, home, wire(t, rrResponse("echo", 2, 3, 4)))
	d := only[ResolutionDone](c.Outbox())
	if len(d) != 1 {
		t.Fatal("no cached answer")
	}
	ids := map[uint32]bool{}
	for _, pe := range d[0].PEs {
		ids[pe.ID] = true
	}
	if ids[1] || !ids[2] || !ids[3] || !ids[4] {
		t.Fatalf("cache after refresh %v", ids)
	}
}

// RFC 5352 §3.5: the PU reports an unreachable PE with
// ASAP_ENDPOINT_UNREACHABLE to its home and drops it from its cache.
func TestPUUnreachableReportAndPurge(t *testing.T) {
	c := newPU(t, nil)
	c.Resolve(t0, []byte("echo"))
	home, _ := connectPU(t, c, t0)
	c.Handle(t0, home, wire(t, rrResponse("echo", 1, 2)))
	c.Outbox()
	c.ReportUnreachable(t0, []byte("echo"), 1)
	eus, as := sent[*tlv.EndpointUnreachable](t, c.Outbox())
	if len(eus) != 1 || as[0] != home || eus[0].PEID != 1 || string(eus[0].PoolHandle) != "echo" {
		t.Fatalf("report %+v", eus)
	}
	for range 5 {
		pe, err := c.Select(t0, []byte("echo"))
		if err != nil || pe.ID != 2 {
			t.Fatalf("selected %d %v after purge", pe.ID, err)
		}
	}
	c.ReportUnreachable(t0, []byte("echo"), 2)
	c.Outbox()
	if _, err := c.Select(t0, []byte("echo")); !errors.Is(err, ErrNoPoolElement) {
		t.Fatalf("empty cache: %v", err)
	}
	// An empty cache entry is not an answer: Resolve asks the registrar.
	c.Resolve(t0, []byte("echo"))
	if hrs, _ := sent[*tlv.HandleResolution](t, c.Outbox()); len(hrs) != 1 {
		t.Fatal("empty cache answered a resolution")
	}
}

// RFC 5352 §3.5 and §5: T1 expiry resends; after MAX-REQUEST-RETRANSMIT
// the PU hunts for another registrar (§3.6) and asks it.
func TestPUResolutionRetryThenServerHunt(t *testing.T) {
	c := newPU(t, func(cfg *PUConfig) { cfg.Registrars = []transport.Addr{regA, regB} })
	req := c.Resolve(t0, []byte("echo"))
	first, outs := connectPU(t, c, t0)
	if hrs, _ := sent[*tlv.HandleResolution](t, outs); len(hrs) != 1 {
		t.Fatal("no first request")
	}
	now := c.NextDeadline()
	c.HandleTimeout(now)
	if hrs, as := sent[*tlv.HandleResolution](t, c.Outbox()); len(hrs) != 1 || as[0] != first {
		t.Fatal("no resend on T1")
	}
	now = c.NextDeadline()
	if !now.Equal(t0.Add(2 * DefaultT1ENRPRequest)) {
		t.Fatalf("second T1 at %v", now)
	}
	c.HandleTimeout(now)
	outs = c.Outbox()
	if cl := only[Close](outs); len(cl) != 1 || cl[0].Assoc != first {
		t.Fatalf("home not dropped: %v", outs)
	}
	next := oneConnect(t, outs)
	if next.Addr == regA {
		t.Fatal("hunt retried the silent registrar first")
	}
	c.HandleConnected(now, next.Assoc)
	hrs, as := sent[*tlv.HandleResolution](t, c.Outbox())
	if len(hrs) != 1 || as[0] != next.Assoc {
		t.Fatalf("request not moved to the new home: %v", as)
	}
	c.Handle(now, next.Assoc, wire(t, rrResponse("echo", 7)))
	if d := only[ResolutionDone](c.Outbox()); len(d) != 1 || d[0].Req != req || d[0].Err != nil {
		t.Fatalf("done %+v", d)
	}
}

// The retries end: a registrar that never answers fails the resolution
// with ErrTimeout after MaxServerHunts hunts.
func TestPUResolutionExhaustion(t *testing.T) {
	c := newPU(t, func(cfg *PUConfig) { cfg.MaxServerHunts = 1 })
	req := c.Resolve(t0, []byte("echo"))
	connectPU(t, c, t0)
	var done []ResolutionDone
	for i := 0; i < 20 && len(done) == 0; i++ {
		now := c.NextDeadline()
		if now.IsZero() {
			t.Fatal("no deadline while resolving")
		}
		c.HandleTimeout(now)
		outs := c.Outbox()
		for _, cn := range only[Connect](outs) {
			c.HandleConnected(now, cn.Assoc)
			c.Outbox()
		}
		done = only[ResolutionDone](outs)
	}
	if len(done) != 1 || done[0].Req != req || !errors.Is(done[0].Err, ErrTimeout) {
		t.Fatalf("want ErrTimeout, got %+v", done)
	}
	if !c.NextDeadline().IsZero() {
		t.Fatal("timers left")
	}
}

// No registrar known: the resolution fails with ErrNoRegistrar.
func TestPUNoRegistrar(t *testing.T) {
	c := newPU(t, func(cfg *PUConfig) { cfg.Registrars = nil })
	c.Resolve(t0, []byte("echo"))
	var d []ResolutionDone
	for i := 0; i < 1000 && len(d) == 0 && !c.NextDeadline().IsZero(); i++ {
		now := c.NextDeadline()
		if now.After(t0.Add(DefaultT1ENRPRequest)) {
			t.Fatalf("still waiting at %v", now.Sub(t0))
		}
		c.HandleTimeout(now)
		d = only[ResolutionDone](c.Outbox())
	}
	if len(d) != 1 || !errors.Is(d[0].Err, ErrNoRegistrar) {
		t.Fatalf("got %+v", d)
	}
}

// RFC 5352 §3.5, RFC 5354 cause 0x9: an Operation Error fails the
// resolution; Unknown Pool Handle matches ErrUnknownPool.
func TestPUResolutionError(t *testing.T) {
	c := newPU(t, nil)
	a := c.Resolve(t0, []byte("nope"))
	b := c.Resolve(t0, []byte("nope")) // coalesced into one request
	home, outs := connectPU(t, c, t0)
	if hrs, _ := sent[*tlv.HandleResolution](t, outs); len(hrs) != 1 {
		t.Fatalf("want one request for two resolutions, got %d", len(hrs))
	}
	c.Handle(t0, home, wire(t, &tlv.HandleResolutionResponse{PoolHandle: []byte("nope"),
		Error: &tlv.OperationError{Causes: []tlv.Cause{{Code: tlv.CauseUnknownPoolHandle}}}}))
	d := only[ResolutionDone](c.Outbox())
	if len(d) != 2 || d[0].Req != a || d[1].Req != b {
		t.Fatalf("done %+v", d)
	}
	for _, x := range d {
		if !errors.Is(x.Err, ErrUnknownPool) {
			t.Fatalf("err %v", x.Err)
		}
	}
	// An empty answer is ErrNoPoolElement.
	c.Resolve(t0, []byte("empty"))
	c.Outbox()
	c.Handle(t0, home, wire(t, &tlv.HandleResolutionResponse{PoolHandle: []byte("empty")}))
	if d := only[ResolutionDone](c.Outbox()); len(d) != 1 || !errors.Is(d[0].Err, ErrNoPoolElement) {
		t.Fatalf("empty answer: %+v", d)
	}
}

// RFC 5352 §2.2.14: an ASAP_ERROR that echoes our request (Unrecognized
// Message) fails that resolution only; one without fails all on that
// association.
func TestPUASAPError(t *testing.T) {
	c := newPU(t, nil)
	ra := c.Resolve(t0, []byte("a"))
	rb := c.Resolve(t0, []byte("b"))
	home, _ := connectPU(t, c, t0)
	echo, _ := tlv.Marshal(&tlv.HandleResolution{PoolHandle: []byte("a")})
	c.Handle(t0, home, wire(t, &tlv.ASAPError{Error: tlv.OperationError{Causes: []tlv.Cause{{Code: tlv.CauseUnrecognizedMessage, Info: echo}}}}))
	d := only[ResolutionDone](c.Outbox())
	var re *RejectError
	if len(d) != 1 || d[0].Req != ra || !errors.As(d[0].Err, &re) || re.Code() != tlv.CauseUnrecognizedMessage {
		t.Fatalf("echoed error: %+v", d)
	}
	c.Handle(t0, home, wire(t, &tlv.ASAPError{Error: tlv.OperationError{Causes: []tlv.Cause{{Code: tlv.CauseLackOfResources}}}}))
	d = only[ResolutionDone](c.Outbox())
	if len(d) != 1 || d[0].Req != rb || d[0].Err == nil {
		t.Fatalf("plain error: %+v", d)
	}
}

// A response on another association than the request's, or for a pool
// nobody asked for, is ignored.
func TestPUIgnoresUnsolicited(t *testing.T) {
	c := newPU(t, nil)
	c.Resolve(t0, []byte("echo"))
	home, _ := connectPU(t, c, t0)
	c.Handle(t0, home, wire(t, rrResponse("other", 1)))
	c.Handle(t0, home+100, wire(t, rrResponse("echo", 1)))
	if len(c.Outbox()) != 0 || c.Cached([]byte("other")) != nil {
		t.Fatal("unsolicited response used")
	}
}
