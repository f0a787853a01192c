package asap

import (
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

// hunter is the registrar side of an endpoint, shared by the pool element
// and pool user cores: the registrar table, the home association and the
// server hunt (RFC 5352 §3.6).
type hunter struct {
	log      *slog.Logger
	rng      *rand.Rand
	kind     transport.Kind
	t5       time.Duration
	t7       time.Duration
	parallel int

	static    []transport.Addr
	announced map[uint32]registrarEntry

	nextID   AssocID
	home     AssocID
	homeAddr transport.Addr
	homeSID  uint32         // server ID of the home, 0 while unknown
	lastHome transport.Addr // the home most recently lost

	hunting  bool
	deadline time.Time                  // end of the current round
	attempts map[AssocID]registrarEntry // associations being dialled
	tried    map[transport.Addr]bool    // tried in this hunt
	inbound  map[AssocID]transport.Addr // associations the driver accepted

	out *[]Output
}

func newHunter(out *[]Output, log *slog.Logger, rng *rand.Rand, kind transport.Kind, static []transport.Addr, t Timers, parallel int) hunter {
	return hunter{
		log: log, rng: rng, kind: kind, t5: t.T5ServerHunt, t7: t.T7ENRPOutdate, parallel: parallel,
		static:    slices.Clone(static),
		announced: map[uint32]registrarEntry{},
		attempts:  map[AssocID]registrarEntry{},
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

// announce records an ASAP_SERVER_ANNOUNCE (RFC 5352 §3.6). Without
// transport parameters the registrar is at the datagram's source address,
// ASAP port.
func (h *hunter) announce(now time.Time, src transport.Addr, m *tlv.ServerAnnounce) {
	if m.ServerID == 0 {
		return // 0 is no server ID
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
			return
		}
		port := uint16(ASAPPort)
		if h.kind == transport.KindMem && src.AddrPort.Port() != 0 {
			port = src.AddrPort.Port() // memnet has no well-known ports
		}
		e.addr = transport.Addr{Kind: h.kind, AddrPort: netip.AddrPortFrom(src.AddrPort.Addr().Unmap(), port)}
	}
	if len(h.announced) >= maxAnnounced {
		if _, ok := h.announced[m.ServerID]; !ok {
			return // table full: keep the registrars we know
		}
	}
	h.announced[m.ServerID] = e
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
// registrar table is empty, so the caller can fail what waits for a
// registrar; the hunt still goes on, waiting for announces.
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
	if failed.AddrPort.IsValid() {
		h.tried[failed] = true // the registrar that failed us goes last
	}
	return h.round(now)
}

// round dials up to `parallel` untried registrars, chosen at random, and
// arms T5. When every registrar has been tried, the next round starts over.
func (h *hunter) round(now time.Time) bool {
	h.deadline = now.Add(h.t5)
	cands := h.candidates(now)
	if len(cands) == 0 {
		h.log.Debug("server hunt: no registrar known")
		return false
	}
	fresh := slices.DeleteFunc(slices.Clone(cands), func(e registrarEntry) bool { return h.tried[e.addr] })
	if len(fresh) == 0 {
		clear(h.tried)
		fresh = cands
	}
	h.rng.Shuffle(len(fresh), func(i, j int) { fresh[i], fresh[j] = fresh[j], fresh[i] })
	for _, e := range fresh[:min(len(fresh), h.parallel)] {
		id := h.newAssoc()
		h.attempts[id] = e
		h.tried[e.addr] = true
		h.log.Debug("server hunt: dialling", "assoc", id, "addr", e.addr.AddrPort, "server", e.serverID)
		h.emit(Connect{Assoc: id, Addr: e.addr})
	}
	return true
}

// connected handles an association that came up. It reports whether it
// became the home; otherwise it was closed (hunt over, or unknown ID).
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
	h.home, h.homeAddr, h.homeSID = id, e.addr, e.serverID
	h.log.Debug("server hunt: new home", "assoc", id, "addr", e.addr.AddrPort, "server", e.serverID)
	h.emit(HomeChanged{Assoc: id, ServerID: e.serverID})
	return true
}

// stopHunt ends a hunt and closes the attempts still dialling.
func (h *hunter) stopHunt() {
	h.hunting = false
	h.deadline = time.Time{}
	ids := make([]AssocID, 0, len(h.attempts))
	for a := range h.attempts {
		ids = append(ids, a)
	}
	slices.Sort(ids)
	for _, a := range ids {
		h.emit(Close{Assoc: a})
		delete(h.attempts, a)
	}
}

// connectFailed handles a dial that failed. The next round starts when
// T5 expires, even when every dial of this one failed at once: a refused
// dial must not turn the hunt into a busy loop.
func (h *hunter) connectFailed(now time.Time, id AssocID) {
	delete(h.attempts, id)
}

// lost handles an association the driver saw go down. It reports whether
// it was the home.
func (h *hunter) lost(now time.Time, id AssocID) bool {
	delete(h.inbound, id)
	if _, ok := h.attempts[id]; ok {
		h.connectFailed(now, id)
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

// timeout runs T5: a round whose registrars did not come up in time is
// abandoned and the next round starts.
func (h *hunter) timeout(now time.Time) {
	if !h.hunting || now.Before(h.deadline) {
		return
	}
	ids := make([]AssocID, 0, len(h.attempts))
	for a := range h.attempts {
		ids = append(ids, a)
	}
	slices.Sort(ids)
	for _, a := range ids {
		h.emit(Close{Assoc: a})
		delete(h.attempts, a)
	}
	h.round(now)
}

// nextDeadline is the end of the current hunt round, or zero.
func (h *hunter) nextDeadline() time.Time {
	if !h.hunting {
		return time.Time{}
	}
	return h.deadline
}

// earliest returns the earlier non-zero time.
func earliest(a, b time.Time) time.Time {
	if a.IsZero() || (!b.IsZero() && b.Before(a)) {
		return b
	}
	return a
}
