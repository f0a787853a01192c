package asap

import (
	"bytes"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/go-rserpool/rserpool/policy"
	"github.com/go-rserpool/rserpool/tlv"
	"github.com/go-rserpool/rserpool/transport"
)

// PUConfig configures a pool user. Zero fields take the defaults named in
// their comments.
type PUConfig struct {
	// Registrars are registrars known by configuration (RFC 5352 §3.6);
	// announced ones are added as ASAP_SERVER_ANNOUNCEs arrive.
	Registrars []transport.Addr
	// Kind is the transport.Kind that SCTP transport parameters (of PEs
	// and announces) map to. When zero, NewPoolUser takes it from the
	// transport if that is a transport.KindReporter (memnet: KindMem);
	// otherwise it is transport.KindSCTPUDP (the zero Kind).
	Kind transport.Kind
	// Timers overrides RFC 5352 §5 timers (T1, T5, T7,
	// MAX-REQUEST-RETRANSMIT are used).
	Timers Timers
	// StaleCache is stale.cache.value (RFC 5352 §5.3): how long a handle
	// resolution answers Resolve and Select without asking the registrar;
	// default DefaultStaleCacheValue. A negative value disables the cache:
	// every Resolve asks a registrar, and each registrar answer serves the
	// one Select that follows it (PoolUser.Select and Dial resolve for
	// every selection). The pool's policy state, such as the round-robin
	// position, still carries over from one answer to the next.
	StaleCache time.Duration
	// Items is the Handle Resolution Option item count
	// (draft-dreibholz-rserpool-asap-hropt): how many PEs to ask for. 0
	// sends no option (the registrar picks); 0xffffffff asks for all.
	Items uint32
	// MaxServerHunts is MAX-NUMBER-SERVER-HUNT: a resolution waiting for a
	// registrar fails with a *NoRegistrarError after this many failed
	// server hunts (passes over the whole registrar table), and one sent
	// to registrars that do not answer fails with ErrTimeout after this
	// many hunts; default DefaultMaxServerHunts.
	MaxServerHunts int
	// HuntParallel is how many registrars one server-hunt round dials at
	// once; default DefaultHuntParallel.
	HuntParallel int
	// DialTimeout is how long PoolUser.Dial waits for one PE; default
	// DefaultDialTimeout. MaxFailover bounds the PEs one Dial tries;
	// default DefaultMaxFailover. (Driver settings; the core ignores them.)
	DialTimeout time.Duration
	MaxFailover int
	// OnFailover, when set, is told about each PE that PoolUser.Dial gave
	// up on before failing over: the pool, the PE, and why (the dial error,
	// or an unusable user transport). It runs on the goroutine that called
	// Dial, never on the pool user's loop, so it cannot stall the pool
	// user; it does delay that Dial, so it should return quickly (hand the
	// event to a channel with a non-blocking send if it must go further).
	// It may call PoolUser methods and keep handle (a copy). (Driver
	// setting; the core ignores it.)
	OnFailover func(handle tlv.PoolHandle, pe tlv.PoolElement, err error)
	// AuthorizeRegistrar, if set, decides whether the peer of an
	// association with a registrar may act as one (RFC 5355 §2.7,
	// resolution at a malicious registrar). It is asked about every
	// association the server hunt dials, before any ASAP message is sent
	// or taken on it. A refusal aborts the association and counts it
	// (PUStats.RegistrarsRefused); it is a failed dial of the hunt, so a
	// *NoRegistrarError names it (Last, a *RegistrarRefusedError matching
	// ErrRegistrarRefused). RegistrarNames gives one for the common case.
	// Over DTLS the transport's roots only say the peer holds a
	// certificate of the pool's CA, which every PE holds too, and the
	// PU's one transport dials PEs as well, so DTLSConfig.ServerName
	// cannot pin the registrar's name: this says it is a registrar. If
	// nil (the default: RFC 5352 has no such check), every registrar is
	// used. (Driver setting; the core ignores it.)
	AuthorizeRegistrar RegistrarAuthorizer
	// Rand seeds server-hunt order and randomized policies; nil means a
	// randomly seeded source.
	Rand rand.Source
	// Logger receives debug logs; nil logs nothing.
	Logger *slog.Logger
}

