package status_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/go-rserpool/rserpool/asap"
	"github.com/go-rserpool/rserpool/enrp"
	"github.com/go-rserpool/rserpool/enrp/status"
	"github.com/go-rserpool/rserpool/policy"
	"github.com/go-rserpool/rserpool/tlv"
	"github.com/go-rserpool/rserpool/transport"
	"github.com/go-rserpool/rserpool/transport/memnet"
)

const testServerID = 0x1234abcd

// rig is a registrar on memnet whose events are forwarded into its status
// page, and pool elements registered with it by asap.PoolElement.
type rig struct {
	t    *testing.T
	net  *memnet.Network
	reg  *enrp.Registrar
	page *status.Handler
}

// newRig starts the registrar and the page's Forward; both stop at the
// test's cleanup.
func newRig(t *testing.T, o status.Options) *rig {
	t.Helper()
	n := memnet.New(1)
	nd := n.NewNode()
	events := make(chan enrp.Event, 256)
	reg, err := enrp.New(enrp.Config{
		ServerID: testServerID, Transport: nd, ListenAddr: nd.Addr(transport.PortASAP), Events: events,
	})
	if err != nil {
		t.Fatal(err)
	}
	g := &rig{t: t, net: n, reg: reg, page: status.New(reg, o)}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	ran := make(chan error, 1)
	wg.Go(func() { ran <- reg.Run(ctx) })
	wg.Go(func() { g.page.Forward(ctx, events, nil) })
	t.Cleanup(func() {
		reg.Close()
		cancel()
		wg.Wait()
		if err := <-ran; err != nil {
			t.Errorf("Run: %v", err)
		}
		n.Close()
	})
	return g
}

// addPE starts a pool element of pool on a node of its own, serving on
// port 7000, and registers it.
func (g *rig) addPE(pool string, id uint32, pt policy.Type, v policy.Values) *asap.PoolElement {
	g.t.Helper()
	nd := g.net.NewNode()
	ut, err := asap.TransportParam(nd.Addr(7000), tlv.TransportUseDataOnly)
	if err != nil {
		g.t.Fatal(err)
	}
	pe, err := asap.NewPoolElement(asap.PEConfig{
		PoolHandle: []byte(pool), UserTransport: ut, PEID: id, Policy: pt, PolicyValues: v,
		Registrars: []transport.Addr{g.reg.Addr()},
	}, nd)
	if err != nil {
		g.t.Fatal(err)
	}
	g.t.Cleanup(func() { pe.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := pe.Register(ctx); err != nil {
		g.t.Fatalf("Register PE %08x of %q: %v", id, pool, err)
	}
	return pe
}

// get serves one request with the page and returns the response and its
// body.
func (g *rig) get(method, target string) (*http.Response, string) {
	g.t.Helper()
	rec := httptest.NewRecorder()
	g.page.ServeHTTP(rec, httptest.NewRequest(method, target, nil))
	res := rec.Result()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		g.t.Fatal(err)
	}
	return res, string(b)
}

// newRecorder serves one GET of target with h.
func newRecorder(h http.Handler, target string) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, target, nil))
	return rec
}

// jsonPage decodes h's JSON document.
func jsonPage(t *testing.T, h http.Handler) status.Page {
	t.Helper()
	rec := newRecorder(h, "/?format=json")
	var p status.Page
	if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil {
		t.Fatalf("%v in %s", err, rec.Body)
	}
	return p
}
