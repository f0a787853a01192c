package status_test

import (
	"context"
	"encoding/json"
	"errors"
	"expvar"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/go-rserpool/rserpool/asap"
	"github.com/go-rserpool/rserpool/enrp"
	"github.com/go-rserpool/rserpool/enrp/status"
	"github.com/go-rserpool/rserpool/internal/leakcheck"
	"github.com/go-rserpool/rserpool/policy"
	"github.com/go-rserpool/rserpool/tlv"
	"github.com/go-rserpool/rserpool/transport"
)

// quarter is a Load of 25 % (RFC 5356: a fraction of 0xffffffff).
const quarter = policy.MaxLoad / 4

// The HTML page lists every pool with its policy, and every PE with its
// identifier in hex, its home registrar, its load as a percentage and its
// user transport; it is served with a no-script Content-Security-Policy.
func TestHandlerHTMLListsPools(t *testing.T) {
	leakcheck.Check(t)
	synctest.Test(t, func(t *testing.T) {
		g := newRig(t, status.Options{})
		g.addPE("echo", 0x2a, policy.RoundRobin, policy.Values{})
		g.addPE("echo", 0x2b, policy.RoundRobin, policy.Values{})
		g.addPE("db", 0x07, policy.LeastUsed, policy.Values{Load: quarter})
		synctest.Wait() // Forward has recorded the events
		res, body := g.get(http.MethodGet, "/")
		if res.StatusCode != http.StatusOK {
			t.Fatalf("status %d, want 200: %s", res.StatusCode, body)
		}
		if ct := res.Header.Get("Content-Type"); ct != "text/html; charset=utf-8" {
			t.Errorf("Content-Type %q", ct)
		}
		if csp := res.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") {
			t.Errorf("Content-Security-Policy %q allows scripts", csp)
		}
		for _, want := range []string{
			`<span class="handle">echo</span>`, `<span class="handle">db</span>`,
			"0x0000002a", "0x0000002b", "0x00000007",
			"0x1234abcd (this registrar",
			"Policy " + policy.RoundRobin.String(), "Policy " + policy.LeastUsed.String(),
			"25.0 %", "10.0.0.4:7000", "SCTP (data only)", "Recent events", "3 shown of 3 recorded",
		} {
			if !strings.Contains(body, want) {
				t.Errorf("page lacks %q", want)
			}
		}
		if t.Failed() {
			t.Log(body)
		}
	})
}

