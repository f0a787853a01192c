// Package status is a read-only status page for an embedded
// [enrp.Registrar], for a host to mount in its own HTTP mux, and the
// registrar's, a pool element's and a pool user's counts as expvar
// variables. It uses only the standard library and the registrar's public
// view (Stats, Pools, PoolElements, ServerID, Addr, Config.Events).
//
// A Handler serves, for GET and HEAD:
//
//   - an HTML page: the pools (handle, policy, user transport), their
//     PEs (identifier, home registrar, policy values, user transport,
//     age of the last registration, expiry, unreachable reports), the
//     registrar's counts, and the most recent events;
//   - the same as JSON ([Page]) when the query has format=json, or the
//     request path ends in /json (so that a handler mounted at
//     "/rserpool/" answers "/rserpool/json").
//
// Values are written the way people read them: pool handles as text when
// printable UTF-8, else 0x and hex; PE and server identifiers as
// 0x%08x; policies by name; load and the other fractions of 0xffffffff
// (RFC 5356) as numbers from 0 to 1 in JSON and as percentages on the
// page. Everything that comes from a PE is escaped by html/template, and
// the page is served with a Content-Security-Policy that allows no
// script.
//
// Mounting it, with the events fanned into the page and on to the host:
//
//	events := make(chan enrp.Event, 256)
//	reg, _ := enrp.New(enrp.Config{..., Events: events})
//	page := status.New(reg, status.Options{})
//	go page.Forward(ctx, events, nil) // or a channel of the host's own
//	mux.Handle("/rserpool/", page)
//	status.Publish("rserpool.registrar", reg) // on /debug/vars
package status

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"path"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-rserpool/rserpool/enrp"
)

// DefaultEvents is how many recent events a Handler keeps: a screenful.
// It is this package's choice, not an RFC or RSPLIB value.
const DefaultEvents = 100

// DefaultMaxPEs is how many PEs, over all pools, one page lists; the
// page says how many it left out. This package's choice.
const DefaultMaxPEs = 1000

// DefaultTimeout bounds the registrar's answer to one page's views. This
// package's choice.
const DefaultTimeout = 5 * time.Second

// Options configure a [Handler]; the zero value takes every default.
type Options struct {
	// Events is how many recent events the page keeps and shows; default
	// DefaultEvents. Negative keeps none.
	Events int
	// MaxPEs bounds the PEs listed on one page, over all pools; default
	// DefaultMaxPEs. Negative lists none (the pools are still listed).
	MaxPEs int
	// Timeout bounds the registrar's answer to one request; default
	// DefaultTimeout.
	Timeout time.Duration
	// Now is the clock ages are measured with; default time.Now. It must
	// agree with the registrar's clock.
	Now func() time.Time
	// Title heads the page; default "RSerPool registrar".
	Title string
}

// Handler is the status page of one registrar; see the package doc. It is
// safe for concurrent use.
type Handler struct {
	r    *enrp.Registrar
	opts Options

	mu     sync.Mutex
	ring   []Event // the last len(ring) events, oldest at next when full
	next   int
	seen   uint64
	fwdDrp atomic.Uint64
}

// New returns the status page of r.
func New(r *enrp.Registrar, o Options) *Handler {
	switch {
	case o.Events == 0:
		o.Events = DefaultEvents
	case o.Events < 0:
		o.Events = 0
	}
	switch {
	case o.MaxPEs == 0:
		o.MaxPEs = DefaultMaxPEs
	case o.MaxPEs < 0:
		o.MaxPEs = 0
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Title == "" {
		o.Title = "RSerPool registrar"
	}
	return &Handler{r: r, opts: o, ring: make([]Event, 0, o.Events)}
}

// Record adds ev to the page's recent events, dropping the oldest when
// Options.Events are kept. Forward calls it; a host that reads
// Config.Events itself can call it instead.
func (h *Handler) Record(ev enrp.Event) {
	e := Event{Time: ev.Time, Kind: ev.Kind.String(), Pool: handleText(ev.PoolHandle), PE: hexID(ev.PEID)}
	switch {
	case ev.Kind.IsPeer():
		// About a peer registrar, not a PE: the line says which.
		e = Event{Time: ev.Time, Kind: ev.Kind.String(), Reason: ev.String()}
	case ev.Kind == enrp.EventRemoved:
		e.Reason = ev.Reason.String()
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.seen++
	if cap(h.ring) == 0 {
		return
	}
	if len(h.ring) < cap(h.ring) {
		h.ring = append(h.ring, e)
		return
	}
	h.ring[h.next] = e
	h.next = (h.next + 1) % len(h.ring)
}

// recent returns the kept events, newest first, and how many were
// recorded in all.
func (h *Handler) recent() ([]Event, uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]Event, 0, len(h.ring))
	for i := range h.ring {
		out = append(out, h.ring[(h.next+len(h.ring)-1-i)%len(h.ring)])
	}
	return out, h.seen
}

