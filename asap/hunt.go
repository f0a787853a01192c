package asap

import (
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"slices"
	"time"

	"github.com/go-rserpool/rserpool/tlv"
	"github.com/go-rserpool/rserpool/transport"
)

// registrarEntry is one registrar of the table: configured (serverID 0,
// no expiry) or announced (RFC 5352 §3.6, expires T7 after the last
// ASAP_SERVER_ANNOUNCE).
type registrarEntry struct {
	serverID uint32
	addr     transport.Addr
	expires  time.Time // zero: static
}

// attempt is a server-hunt dial not yet up: the registrar dialled and
// when the dial is given up (HuntDialLimit after it started).
type attempt struct {
	registrarEntry
	limit time.Time
}

// hunter is the registrar side of an endpoint, shared by the pool element
// and pool user cores: the registrar table, the home association and the
// server hunt (RFC 5352 §3.6).
type hunter struct {
	log      *slog.Logger
	rng      *rand.Rand
	kind     transport.Kind
	t5       time.Duration
	t5max    time.Duration
	dialMax  time.Duration // Timers.HuntDialLimit; negative: the round's end
	t7       time.Duration
	parallel int

	static    []transport.Addr
	announced map[uint32]registrarEntry

	nextID   AssocID
	home     AssocID
	homeAddr transport.Addr
	homeSID  uint32         // server ID of the home, 0 while unknown
	homeAt   time.Time      // when the home association came up
	lastHome transport.Addr // the home most recently lost

	// A hunt goes in rounds (RFC 5352 §3.6): each dials up to `parallel`
	// registrars that were not tried in this pass over the table and have
	// no dial in progress, and lasts T5 (backed off). A dial still in its
	// handshake when its round ends is not closed: it goes on, up to
	// dialMax, while later rounds try other registrars, and whichever
	// association comes up first becomes the home (the others are
	// closed then).
	hunting  bool
	deadline time.Time                  // end of the current round
	attempts map[AssocID]attempt        // associations being dialled
	tried    map[transport.Addr]bool    // tried in this pass
	inbound  map[AssocID]transport.Addr // associations the driver accepted

	// Back-off and failure accounting. rounds counts the rounds since a
	// home last answered (useful); a round's length grows with it from
	// T5 to T5ServerHuntMax. failed counts the passes over the whole
	// table in this hunt in which every dial failed (refused, lost, or
	// given up at dialMax), counted at the end of the round in which the
	// last of them ended; dialled, lastErr and passDials feed
	// NoRegistrarError.
	rounds    int
	useful    bool
	failed    int
	passDials int
	dialled   []transport.Addr
	lastErr   error

	out *[]Output
}

// maxDialled bounds NoRegistrarError.Tried.
const maxDialled = 32

func newHunter(out *[]Output, log *slog.Logger, rng *rand.Rand, kind transport.Kind, static []transport.Addr, t Timers, parallel int) hunter {
	return hunter{
		log: log, rng: rng, kind: kind, t5: t.T5ServerHunt, t5max: t.T5ServerHuntMax, dialMax: t.HuntDialLimit, t7: t.T7ENRPOutdate, parallel: parallel,
		useful:    true, // the first hunt dials at once
		static:    slices.Clone(static),
		announced: map[uint32]registrarEntry{},
		attempts:  map[AssocID]attempt{},
		tried:     map[transport.Addr]bool{},
		inbound:   map[AssocID]transport.Addr{},
		out:       out,
	}
}

func (h *hunter) emit(o Output) { *h.out = append(*h.out, o) }

func (h *hunter) newAssoc() AssocID {
	h.nextID++
	return h.nextID
}

// handleAnnounce records an ASAP_SERVER_ANNOUNCE and, when it names a
// registrar the table did not hold and a hunt waits for its round (no
// dial in progress), dials at once. Announces of registrars already known
// do not: a registrar that refuses associations but announces itself
// every T6 must not undo the back-off.
func (h *hunter) handleAnnounce(now time.Time, src transport.Addr, m *tlv.ServerAnnounce) {
	h.giveUp(now)
	if h.announce(now, src, m) && h.hunting && len(h.attempts) == 0 {
		h.round(now)
	}
}