// PoolUserCore is the sans-IO pool user role of RFC 5352: handle
// resolution with T1 retries and server hunt (§3.5, §3.6), a cache of
// resolutions with stale.cache.value (§5.3), selection among cached PEs
// with the pool's policy (RFC 5356) and Endpoint Unreachable reports
// (§3.5). Feed it messages and timeouts with an explicit now; take what it
// wants done from Outbox.
type PoolUserCore struct {
	log      *slog.Logger
	t        Timers
	h        hunter
	out      []Output
	src      rand.Source
	stale    time.Duration
	items    uint32
	maxHunts int

	nextReq uint64
	queries map[string]*query
	cache   map[string]*poolCache
	slotBuf []int32
}

// query is one outstanding handle resolution, shared by every Resolve of
// the same pool handle.
type query struct {
	handle []byte
	reqs   []uint64
	assoc  AssocID // where it was sent; 0 while waiting for a home
	tries  int     // sends to assoc
	hunts  int
	sent   bool      // reached a registrar at least once
	due    time.Time // T1, or the wait for a hunt
	// noRegAt: while waiting for a home, the hunter's failed-hunt count
	// at which the query fails with NoRegistrarError.
	noRegAt int
}

// poolCache is the cached resolution of one pool (RFC 5352 §3.5 cache).
type poolCache struct {
	ptype   policy.Type
	sel     policy.Selector
	updated time.Time
	// unpicked: with the cache disabled, the latest registrar answer has
	// not served a Select yet.
	unpicked bool
	pes      []tlv.PoolElement // by slot
	alive    []bool
	slotOf   map[uint32]int32
	free     []int32
}

// NewPoolUserCore validates cfg and returns an idle pool user core.
func NewPoolUserCore(cfg PUConfig) (*PoolUserCore, error) {
	t, err := cfg.Timers.withDefaults()
	if err != nil {
		return nil, err
	}
	if cfg.StaleCache == 0 {
		cfg.StaleCache = DefaultStaleCacheValue
	}
	if cfg.MaxServerHunts < 0 || cfg.HuntParallel < 0 {
		return nil, fmt.Errorf("%w: MaxServerHunts and HuntParallel must not be negative", ErrInvalidConfig)
	}
	if cfg.MaxServerHunts == 0 {
		cfg.MaxServerHunts = DefaultMaxServerHunts
	}
	if cfg.HuntParallel == 0 {
		cfg.HuntParallel = DefaultHuntParallel
	}
	src := cfg.Rand
	if src == nil {
		src = rand.NewPCG(rand.Uint64(), rand.Uint64())
	}
	c := &PoolUserCore{
		log:      logger(cfg.Logger),
		t:        t,
		src:      src,
		stale:    cfg.StaleCache,
		items:    cfg.Items,
		maxHunts: cfg.MaxServerHunts,
		queries:  map[string]*query{},
		cache:    map[string]*poolCache{},
	}
	c.h = newHunter(&c.out, c.log, rand.New(src), cfg.Kind, cfg.Registrars, t, cfg.HuntParallel)
	return c, nil
}

// Outbox returns the outputs queued since its last call and empties the
// queue. The returned slice, and the messages in it, are valid until the
// next call of any method of the core, which reuses the slice: carry out
// the outputs (encode the messages) before calling the core again.
func (c *PoolUserCore) Outbox() []Output {
	out := c.out
	c.out = c.out[:0]
	return out
}

// Home returns the home association (0 when none) and its server ID.
func (c *PoolUserCore) Home() (AssocID, uint32) { return c.h.home, c.h.homeSID }