// Forward records every event from in (the channel given to the registrar
// as Config.Events) and passes it on to out when out is not nil. Like the
// registrar, it never waits for out: an event out has no room for is
// dropped and counted (Page.ForwardDropped). It returns when ctx ends or
// in is closed; the host runs it on a goroutine of its own and stops it
// with ctx. It does not close out.
func (h *Handler) Forward(ctx context.Context, in <-chan enrp.Event, out chan<- enrp.Event) {
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-in:
			if !ok {
				return
			}
			h.Record(ev)
			if out == nil {
				continue
			}
			select {
			case out <- ev:
			default:
				h.fwdDrp.Add(1)
			}
		}
	}
}

// Page is the JSON document the Handler serves, and what its HTML page
// shows.
type Page struct {
	Title    string    `json:"title"`
	ServerID string    `json:"server_id"` // the registrar's ENRP server identifier, 0x%08x
	Addr     string    `json:"addr"`      // its ASAP listener
	Time     time.Time `json:"time"`      // when the page was made
	// Error says why the registrar could not be asked (not running yet,
	// closed, or too slow); the pools are then missing and the status
	// is 503.
	Error string     `json:"error,omitempty"`
	Stats enrp.Stats `json:"stats"` // the registrar's counts, field names as in enrp.Stats
	Pools []Pool     `json:"pools"`
	// PEsLeftOut counts the PEs not listed because of Options.MaxPEs.
	PEsLeftOut int `json:"pes_left_out"`
	// Events are the most recent events, newest first; EventsSeen
	// counts all the Handler recorded; ForwardDropped the events Forward
	// could not pass on to the host.
	Events         []Event `json:"events"`
	EventsSeen     uint64  `json:"events_seen"`
	ForwardDropped uint64  `json:"forward_dropped"`
}

// Pool is one pool of the handlespace.
type Pool struct {
	Handle    string `json:"handle"`     // as text when printable UTF-8, else 0x and hex
	HandleHex string `json:"handle_hex"` // the handle's bytes in hex
	Policy    string `json:"policy"`     // the pool's selection policy, by name
	Transport string `json:"transport"`  // user transport protocol of its PEs: SCTP, TCP, UDP, UDP-Lite, DCCP
	Use       string `json:"use,omitempty"`
	PEs       []PE   `json:"pes"`
}

// PE is one pool element.
type PE struct {
	ID     string `json:"id"`   // PE identifier, 0x%08x
	Home   string `json:"home"` // home registrar's server identifier, 0x%08x
	Owned  bool   `json:"owned"`
	Remote string `json:"remote,omitempty"` // the association it registered over, when owned
	Policy string `json:"policy"`
	// Load is the PE's load from 0 to 1, for the policies that carry it;
	// PolicyValues has all its policy fields by name (weight, priority,
	// load, load_degradation, load_dpf, weight_dpf: fractions from 0 to
	// 1; distance_ms).
	Load          *float64           `json:"load,omitempty"`
	PolicyValues  map[string]float64 `json:"policy_values,omitempty"`
	UserTransport *Transport         `json:"user_transport"`
	ASAPTransport *Transport         `json:"asap_transport,omitempty"`
	// RegistrationLife is the registration life it asked for, in
	// seconds; LastUpdate when it last registered (the registrar's
	// view has no first registration time), Age the seconds since then;
	// Expiry when its registration life ends.
	RegistrationLife   float64   `json:"registration_life_s"`
	LastUpdate         time.Time `json:"last_update"`
	Age                float64   `json:"age_s"`
	Expiry             time.Time `json:"expiry"`
	UnreachableReports int       `json:"unreachable_reports"`
}