// The JSON document decodes into status.Page, with the documented field
// names and values: identifiers as 0x%08x, handles as text, load as a
// fraction, and the events newest first.
func TestHandlerJSON(t *testing.T) {
	leakcheck.Check(t)
	synctest.Test(t, func(t *testing.T) {
		g := newRig(t, status.Options{})
		g.addPE("echo", 0x2a, policy.RoundRobin, policy.Values{})
		g.addPE("db", 0x07, policy.LeastUsed, policy.Values{Load: quarter})
		time.Sleep(3 * time.Second) // virtual time: the PEs' age; not synchronisation
		synctest.Wait()             // Forward has recorded the events
		for _, target := range []string{"/?format=json", "/rserpool/json"} {
			res, body := g.get(http.MethodGet, target)
			if res.StatusCode != http.StatusOK || res.Header.Get("Content-Type") != "application/json" {
				t.Fatalf("%s: status %d, Content-Type %q", target, res.StatusCode, res.Header.Get("Content-Type"))
			}
			var p status.Page
			if err := json.Unmarshal([]byte(body), &p); err != nil {
				t.Fatalf("%s: %v", target, err)
			}
			if p.ServerID != "0x1234abcd" || p.Stats.Pools != 2 || p.Stats.PEs != 2 || len(p.Pools) != 2 || p.Error != "" {
				t.Fatalf("%s: page %+v", target, p)
			}
			echo, db := p.Pools[0], p.Pools[1]
			if echo.Handle != "echo" || echo.HandleHex != "6563686f" || echo.Policy != policy.RoundRobin.String() ||
				echo.Transport != "SCTP" || echo.Use != "data only" || len(echo.PEs) != 1 {
				t.Errorf("pool echo: %+v", echo)
			}
			pe := db.PEs[0]
			if pe.ID != "0x00000007" || pe.Home != "0x1234abcd" || !pe.Owned || pe.Load == nil ||
				*pe.Load < 0.2499 || *pe.Load > 0.2501 || pe.PolicyValues["load"] != *pe.Load ||
				pe.UserTransport == nil || len(pe.UserTransport.Addrs) != 1 || !strings.HasSuffix(pe.UserTransport.Addrs[0], ":7000") ||
				pe.Age < 3 || pe.Expiry.IsZero() || pe.RegistrationLife <= 0 {
				t.Errorf("PE of db: %+v", pe)
			}
			if len(p.Events) != 2 || p.EventsSeen != 2 || p.Events[0].PE != "0x00000007" || p.Events[0].Kind != enrp.EventRegistered.String() ||
				p.Events[0].Pool != "db" || p.Events[1].PE != "0x0000002a" {
				t.Errorf("events %+v (%d seen)", p.Events, p.EventsSeen)
			}

			// The field names are the documented ones.
			var raw map[string]any
			if err := json.Unmarshal([]byte(body), &raw); err != nil {
				t.Fatal(err)
			}
			for _, k := range []string{"server_id", "addr", "time", "stats", "pools", "events", "events_seen", "pes_left_out"} {
				if _, ok := raw[k]; !ok {
					t.Errorf("%s: no key %q", target, k)
				}
			}
			rpe := raw["pools"].([]any)[1].(map[string]any)["pes"].([]any)[0].(map[string]any)
			for _, k := range []string{"id", "home", "owned", "policy", "load", "policy_values", "user_transport", "last_update", "age_s", "expiry", "registration_life_s"} {
				if _, ok := rpe[k]; !ok {
					t.Errorf("%s: PE has no key %q: %v", target, k, rpe)
				}
			}
		}
	})
}

// The page is read-only: only GET and HEAD are served; HEAD without a
// body.
func TestHandlerOnlyGetAndHead(t *testing.T) {
	leakcheck.Check(t)
	synctest.Test(t, func(t *testing.T) {
		g := newRig(t, status.Options{})
		synctest.Wait() // the registrar runs
		for _, m := range []string{http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodPatch, http.MethodOptions} {
			res, _ := g.get(m, "/")
			if res.StatusCode != http.StatusMethodNotAllowed || res.Header.Get("Allow") != "GET, HEAD" {
				t.Errorf("%s: status %d, Allow %q; want 405 and GET, HEAD", m, res.StatusCode, res.Header.Get("Allow"))
			}
		}
		if res, _ := g.get(http.MethodGet, "/"); res.StatusCode != http.StatusOK {
			t.Errorf("GET: status %d", res.StatusCode)
		}
		// httptest.ResponseRecorder keeps what is written; a server drops
		// HEAD bodies itself. The status and headers are those of GET.
		if res, _ := g.get(http.MethodHead, "/?format=json"); res.StatusCode != http.StatusOK || res.Header.Get("Content-Type") != "application/json" {
			t.Errorf("HEAD: status %d, Content-Type %q", res.StatusCode, res.Header.Get("Content-Type"))
		}
	})
}