// Resolve starts a handle resolution (RFC 5352 §3.5) and returns its
// request number. Its end is a ResolutionDone output with that number:
// queued at once when the cache holds a fresh, non-empty entry; otherwise
// after the registrar answered, or the retries ran out.
func (c *PoolUserCore) Resolve(now time.Time, handle []byte) uint64 {
	c.nextReq++
	req := c.nextReq
	if len(handle) == 0 || len(handle) > tlv.DefaultMaxPoolHandle {
		c.out = append(c.out, ResolutionDone{Req: req, PoolHandle: bytes.Clone(handle), Err: ErrUnknownPool})
		return req
	}
	if pc := c.fresh(now, handle); pc != nil && pc.sel.Len() > 0 {
		c.out = append(c.out, ResolutionDone{Req: req, PoolHandle: bytes.Clone(handle), PEs: pc.list()})
		return req
	}
	key := string(handle)
	if q, ok := c.queries[key]; ok {
		q.reqs = append(q.reqs, req)
		return req
	}
	q := &query{handle: bytes.Clone(handle), reqs: []uint64{req}}
	c.queries[key] = q
	if c.h.hasHome() {
		c.send(now, q)
		return req
	}
	q.due = now.Add(c.t.T1ENRPRequest)
	c.h.startHunt(now)
	q.noRegAt = c.h.failed + c.maxHunts
	return req
}

// send sends (or resends) ASAP_HANDLE_RESOLUTION to the home and arms T1.
func (c *PoolUserCore) send(now time.Time, q *query) {
	if q.assoc != c.h.home {
		q.assoc, q.tries = c.h.home, 0
	}
	q.tries++
	q.sent = true
	q.due = now.Add(c.t.T1ENRPRequest)
	m := &tlv.HandleResolution{PoolHandle: q.handle, HasItems: c.items != 0, Items: c.items}
	c.log.Debug("pu: handle resolution", "pool", tlv.PoolHandle(q.handle), "try", q.tries, "assoc", q.assoc)
	c.out = append(c.out, Send{Assoc: q.assoc, Msg: m})
}

func (c *PoolUserCore) finish(q *query, pes []tlv.PoolElement, err error) {
	delete(c.queries, string(q.handle))
	for _, r := range q.reqs {
		c.out = append(c.out, ResolutionDone{Req: r, PoolHandle: q.handle, PEs: pes, Err: err})
	}
}

// fresh returns the pool's cache entry if it is younger than
// stale.cache.value.
func (c *PoolUserCore) fresh(now time.Time, handle []byte) *poolCache {
	pc := c.cache[string(handle)]
	if pc == nil || c.stale < 0 || now.Sub(pc.updated) >= c.stale {
		return nil
	}
	return pc
}

// Select picks one PE of the pool from the cache with the pool's policy
// (RFC 5356; RFC 5352 §3.5 local selection). It returns ErrStale when the
// cache holds no fresh entry, and ErrNoPoolElement when the fresh entry
// has no PE left. With the cache disabled (PUConfig.StaleCache < 0) the
// entry a registrar answer just wrote serves one Select; later ones
// return ErrStale until the next answer.
func (c *PoolUserCore) Select(now time.Time, handle []byte) (tlv.PoolElement, error) {
	pc := c.fresh(now, handle)
	if pc == nil {
		if pc = c.cache[string(handle)]; pc == nil || c.stale >= 0 || !pc.unpicked {
			return tlv.PoolElement{}, ErrStale
		}
	}
	return c.pick(pc, nil)
}

// selectResolved picks one PE from the pool's latest resolution whatever
// its age, skipping the PE IDs in skip (which it drops from the cache).
// A driver calls it right after a ResolutionDone, so that an answer it
// waited for is used even when the cache is disabled or stale.cache.value
// ran out on its way. ErrNoPoolElement: no entry, or no PE left in it.
func (c *PoolUserCore) selectResolved(handle []byte, skip []uint32) (tlv.PoolElement, error) {
	pc := c.cache[string(handle)]
	if pc == nil {
		return tlv.PoolElement{}, ErrNoPoolElement
	}
	return c.pick(pc, skip)
}

