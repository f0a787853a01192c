package asap

import (
	"errors"
	"testing"
	"time"

	"github.com/go-rserpool/rserpool/policy"
	"github.com/go-rserpool/rserpool/tlv"
)

// RFC 5352 §5.3 with the cache disabled (StaleCache < 0): every Resolve
// asks the registrar, and the answer it gets serves the one Select that
// follows it; a second Select needs a new resolution. The round-robin
// position survives across answers (RFC 5356 §2.1).
func TestPUDisabledCacheSelectsFromFreshAnswer(t *testing.T) {
	c := newPU(t, func(cfg *PUConfig) { cfg.StaleCache = -1 })
	c.Resolve(t0, []byte("echo"))
	home, outs := connectPU(t, c, t0)
	if hrs, _ := sent[*tlv.HandleResolution](t, outs); len(hrs) != 1 {
		t.Fatalf("first resolution not sent: %v", outs)
	}
	seen := map[uint32]int{}
	for i := range 4 {
		if i > 0 {
			c.Resolve(t0, []byte("echo"))
			if hrs, _ := sent[*tlv.HandleResolution](t, c.Outbox()); len(hrs) != 1 {
				t.Fatalf("round %d: disabled cache answered a resolution", i)
			}
		}
		c.Handle(t0, home, wire(t, rrResponse("echo", 1, 2)))
		if d := only[ResolutionDone](c.Outbox()); len(d) != 1 || d[0].Err != nil || len(d[0].PEs) != 2 {
			t.Fatalf("round %d: done %+v", i, d)
		}
		pe, err := c.Select(t0, []byte("echo"))
		if err != nil {
			t.Fatalf("round %d: Select right after the answer: %v", i, err)
		}
		seen[pe.ID]++
		if _, err := c.Select(t0, []byte("echo")); !errors.Is(err, ErrStale) {
			t.Fatalf("round %d: second Select from one answer: %v, want ErrStale", i, err)
		}
	}
	if seen[1] != 2 || seen[2] != 2 {
		t.Fatalf("round robin across fresh answers picked %v", seen)
	}
}

// The answer a resolution returned stays selectable after it aged past
// stale.cache.value: a driver that resolved because the cache was stale
// selects from what it got even if its clock moved on (tiny StaleCache).
func TestPUSelectAfterResolutionIgnoresAge(t *testing.T) {
	c := newPU(t, func(cfg *PUConfig) { cfg.StaleCache = time.Nanosecond })
	c.Resolve(t0, []byte("echo"))
	home, _ := connectPU(t, c, t0)
	c.Handle(t0, home, wire(t, rrResponse("echo", 7)))
	c.Outbox()
	later := t0.Add(time.Millisecond)
	if _, err := c.Select(later, []byte("echo")); !errors.Is(err, ErrStale) {
		t.Fatalf("Select on an aged entry: %v, want ErrStale", err)
	}
	pe, err := c.selectResolved([]byte("echo"), nil)
	if err != nil || pe.ID != 7 {
		t.Fatalf("selectResolved: %d %v", pe.ID, err)
	}
	if _, err := c.selectResolved([]byte("other"), nil); !errors.Is(err, ErrNoPoolElement) {
		t.Fatalf("selectResolved without entry: %v", err)
	}
}

// RFC 5356 §2.1 round robin at the PU (RFC 5352 §3.5): a new answer that
// repeats the same PEs with the same values keeps the round-robin
// position; a changed policy value (RFC 5356 §3.1 Least Used load) is
// taken up at once.
func TestPURefreshKeepsPolicyState(t *testing.T) {
	c := newPU(t, func(cfg *PUConfig) { cfg.StaleCache = time.Second })
	c.Resolve(t0, []byte("echo"))
	home, _ := connectPU(t, c, t0)
	c.Handle(t0, home, wire(t, rrResponse("echo", 1, 2, 3)))
	c.Outbox()
	first, err := c.Select(t0, []byte("echo"))
	if err != nil {
		t.Fatal(err)
	}
	later := t0.Add(time.Second)
	c.Resolve(later, []byte("echo"))
	c.Handle(later, home, wire(t, rrResponse("echo", 1, 2, 3)))
	c.Outbox()
	next, err := c.Select(later, []byte("echo"))
	if err != nil || next.ID == first.ID {
		t.Fatalf("after a refresh round robin picked %d again (%v)", next.ID, err)
	}

	lu := newPU(t, func(cfg *PUConfig) { cfg.StaleCache = time.Second })
	luResp := func(load1, load2 uint32) *tlv.HandleResolutionResponse {
		m := &tlv.HandleResolutionResponse{PoolHandle: []byte("lu")}
		m.PEs = []tlv.PoolElement{
			testPE(1, policy.LeastUsed, policy.Values{Load: load1}),
			testPE(2, policy.LeastUsed, policy.Values{Load: load2}),
		}
		return m
	}
	lu.Resolve(t0, []byte("lu"))
	home, _ = connectPU(t, lu, t0)
	lu.Handle(t0, home, wire(t, luResp(10, 20)))
	lu.Outbox()
	if pe, err := lu.Select(t0, []byte("lu")); err != nil || pe.ID != 1 {
		t.Fatalf("least used picked %d %v, want 1", pe.ID, err)
	}
	lu.Resolve(later, []byte("lu"))
	lu.Handle(later, home, wire(t, luResp(30, 20)))
	lu.Outbox()
	if pe, err := lu.Select(later, []byte("lu")); err != nil || pe.ID != 2 {
		t.Fatalf("after PE 1's load rose, least used picked %d %v, want 2", pe.ID, err)
	}
}