// announce records an ASAP_SERVER_ANNOUNCE (RFC 5352 §3.6). Without
// transport parameters the registrar is at the datagram's source address,
// ASAP port. It reports whether the registrar (server ID and address) is
// new to the table.
func (h *hunter) announce(now time.Time, src transport.Addr, m *tlv.ServerAnnounce) bool {
	if m.ServerID == 0 {
		return false // 0 is no server ID
	}
	e := registrarEntry{serverID: m.ServerID, expires: now.Add(h.t7)}
	found := false
	for _, t := range m.Transports {
		if !dialable(t) {
			continue
		}
		if a, err := AddrOf(t, h.kind); err == nil {
			e.addr, found = a, true
			break
		}
	}
	if !found {
		if !src.AddrPort.IsValid() {
			return false
		}
		// An ASAP_SERVER_ANNOUNCE without transport parameters means
		// "this datagram's source address at the ASAP port" (RFC 5352
		// §3.6, §4).
		port := transport.PortASAP
		if h.kind == transport.KindMem && src.AddrPort.Port() != 0 {
			port = src.AddrPort.Port() // memnet has no well-known ports
		}
		e.addr = transport.Addr{Kind: h.kind, AddrPort: netip.AddrPortFrom(src.AddrPort.Addr().Unmap(), port)}
	}
	old, known := h.announced[m.ServerID]
	if !known && len(h.announced) >= maxAnnounced {
		return false // table full: keep the registrars we know
	}
	h.announced[m.ServerID] = e
	return !known || !now.Before(old.expires) || old.addr != e.addr
}

// maxAnnounced bounds the registrar table against announce floods.
const maxAnnounced = 256

// candidates lists the registrars of the table, expiring announced ones.
func (h *hunter) candidates(now time.Time) []registrarEntry {
	var c []registrarEntry
	for _, a := range h.static {
		c = append(c, registrarEntry{addr: a})
	}
	ids := make([]uint32, 0, len(h.announced))
	for id, e := range h.announced {
		if !now.Before(e.expires) {
			delete(h.announced, id)
			continue
		}
		ids = append(ids, id)
	}
	slices.Sort(ids) // map order must not leak into the (seeded) choice
	for _, id := range ids {
		e := h.announced[id]
		if !slices.ContainsFunc(c, func(x registrarEntry) bool { return x.addr == e.addr }) {
			c = append(c, e)
		}
	}
	return c
}

// hasHome reports whether a home association is up.
func (h *hunter) hasHome() bool { return h.home != 0 }

// dropHome forgets the home association and asks the driver to close it.
func (h *hunter) dropHome() {
	if h.home != 0 {
		h.emit(Close{Assoc: h.home})
		delete(h.inbound, h.home)
	}
	h.home, h.homeSID = 0, 0
	h.homeAddr = transport.Addr{}
}

// startHunt begins a server hunt unless one runs. It returns false when the
// registrar table is empty; the hunt still goes on, waiting for announces.
//
// When the previous home answered (success), the first round dials at
// once with T5 rounds. Otherwise the back-off goes on, and after a home
// that went away within T5ServerHuntMax without answering anything the
// first dial waits one round, so that a registrar that accepts and drops
// associations cannot make a busy loop of hunts.
func (h *hunter) startHunt(now time.Time) bool {
	if h.hunting {
		return true
	}
	failed := h.homeAddr
	if !failed.AddrPort.IsValid() {
		failed = h.lastHome
	}
	h.dropHome()
	h.hunting = true
	clear(h.tried)
	h.failed, h.passDials, h.dialled, h.lastErr = 0, 0, nil, nil
	wasUseful := h.useful
	h.useful = false
	if wasUseful {
		h.rounds = 0
	} else {
		h.rounds++ // the back-off goes on from where the last hunt left it
	}
	if wasUseful || now.Sub(h.homeAt) >= h.t5max {
		if failed.AddrPort.IsValid() {
			h.tried[failed] = true // the registrar that failed us goes last
		}
		return h.round(now)
	}
	h.deadline = now.Add(h.roundLen(now))
	h.log.Debug("server hunt: backing off", "wait", h.deadline.Sub(now))
	return len(h.candidates(now)) > 0
}

// success records that the home answered a request: the next hunt starts
// at once and with T5 rounds again.
func (h *hunter) success() {
	h.useful = true
	h.rounds = 0
}