// pick runs the pool's policy over the entry, after dropping the PE IDs in
// skip from it, and marks the entry as having served a selection.
func (c *PoolUserCore) pick(pc *poolCache, skip []uint32) (tlv.PoolElement, error) {
	for _, id := range skip {
		pc.remove(id)
	}
	pc.unpicked = false
	c.slotBuf = pc.sel.Select(1, c.slotBuf[:0])
	if len(c.slotBuf) == 0 {
		return tlv.PoolElement{}, ErrNoPoolElement
	}
	return clonePE(pc.pes[c.slotBuf[0]]), nil
}

// Cached returns a copy of the PEs cached for the pool, fresh or not.
func (c *PoolUserCore) Cached(handle []byte) []tlv.PoolElement {
	if pc := c.cache[string(handle)]; pc != nil {
		return pc.list()
	}
	return nil
}

// ReportUnreachable tells the home registrar that a PE could not be
// reached (ASAP_ENDPOINT_UNREACHABLE, RFC 5352 §3.5) and drops it from the
// cache at once. Without a home registrar only the cache is purged.
func (c *PoolUserCore) ReportUnreachable(now time.Time, handle []byte, peID uint32) {
	if pc := c.cache[string(handle)]; pc != nil {
		pc.remove(peID)
	}
	if c.h.hasHome() {
		c.out = append(c.out, Send{Assoc: c.h.home, Msg: &tlv.EndpointUnreachable{PoolHandle: bytes.Clone(handle), PEID: peID}})
	}
}

// drop removes a PE from the cache without reporting it.
func (c *PoolUserCore) drop(handle []byte, peID uint32) {
	if pc := c.cache[string(handle)]; pc != nil {
		pc.remove(peID)
	}
}

// HandleAnnounce feeds an ASAP_SERVER_ANNOUNCE received at src (RFC 5352
// §3.6). A registrar new to the table is dialled at once when a hunt
// waits for its next round.
func (c *PoolUserCore) HandleAnnounce(now time.Time, src transport.Addr, m *tlv.ServerAnnounce) {
	c.h.handleAnnounce(now, src, m)
}

// HandleConnected reports that the association asked for with Connect is
// up; waiting resolutions go to it.
func (c *PoolUserCore) HandleConnected(now time.Time, id AssocID) {
	if !c.h.connected(now, id) {
		return
	}
	for _, k := range c.queryKeys() {
		if q := c.queries[k]; q.assoc != c.h.home {
			c.send(now, q)
		}
	}
}

// HandleConnectFailed reports that a Connect failed, and why (err may be
// nil); the last error goes into a NoRegistrarError.
func (c *PoolUserCore) HandleConnectFailed(now time.Time, id AssocID, err error) {
	c.h.connectFailed(now, id, err)
}

// HandleLost reports that an association went down. Resolutions waiting
// on the home start a server hunt (RFC 5352 §3.6).
func (c *PoolUserCore) HandleLost(now time.Time, id AssocID) {
	if !c.h.lost(now, id) {
		return
	}
	if len(c.queries) > 0 {
		c.h.startHunt(now)
		for _, q := range c.queries {
			q.noRegAt = c.h.failed + c.maxHunts
		}
	}
}

// Handle processes one ASAP message received on association from.
func (c *PoolUserCore) Handle(now time.Time, from AssocID, msg tlv.ASAPMessage) {
	if !c.h.known(from) {
		return
	}
	switch m := msg.(type) {
	case *tlv.HandleResolutionResponse:
		c.onResponse(now, from, m)
	case *tlv.ServerAnnounce:
		c.h.announce(now, transport.Addr{}, m)
	case *tlv.ASAPError:
		c.onError(now, from, m)
	default:
		c.log.Debug("pu: ignoring message", "type", msg.ASAPType(), "assoc", from)
	}
}

// onResponse: RFC 5352 §3.5. An Operation Error fails the resolution (and
// drops the cache entry); otherwise the PEs replace the pool's cache entry.
func (c *PoolUserCore) onResponse(now time.Time, from AssocID, m *tlv.HandleResolutionResponse) {
	q := c.queries[string(m.PoolHandle)]
	if q == nil || q.assoc != from {
		return
	}
	c.h.success() // the home answers: a later hunt starts at once
	if m.Error != nil {
		delete(c.cache, string(q.handle))
		c.finish(q, nil, newRejectError(tlv.ASAPHandleResolution, m.Error))
		return
	}
	pc := c.update(now, q.handle, m)
	if pc != nil {
		pc.unpicked = true
	}
	if pc == nil || pc.sel.Len() == 0 {
		c.finish(q, nil, ErrNoPoolElement)
		return
	}
	c.finish(q, pc.list(), nil)
}