// Transport is a transport parameter (RFC 5354 §3).
type Transport struct {
	Protocol string   `json:"protocol"`
	Use      string   `json:"use,omitempty"` // SCTP and TCP: "data only" or "data and control"
	Addrs    []string `json:"addrs"`         // address:port
}

// Event is one recorded [enrp.Event].
type Event struct {
	Time   time.Time `json:"time"`
	Kind   string    `json:"kind"`             // registered, updated, removed; peer up, peer down, takeover started, takeover done, taken over
	Pool   string    `json:"pool"`             // empty for a peer event
	PE     string    `json:"pe"`               // empty for a peer event
	Reason string    `json:"reason,omitempty"` // why a PE was removed; for a peer event, the event's line (enrp.Event.String)
}

// page asks the registrar for its view.
func (h *Handler) page(ctx context.Context) Page {
	now := h.opts.Now()
	p := Page{Title: h.opts.Title, ServerID: hexID(h.r.ServerID()), Time: now, Stats: h.r.Stats(), Pools: []Pool{}}
	if a := h.r.Addr(); a.IsValid() {
		p.Addr = a.String()
	}
	p.Events, p.EventsSeen = h.recent()
	p.ForwardDropped = h.fwdDrp.Load()

	ctx, cancel := context.WithTimeout(ctx, h.opts.Timeout)
	defer cancel()
	pools, err := h.r.Pools(ctx)
	if err != nil {
		p.Error = err.Error()
		return p
	}
	budget := h.opts.MaxPEs
	for _, pi := range pools {
		pool := Pool{
			Handle: handleText(pi.Handle), HandleHex: hexString(pi.Handle), Policy: policyName(pi.Policy),
			Transport: protocolName(pi.Transport), Use: useName(pi.Transport, pi.Use), PEs: []PE{},
		}
		if budget <= 0 {
			p.PEsLeftOut += pi.PEs
			p.Pools = append(p.Pools, pool)
			continue
		}
		pes, err := h.r.PoolElements(ctx, pi.Handle)
		if err != nil {
			p.Error = err.Error()
			p.Pools = nil
			return p
		}
		for i, pe := range pes {
			if i == budget {
				p.PEsLeftOut += len(pes) - budget
				break
			}
			pool.PEs = append(pool.PEs, peOf(pe, now))
		}
		budget -= len(pool.PEs)
		p.Pools = append(p.Pools, pool)
	}
	return p
}

func peOf(pi enrp.PoolElementInfo, now time.Time) PE {
	pe := PE{
		ID: hexID(pi.PE.ID), Home: hexID(pi.PE.HomeServerID), Owned: pi.Owned,
		UserTransport: transportOf(pi.PE.UserTransport), ASAPTransport: transportOf(pi.PE.ASAPTransport),
		RegistrationLife: float64(pi.PE.RegistrationLife) / 1000,
		LastUpdate:       pi.LastUpdate, Expiry: pi.Expiry, UnreachableReports: pi.UnreachableReports,
	}
	if !pi.LastUpdate.IsZero() {
		pe.Age = now.Sub(pi.LastUpdate).Seconds()
	}
	if pi.Owned && pi.Remote.IsValid() {
		pe.Remote = pi.Remote.String()
	}
	pe.Policy, pe.PolicyValues, pe.Load = policyOf(pi.PE.Policy)
	return pe
}

// ServeHTTP serves the page: JSON when the query has format=json or the
// path ends in /json, else HTML. Methods other than GET and HEAD get 405
// Method Not Allowed; a registrar that cannot be asked, 503 with the page
// saying why.
func (h *Handler) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodGet && req.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "status page is read-only: use GET or HEAD", http.StatusMethodNotAllowed)
		return
	}
	p := h.page(req.Context())
	var buf bytes.Buffer
	asJSON := req.URL.Query().Get("format") == "json" || path.Base(req.URL.Path) == "json"
	if asJSON {
		enc := json.NewEncoder(&buf)
		enc.SetIndent("", "  ")
		if err := enc.Encode(p); err != nil {
			http.Error(w, "status: "+err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
	} else {
		if err := pageTemplate.Execute(&buf, p); err != nil {
			http.Error(w, "status: "+err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
	}
	hd := w.Header()
	hd.Set("Cache-Control", "no-store")
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
	if p.Error != "" {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	w.Write(buf.Bytes())
}