// roundLen is the length of the next round: T5 for the first round after
// a success, then an exponential back-off capped at T5ServerHuntMax, with
// jitter. With no registrar known a round lasts at least one announce
// period (T6-serverannounce, RFC 5352 §5.1), so that a hunt that waits
// for announces does not count failed hunts faster than registrars
// announce themselves.
func (h *hunter) roundLen(now time.Time) time.Duration {
	d := h.t5
	if h.rounds > 0 && h.t5max > h.t5 {
		d = backoff(h.rng, h.t5, h.t5max, h.rounds+1)
	}
	if len(h.candidates(now)) == 0 {
		d = max(d, DefaultT6ServerAnnounce)
	}
	return d
}

// round dials up to `parallel` registrars, chosen at random among those
// not tried in this pass and with no dial in progress, and arms the
// round's deadline (T5, backed off). When every registrar has been tried
// and no dial is in progress, the next pass starts; while one is, a
// round may dial nothing and only wait for it.
func (h *hunter) round(now time.Time) bool {
	h.deadline = now.Add(h.roundLen(now))
	cands := h.candidates(now)
	if len(cands) == 0 {
		h.log.Debug("server hunt: no registrar known")
		return false
	}
	fresh := slices.DeleteFunc(slices.Clone(cands), func(e registrarEntry) bool { return h.tried[e.addr] || h.dialling(e.addr) })
	if len(fresh) == 0 && len(h.attempts) == 0 {
		clear(h.tried)
		fresh = cands
	}
	h.rng.Shuffle(len(fresh), func(i, j int) { fresh[i], fresh[j] = fresh[j], fresh[i] })
	for _, e := range fresh[:min(len(fresh), h.parallel)] {
		id := h.newAssoc()
		limit := now.Add(h.dialMax)
		if h.dialMax < 0 {
			limit = h.deadline
		}
		h.attempts[id] = attempt{registrarEntry: e, limit: limit}
		h.tried[e.addr] = true
		h.passDials++
		if !slices.Contains(h.dialled, e.addr) && len(h.dialled) < maxDialled {
			h.dialled = append(h.dialled, e.addr)
		}
		h.log.Debug("server hunt: dialling", "assoc", id, "addr", e.addr.AddrPort, "server", tlv.ServerID(e.serverID))
		h.emit(Connect{Assoc: id, Addr: e.addr})
	}
	return true
}

// dialling reports whether a dial to addr is in progress.
func (h *hunter) dialling(addr transport.Addr) bool {
	for _, a := range h.attempts {
		if a.addr == addr {
			return true
		}
	}
	return false
}

// giveUp closes the dials that reached their limit (HuntDialLimit) and
// reports them as failed.
func (h *hunter) giveUp(now time.Time) {
	for _, id := range h.attemptIDs() {
		a := h.attempts[id]
		if now.Before(a.limit) {
			continue
		}
		if h.dialMax < 0 {
			h.lastErr = fmt.Errorf("asap: registrar %v did not answer within its server-hunt round (T5-serverhunt)", a.addr)
		} else {
			h.lastErr = fmt.Errorf("asap: registrar %v did not answer within %v (HuntDialLimit)", a.addr, h.dialMax)
		}
		h.log.Debug("server hunt: dial given up", "assoc", id, "addr", a.addr.AddrPort)
		h.emit(Close{Assoc: id})
		delete(h.attempts, id)
	}
}

// attemptIDs lists the dials in progress in order (map order must not
// leak into the outputs).
func (h *hunter) attemptIDs() []AssocID {
	ids := make([]AssocID, 0, len(h.attempts))
	for a := range h.attempts {
		ids = append(ids, a)
	}
	slices.Sort(ids)
	return ids
}

// connected handles an association that came up. It reports whether it
// became the home (the first dial of a hunt to come up, in whichever
// round it started); otherwise it was closed (hunt over, or unknown ID).
func (h *hunter) connected(now time.Time, id AssocID) bool {
	e, ok := h.attempts[id]
	if !ok || !h.hunting {
		if ok {
			delete(h.attempts, id)
		}
		h.emit(Close{Assoc: id})
		return false
	}
	delete(h.attempts, id)
	h.stopHunt()
	h.home, h.homeAddr, h.homeSID, h.homeAt = id, e.addr, e.serverID, now
	h.log.Debug("server hunt: new home", "assoc", id, "addr", e.addr.AddrPort, "server", tlv.ServerID(e.serverID))
	h.emit(HomeChanged{Assoc: id, ServerID: e.serverID})
	return true
}

// stopHunt ends a hunt and closes the attempts still dialling.
func (h *hunter) stopHunt() {
	h.hunting = false
	h.deadline = time.Time{}
	for _, a := range h.attemptIDs() {
		h.emit(Close{Assoc: a})
		delete(h.attempts, a)
	}
}