// update replaces the pool's cache entry with the response's PEs. PEs
// whose policy type differs from the pool's, or which carry no dialable
// transport, are skipped. It keeps the selector (and so the round-robin
// position) of PEs that stay.
func (c *PoolUserCore) update(now time.Time, handle []byte, m *tlv.HandleResolutionResponse) *poolCache {
	var ptype policy.Type
	switch {
	case m.Policy != nil:
		ptype = policy.Type(m.Policy.Type)
	case len(m.PEs) > 0:
		ptype = policy.Type(m.PEs[0].Policy.Type)
	default:
		delete(c.cache, string(handle))
		return nil
	}
	pc := c.cache[string(handle)]
	if pc == nil || pc.ptype != ptype {
		sel, err := policy.New(ptype, c.src)
		if err != nil {
			c.log.Debug("pu: pool policy unusable", "pool", tlv.PoolHandle(handle), "err", err)
			delete(c.cache, string(handle))
			return nil
		}
		pc = &poolCache{ptype: ptype, sel: sel, slotOf: map[uint32]int32{}}
		c.cache[string(handle)] = pc
	}
	pc.updated = now
	seen := make(map[uint32]bool, len(m.PEs))
	for i := range m.PEs {
		pe := &m.PEs[i]
		t, v, err := policy.Decode(pe.Policy)
		if err != nil || t != ptype || seen[pe.ID] || len(pe.UserTransport.Addrs) == 0 {
			continue
		}
		seen[pe.ID] = true
		if s, ok := pc.slotOf[pe.ID]; ok {
			// Re-inserting a member restarts it behind the others
			// (policy.Selector.Update); only a changed value may do that,
			// else each answer would reset the round-robin position.
			changed := !bytes.Equal(pc.pes[s].Policy.Value, pe.Policy.Value)
			pc.pes[s] = clonePE(*pe)
			if changed {
				pc.sel.Update(s, v)
			}
			continue
		}
		pc.add(clonePE(*pe), v)
	}
	for id := range pc.slotOf {
		if !seen[id] {
			pc.remove(id)
		}
	}
	return pc
}

func (pc *poolCache) add(pe tlv.PoolElement, v policy.Values) {
	var s int32
	if n := len(pc.free); n > 0 {
		s, pc.free = pc.free[n-1], pc.free[:n-1]
		pc.pes[s], pc.alive[s] = pe, true
	} else {
		s = int32(len(pc.pes))
		pc.pes, pc.alive = append(pc.pes, pe), append(pc.alive, true)
	}
	pc.slotOf[pe.ID] = s
	pc.sel.Add(s, v)
}

func (pc *poolCache) remove(id uint32) {
	s, ok := pc.slotOf[id]
	if !ok {
		return
	}
	delete(pc.slotOf, id)
	pc.sel.Remove(s)
	pc.pes[s], pc.alive[s] = tlv.PoolElement{}, false
	pc.free = append(pc.free, s)
}

// list returns copies of the live PEs in slot order.
func (pc *poolCache) list() []tlv.PoolElement {
	l := make([]tlv.PoolElement, 0, len(pc.slotOf))
	for s, ok := range pc.alive {
		if ok {
			l = append(l, clonePE(pc.pes[s]))
		}
	}
	return l
}