// Nothing a PE sends reaches the page as markup: pool handles of
// "<script>" and "<img onerror>" are escaped (html/template), and a handle
// of raw bytes is shown in hex.
func TestHandlerEscapesPoolHandle(t *testing.T) {
	leakcheck.Check(t)
	synctest.Test(t, func(t *testing.T) {
		g := newRig(t, status.Options{})
		script, img, raw := `<script>alert(1)</script>`, `<img src=x onerror=alert(1)>`, "\x00\xff<b>"
		g.addPE(script, 1, policy.RoundRobin, policy.Values{})
		g.addPE(img, 2, policy.RoundRobin, policy.Values{})
		g.addPE(raw, 3, policy.RoundRobin, policy.Values{})
		synctest.Wait()
		_, body := g.get(http.MethodGet, "/")
		for _, bad := range []string{"<script", "<img", "<b>"} {
			if strings.Contains(body, bad) {
				t.Errorf("page contains %q from a pool handle", bad)
			}
		}
		for _, want := range []string{"&lt;script&gt;alert(1)&lt;/script&gt;", "&lt;img src=x onerror=alert(1)&gt;", "0x00ff3c623e"} {
			if !strings.Contains(body, want) {
				t.Errorf("page lacks %q", want)
			}
		}
		if t.Failed() {
			t.Log(body)
		}
		// JSON carries the handles as strings.
		p := jsonPage(t, g.page)
		if len(p.Pools) != 3 || p.Pools[0].Handle != script || p.Pools[1].Handle != img || p.Pools[2].Handle != "0x00ff3c623e" {
			t.Errorf("pools %+v", p.Pools)
		}
	})
}

// The page keeps the last Options.Events events, newest first, and counts
// them all; Forward passes events on to the host without waiting and
// counts those the host had no room for.
func TestHandlerEventRing(t *testing.T) {
	leakcheck.Check(t)
	synctest.Test(t, func(t *testing.T) {
		g := newRig(t, status.Options{Events: 2})
		for id := uint32(1); id <= 3; id++ {
			g.addPE("echo", id, policy.RoundRobin, policy.Values{})
		}
		synctest.Wait()
		_, js := g.get(http.MethodGet, "/json")
		var p status.Page
		if err := json.Unmarshal([]byte(js), &p); err != nil {
			t.Fatal(err)
		}
		if len(p.Events) != 2 || p.EventsSeen != 3 || p.Events[0].PE != "0x00000003" || p.Events[1].PE != "0x00000002" {
			t.Errorf("events %+v (%d seen), want PEs 3 and 2 of 3", p.Events, p.EventsSeen)
		}

		page := status.New(g.reg, status.Options{})
		in, out := make(chan enrp.Event, 3), make(chan enrp.Event, 1)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { page.Forward(ctx, in, out); close(done) }()
		for id := uint32(1); id <= 3; id++ {
			in <- enrp.Event{Kind: enrp.EventRemoved, PoolHandle: tlv.PoolHandle("x"), PEID: id, Reason: enrp.RemovedDeregistered}
		}
		synctest.Wait()
		cancel()
		<-done
		if ev := <-out; ev.PEID != 1 {
			t.Errorf("host got PE %d first", ev.PEID)
		}
		rec := jsonPage(t, page)
		if rec.EventsSeen != 3 || rec.ForwardDropped != 2 || len(rec.Events) != 3 || rec.Events[0].Reason != enrp.RemovedDeregistered.String() {
			t.Errorf("after Forward: %d seen, %d dropped, events %+v; want 3, 2", rec.EventsSeen, rec.ForwardDropped, rec.Events)
		}

		// A peer event (RFC 5353) names the peer, not a PE.
		page.Record(enrp.Event{Kind: enrp.EventTakeoverDone, ServerID: 0x1234abcd, PEs: 5})
		if e := jsonPage(t, page).Events[0]; e.Kind != "takeover done" || e.Pool != "" || e.PE != "" || e.Reason != "takeover of peer 0x1234abcd done: 5 PEs" {
			t.Errorf("peer event recorded as %+v", e)
		}
	})
}