// connectFailed handles a dial that failed. The next round starts when
// the round's deadline passes, even when every dial of this one failed at
// once: a refused dial must not turn the hunt into a busy loop.
func (h *hunter) connectFailed(now time.Time, id AssocID, err error) {
	e, ok := h.attempts[id]
	if !ok {
		return
	}
	delete(h.attempts, id)
	if err == nil {
		err = fmt.Errorf("asap: dial %v failed", e.addr)
	}
	h.lastErr = err
}

// lost handles an association the driver saw go down. It reports whether
// it was the home.
func (h *hunter) lost(now time.Time, id AssocID) bool {
	delete(h.inbound, id)
	if _, ok := h.attempts[id]; ok {
		h.connectFailed(now, id, transport.ErrAssociationLost)
		return false
	}
	if id != 0 && id == h.home {
		h.lastHome = h.homeAddr
		h.home, h.homeSID = 0, 0
		h.homeAddr = transport.Addr{}
		return true
	}
	return false
}

// accepted registers an association a registrar opened to the endpoint.
func (h *hunter) accepted(addr transport.Addr) AssocID {
	id := h.newAssoc()
	h.inbound[id] = addr
	return id
}

// known reports whether id is an association the endpoint uses: home,
// accepted, or dialled.
func (h *hunter) known(id AssocID) bool {
	if id == 0 {
		return false
	}
	if id == h.home {
		return true
	}
	if _, ok := h.inbound[id]; ok {
		return true
	}
	return false
}

// adopt makes association id the home with the given server ID (Endpoint
// Keep Alive from a registrar, RFC 5352 §3.7; takeover, RFC 5353 §3.9).
// It closes the former home and any hunt.
func (h *hunter) adopt(id AssocID, sid uint32) {
	if id == h.home {
		h.homeSID = sid
		return
	}
	addr := h.inbound[id]
	if e, ok := h.attempts[id]; ok {
		addr = e.addr
		delete(h.attempts, id)
	}
	h.stopHunt()
	h.dropHome()
	delete(h.inbound, id)
	h.home, h.homeSID, h.homeAddr = id, sid, addr
	h.emit(HomeChanged{Assoc: id, ServerID: sid})
}

// timeout runs the hunt's timers: dials that reached HuntDialLimit are
// closed, and at the end of a round (T5, backed off) the next, longer,
// round starts; dials still in their handshake go on through it.
func (h *hunter) timeout(now time.Time) {
	if h.expire(now) {
		h.round(now)
	}
}

// expire closes the dials that reached their limit and ends a round
// whose deadline passed, reporting whether it did; the caller starts the
// next round (or stops the hunt). Dials still in their handshake within
// their limit are not closed (RFC 5352 §3.6 moves on to other
// registrars; it does not make a slow one fail). A round that ends a pass
// over the whole table (every registrar dialled, and every dial ended
// without an association) counts as one failed server hunt.
func (h *hunter) expire(now time.Time) bool {
	if !h.hunting {
		return false
	}
	h.giveUp(now)
	if now.Before(h.deadline) {
		return false
	}
	cands := h.candidates(now)
	if len(h.attempts) == 0 && !slices.ContainsFunc(cands, func(e registrarEntry) bool { return !h.tried[e.addr] }) {
		if h.passDials > 0 || len(cands) == 0 {
			h.failed++
			h.log.Debug("server hunt: no registrar reachable", "hunts", h.failed, "tried", len(h.dialled))
		}
		clear(h.tried)
		h.passDials = 0
	}
	h.rounds++
	return true
}

// noRegistrar describes the failed hunts so far.
func (h *hunter) noRegistrar() *NoRegistrarError {
	return &NoRegistrarError{Hunts: h.failed, Tried: slices.Clone(h.dialled), Last: h.lastErr}
}

// nextDeadline is the end of the current hunt round or the first dial
// limit, or zero.
func (h *hunter) nextDeadline() time.Time {
	if !h.hunting {
		return time.Time{}
	}
	d := h.deadline
	for _, a := range h.attempts {
		d = earliest(d, a.limit)
	}
	return d
}

// earliest returns the earlier non-zero time.
func earliest(a, b time.Time) time.Time {
	if a.IsZero() || (!b.IsZero() && b.Before(a)) {
		return b
	}
	return a
}