// onError: an ASAP_ERROR (RFC 5352 §2.2.14) refuses a request. When a
// cause carries our ASAP_HANDLE_RESOLUTION back (Unrecognized Message),
// only that pool's resolution fails; otherwise every resolution sent on
// that association does.
func (c *PoolUserCore) onError(now time.Time, from AssocID, m *tlv.ASAPError) {
	err := newRejectError(tlv.ASAPHandleResolution, &m.Error)
	for _, cause := range m.Error.Causes {
		if len(cause.Info) == 0 {
			continue
		}
		if echoed, perr := tlv.ParseASAP(cause.Info); perr == nil {
			if hr, ok := echoed.(*tlv.HandleResolution); ok {
				if q := c.queries[string(hr.PoolHandle)]; q != nil && q.assoc == from {
					c.finish(q, nil, err)
					return
				}
			}
		}
	}
	for _, k := range c.queryKeys() {
		if q := c.queries[k]; q.assoc == from {
			c.finish(q, nil, err)
		}
	}
}

func (c *PoolUserCore) queryKeys() []string {
	keys := make([]string, 0, len(c.queries))
	for k := range c.queries {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// NextDeadline returns when HandleTimeout must next run, or the zero time.
func (c *PoolUserCore) NextDeadline() time.Time {
	d := c.h.nextDeadline()
	for _, q := range c.queries {
		d = earliest(d, q.due)
	}
	return d
}

// HandleTimeout runs the timers due at now: T1 (resend up to
// MAX-REQUEST-RETRANSMIT, then server hunt, RFC 5352 §3.5) and T5. A
// resolution waiting for a registrar fails with a *NoRegistrarError after
// MaxServerHunts failed hunts. With no resolution left waiting, the hunt
// stops; its back-off carries over to the next one unless a registrar
// answered meanwhile, so that a host that resolves in a loop does not
// undo it.
func (c *PoolUserCore) HandleTimeout(now time.Time) {
	defer func() {
		if len(c.queries) == 0 && c.h.hunting {
			c.h.stopHunt()
		}
	}()
	if c.h.expire(now) {
		var noReg *NoRegistrarError
		for _, k := range c.queryKeys() {
			if q := c.queries[k]; q.assoc == 0 && c.h.failed >= q.noRegAt {
				if noReg == nil {
					noReg = c.h.noRegistrar()
				}
				c.finish(q, nil, noReg)
			}
		}
		if len(c.queries) > 0 {
			c.h.round(now)
		}
	}
	for _, k := range c.queryKeys() {
		q := c.queries[k]
		if q == nil || now.Before(q.due) {
			continue
		}
		if q.assoc != 0 && q.assoc == c.h.home && q.tries < c.t.MaxRequestRetransmit {
			c.send(now, q)
			continue
		}
		q.hunts++
		if q.hunts > c.maxHunts {
			var err error = ErrTimeout
			if !q.sent {
				err = c.h.noRegistrar()
			}
			c.finish(q, nil, err)
			continue
		}
		c.log.Debug("pu: MAX-REQUEST-RETRANSMIT reached, server hunt", "pool", tlv.PoolHandle(k), "hunt", q.hunts)
		// A resolution that still waits for the hunt it started keeps its
		// count of failed hunts: a hunt whose dials take up to
		// HuntDialLimit each may outlast T1.
		waiting := q.assoc == 0 && c.h.hunting
		if q.assoc != 0 && q.assoc == c.h.home {
			c.h.dropHome()
		}
		q.assoc, q.tries = 0, 0
		q.due = now.Add(c.t.T1ENRPRequest)
		c.h.startHunt(now)
		if !waiting {
			q.noRegAt = c.h.failed + c.maxHunts
		}
		// Other resolutions on the dropped home wait for the new one.
		for _, o := range c.queries {
			if o.assoc != 0 && o.assoc != c.h.home {
				o.assoc, o.tries = 0, 0
				o.noRegAt = c.h.failed + c.maxHunts
			}
		}
	}
}

// clonePE deep-copies a PoolElement (parsed ones alias receive buffers)
// and drops its unknown parameters.
func clonePE(pe tlv.PoolElement) tlv.PoolElement {
	pe.UserTransport.Addrs = slices.Clone(pe.UserTransport.Addrs)
	pe.ASAPTransport.Addrs = slices.Clone(pe.ASAPTransport.Addrs)
	pe.Policy.Value = bytes.Clone(pe.Policy.Value)
	pe.Unknown = nil
	return pe
}