// A registrar that does not run yet, or no more, gives 503 and a page that
// says why.
func TestHandlerRegistrarNotRunning(t *testing.T) {
	leakcheck.Check(t)
	synctest.Test(t, func(t *testing.T) {
		g := newRig(t, status.Options{})
		synctest.Wait()
		nd := g.net.NewNode()
		idle, err := enrp.New(enrp.Config{Transport: nd, ListenAddr: nd.Addr(transport.PortASAP)})
		if err != nil {
			t.Fatal(err)
		}
		defer idle.Close()
		page := status.New(idle, status.Options{})
		for _, target := range []string{"/", "/?format=json"} {
			rec := newRecorder(page, target)
			if rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), enrp.ErrNotRunning.Error()) {
				t.Errorf("%s: status %d, body %s", target, rec.Code, rec.Body)
			}
		}
	})
}

// Options.MaxPEs bounds the PEs listed; the page counts the others.
func TestHandlerMaxPEs(t *testing.T) {
	leakcheck.Check(t)
	synctest.Test(t, func(t *testing.T) {
		g := newRig(t, status.Options{MaxPEs: 2})
		for id := uint32(1); id <= 3; id++ {
			g.addPE("a", id, policy.RoundRobin, policy.Values{})
		}
		g.addPE("b", 9, policy.RoundRobin, policy.Values{})
		p := jsonPage(t, g.page)
		if len(p.Pools) != 2 || len(p.Pools[0].PEs) != 2 || len(p.Pools[1].PEs) != 0 || p.PEsLeftOut != 2 {
			t.Errorf("pools %+v, %d left out; want 2 PEs listed, 2 left out", p.Pools, p.PEsLeftOut)
		}
		if _, body := g.get(http.MethodGet, "/"); !strings.Contains(body, "2 more PEs not listed") {
			t.Error("page does not say PEs were left out")
		}
	})
}

// runs counts the runs of TestPublish in this process.
var runs int

// Publish and its PE and PU variants put the counts on expvar, read anew
// each time; a name already published is an error, not a panic.
func TestPublish(t *testing.T) {
	leakcheck.Check(t)
	synctest.Test(t, func(t *testing.T) {
		g := newRig(t, status.Options{})
		runs++ // names are for the process: -count runs the test again
		name := func(s string) string { return fmt.Sprintf("test%d.%s", runs, s) }
		if err := status.Publish(name("registrar"), g.reg); err != nil {
			t.Fatal(err)
		}
		if err := status.Publish(name("registrar"), g.reg); !errors.Is(err, status.ErrPublished) {
			t.Fatalf("second Publish of a name: %v, want ErrPublished", err)
		}
		pe := g.addPE("echo", 1, policy.RoundRobin, policy.Values{})
		if err := status.PublishPoolElement(name("pe"), pe); err != nil {
			t.Fatal(err)
		}
		nd := g.net.NewNode()
		pu, err := asap.NewPoolUser(asap.PUConfig{Registrars: []transport.Addr{g.reg.Addr()}}, nd)
		if err != nil {
			t.Fatal(err)
		}
		defer pu.Close()
		if err := status.PublishPoolUser(name("pu"), pu); err != nil {
			t.Fatal(err)
		}
		if _, err := pu.Resolve(t.Context(), []byte("echo")); err != nil {
			t.Fatal(err)
		}
		var rs enrp.Stats
		var ps asap.PEStats
		var us asap.PUStats
		for name, v := range map[string]any{name("registrar"): &rs, name("pe"): &ps, name("pu"): &us} {
			ev := expvar.Get(name)
			if ev == nil {
				t.Fatalf("%s not published", name)
			}
			if err := json.Unmarshal([]byte(ev.String()), v); err != nil {
				t.Fatalf("%s: %v in %s", name, err, ev)
			}
		}
		if rs.PEs != 1 || rs.ASAP.Registrations != 1 || rs.ASAP.Resolutions != 1 || ps.Registered != 1 || us.FromRegistrar != 1 {
			t.Errorf("registrar %+v, PE %+v, PU %+v", rs, ps, us)
		}
	})
}
