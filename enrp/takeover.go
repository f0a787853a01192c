package enrp

// Takeover of a peer registrar presumed dead (RFC 5353 §3.9), as a sans-IO
// sub-state-machine of the Core: it keeps, per target server T, our own
// takeover in progress (the peers whose ENRP_INIT_TAKEOVER_ACK we still
// wait for, and the TAKEOVER-EXPIRY deadline) and the takeovers by other
// registrars that we acknowledged. It does no I/O and reads no clock; its
// methods return what the caller must send or do.
//
// The wire behaviour follows RSPLIB 3.4.4's registrar, so that it and ours
// can take over for each other:
//
//   - ENRP_INIT_TAKEOVER goes to every peer in the peer list, T included
//     (if T is alive after all it answers with ENRP_PRESENCE); the ACKs
//     awaited are those of every peer but T.
//   - Concurrent takers of one target: the lower server ID wins. A
//     registrar that runs its own takeover of T and gets an
//     ENRP_INIT_TAKEOVER for T from a sender with a lower server ID
//     acknowledges it and cancels its own; from a higher ID, it stays
//     silent and keeps its own, so that sender never gets all its ACKs.
//     RFC 5353 §3.9 asks for a tie-break between concurrent initiators;
//     which direction its text takes could not be checked against the
//     RFC here, so the direction is RSPLIB's, which is what the peers on
//     the wire do (its ENRP_INIT_TAKEOVER handler compares the sender's ID
//     with its own and gives way when the sender's is lower).
//   - An ENRP_INIT_TAKEOVER for a target we do not know is acknowledged
//     too (RSPLIB does; the sender knows better who is dead).
//   - TAKEOVER-EXPIRY: RFC 5353 §7 names the timer but gives no value; the
//     default is RSPLIB 3.4.4's 5 s. When it runs out with ACKs missing,
//     RSPLIB gives up: it drops T from its peer list without taking its
//     PEs over. timeout reports such targets; the caller does the same.
//   - Any ENRP_PRESENCE from T cancels every takeover of T, ours and the
//     one we acknowledged.
//
// Where this differs from RSPLIB, on purpose:
//   - A takeover with no peer to wait for (a pair of registrars, the other
//     one dead) completes at once: "ACKs from all peers" holds for none.
//     RSPLIB would wait for the expiry and then drop T without a takeover,
//     so two registrars would never take over for each other.
//   - A peer that goes down while we wait for its ACK is no longer waited
//     for (peerDown); RSPLIB keeps waiting and the takeover expires.
//   - A takeover by another registrar that we acknowledged is remembered
//     for one TAKEOVER-EXPIRY only (and at most maxAckedTakeovers of them):
//     if its ENRP_TAKEOVER_SERVER has not come by then, or its initiator
//     goes down, the caller is told (timeout, peerDown) and may start its
//     own takeover if T still owns PEs. RSPLIB waits forever and T's PEs
//     stay without a live home.
//   - ENRP_TAKEOVER_SERVER for T from another registrar cancels our own
//     takeover of T: T's PEs have a new home, there is nothing left to take.
//   - A target we completed a takeover of is not taken over a second time,
//     and an ENRP_INIT_TAKEOVER for it from another registrar gets no ACK,
//     until a Presence from it shows it alive again (at most
//     maxFinishedTakeovers are remembered, oldest forgotten first).

import (
	"time"

	"github.com/go-rserpool/rserpool/handlespace"
	"github.com/go-rserpool/rserpool/tlv"
)

const (
	// defaultTakeoverExpiry is TAKEOVER-EXPIRY when the configuration
	// leaves it zero: RSPLIB 3.4.4's default (RFC 5353 §7 gives no value).
	defaultTakeoverExpiry = 5 * time.Second

	// maxAckedTakeovers bounds the takeovers by others we remember (one
	// per target). A peer may name any target in ENRP_INIT_TAKEOVER; past
	// the bound we still acknowledge, but do not remember.
	maxAckedTakeovers = 256

	// maxFinishedTakeovers bounds the targets remembered as taken over.
	maxFinishedTakeovers = 256
)

// takeovers is the takeover state of one registrar (RFC 5353 §3.9). The
// zero value is not usable: use newTakeovers. Not safe for concurrent use;
// the Core's loop owns it.
type takeovers struct {
	self   uint32
	expiry time.Duration

	own    map[uint32]*ownTakeover  // target -> our takeover of it
	others map[uint32]ackedTakeover // target -> the takeover of it we acknowledged

	finished     map[uint32]struct{} // targets we took over, until they show up alive
	finishedFIFO []uint32            // the same, oldest first, to bound it
}

// ownTakeover is our takeover of one target in progress.
type ownTakeover struct {
	deadline time.Time           // TAKEOVER-EXPIRY
	waiting  map[uint32]struct{} // peers whose ENRP_INIT_TAKEOVER_ACK is missing
}

// ackedTakeover is a takeover by another registrar we acknowledged.
type ackedTakeover struct {
	by       uint32    // the registrar taking the target over
	deadline time.Time // when we stop waiting for its ENRP_TAKEOVER_SERVER
}

// newTakeovers returns the takeover state of the registrar self. expiry is
// TAKEOVER-EXPIRY; zero or negative means defaultTakeoverExpiry.
func newTakeovers(self uint32, expiry time.Duration) *takeovers {
	if expiry <= 0 {
		expiry = defaultTakeoverExpiry
	}
	return &takeovers{
		self:     self,
		expiry:   expiry,
		own:      make(map[uint32]*ownTakeover),
		others:   make(map[uint32]ackedTakeover),
		finished: make(map[uint32]struct{}),
	}
}

// takeoverStart is what start asks the caller to do.
type takeoverStart struct {
	// Started: our takeover of the target began (tell the host:
	// TakeoverStarted). False: nothing to do (see start for why).
	Started bool
	// Init lists the peers to send ENRP_INIT_TAKEOVER(target) to, the
	// target included.
	Init []uint32
	// Done: no peer has to acknowledge, the takeover is complete already;
	// finish it as when onAck returns true.
	Done bool
}

// start begins our takeover of target, presumed dead (RFC 5353 §3.9; the
// MAX-TIME-NO-RESPONSE of §3.3 ran out). owned is how many PEs with home
// target our handlespace holds; peers is our peer list (the target, our
// own ID, 0 and repeats are allowed and sorted out). Nothing starts when
// target is 0 or ourselves, owns no PE, is being taken over already (by
// us, or by a registrar we acknowledged: we wait for it), or was taken
// over by us and has not been heard from since.
func (t *takeovers) start(now time.Time, target uint32, owned int, peers []uint32) takeoverStart {
	if target == 0 || target == t.self || owned <= 0 {
		return takeoverStart{}
	}
	if _, ok := t.own[target]; ok {
		return takeoverStart{}
	}
	if _, ok := t.others[target]; ok {
		return takeoverStart{}
	}
	if _, ok := t.finished[target]; ok {
		return takeoverStart{}
	}
	o := &ownTakeover{deadline: now.Add(t.expiry), waiting: make(map[uint32]struct{}, len(peers))}
	init := make([]uint32, 0, len(peers))
	seen := make(map[uint32]struct{}, len(peers))
	for _, p := range peers {
		if p == 0 || p == t.self {
			continue
		}
		if _, dup := seen[p]; dup {
			continue
		}
		seen[p] = struct{}{}
		init = append(init, p)
		if p != target {
			o.waiting[p] = struct{}{}
		}
	}
	if len(o.waiting) == 0 {
		t.finish(target)
		return takeoverStart{Started: true, Init: init, Done: true}
	}
	t.own[target] = o
	return takeoverStart{Started: true, Init: init}
}

// takeoverInit is what onInit asks the caller to do.
type takeoverInit struct {
	// Ack: answer the sender with ENRP_INIT_TAKEOVER_ACK(target).
	Ack bool
	// Alive: we are the target. Send ENRP_PRESENCE to every peer (and the
	// multicast group) to show we live; no ACK (RFC 5353 §3.9).
	Alive bool
	// Cancelled: our own takeover of the target gave way to the sender's
	// (lower server ID).
	Cancelled bool
}

// onInit handles ENRP_INIT_TAKEOVER(target) from the peer from (RFC 5353
// §3.9): we are the target -> Alive; we run our own takeover of target ->
// the lower server ID wins (see the file comment): from < self gives Ack
// and Cancelled, otherwise nothing (we stay silent and keep ours); else
// Ack, and we remember that from takes target over, also when target is
// unknown to us. A target we took over ourselves (and have not heard from
// since) gets no ACK either: our ENRP_TAKEOVER_SERVER is on its way to the
// sender, and acknowledging would let a second registrar claim the same
// PEs (RSPLIB acknowledges, having forgotten the target). Messages from
// ourselves or from server ID 0, and an INIT in which a server names
// itself as the target, change nothing.
func (t *takeovers) onInit(now time.Time, from, target uint32) takeoverInit {
	if from == 0 || from == t.self || from == target || target == 0 {
		return takeoverInit{}
	}
	if target == t.self {
		return takeoverInit{Alive: true}
	}
	if _, ok := t.finished[target]; ok {
		return takeoverInit{} // we took it over already: a second home must not arise
	}
	var r takeoverInit
	if _, ok := t.own[target]; ok {
		if from > t.self {
			return takeoverInit{} // we win: silence keeps the sender from completing
		}
		delete(t.own, target)
		r.Cancelled = true
	}
	r.Ack = true
	if _, ok := t.others[target]; ok || len(t.others) < maxAckedTakeovers {
		t.others[target] = ackedTakeover{by: from, deadline: now.Add(t.expiry)}
	}
	return r
}

// onAck handles ENRP_INIT_TAKEOVER_ACK(target) from the peer from (RFC 5353
// §3.9). done is true when it was the last ACK our takeover of target
// waited for: the caller then finishes the takeover: ENRP_TAKEOVER_SERVER
// (target) to every peer, makes itself home of target's PEs and sends each
// an ASAP_ENDPOINT_KEEP_ALIVE with H=1 (adoptPEs), removes target from its
// peer list, and tells the host (TakeoverDone). ACKs for a takeover we do
// not run, from peers we do not wait for, and repeated ACKs change
// nothing.
func (t *takeovers) onAck(now time.Time, from, target uint32) (done bool) {
	o := t.own[target]
	if o == nil {
		return false
	}
	if _, ok := o.waiting[from]; !ok {
		return false
	}
	delete(o.waiting, from)
	if len(o.waiting) > 0 {
		return false
	}
	delete(t.own, target)
	t.finish(target)
	return true
}

// onTakeoverServer handles ENRP_TAKEOVER_SERVER(target) from the peer from
// (RFC 5353 §3.9): from is the new home of target's PEs (the caller moves
// them: handlespace TransferOwner(now, target, from)). Our own takeover of
// target, if any, is cancelled (cancelled is true), and the takeover we
// acknowledged is over. When target is ourselves, another registrar took
// us over: nothing changes here, the caller decides (tell the host:
// TakenOverBy; our PEs learn of their new home from its keep-alives).
func (t *takeovers) onTakeoverServer(now time.Time, from, target uint32) (cancelled bool) {
	if from == 0 || from == t.self || from == target || target == 0 || target == t.self {
		return false
	}
	delete(t.others, target)
	if _, ok := t.own[target]; ok {
		delete(t.own, target)
		return true
	}
	return false
}

// onPresence handles an ENRP_PRESENCE from the peer from: it lives, so
// every takeover of it ends (RFC 5353 §3.9; RSPLIB cancels on any
// Presence from the target). cancelled is true when our own takeover of
// it was running.
func (t *takeovers) onPresence(now time.Time, from uint32) (cancelled bool) {
	delete(t.others, from)
	if _, ok := t.finished[from]; ok {
		delete(t.finished, from)
		for i, id := range t.finishedFIFO {
			if id == from {
				t.finishedFIFO = append(t.finishedFIFO[:i], t.finishedFIFO[i+1:]...)
				break
			}
		}
	}
	if _, ok := t.own[from]; ok {
		delete(t.own, from)
		return true
	}
	return false
}

// cancel ends our own takeover of target, if one runs, and reports whether
// one did.
func (t *takeovers) cancel(target uint32) bool {
	if _, ok := t.own[target]; ok {
		delete(t.own, target)
		return true
	}
	return false
}

// takeoverPeerDown is what peerDown asks the caller to do.
type takeoverPeerDown struct {
	// Done lists the targets whose takeover waited only for the peer that
	// went down: finish each as when onAck returns true.
	Done []uint32
	// Orphaned lists the targets the peer that went down was taking over
	// (we had acknowledged it). The caller may start its own takeover of
	// each that is still presumed dead and owns PEs.
	Orphaned []uint32
}

// peerDown tells that peer id left our peer list (presumed dead, or
// removed): an ACK we waited for from it is no longer needed, and a
// takeover by it will not finish. A peer that is itself the target of our
// takeover changes nothing (it is down already).
func (t *takeovers) peerDown(now time.Time, id uint32) takeoverPeerDown {
	var r takeoverPeerDown
	if id == 0 || id == t.self {
		return r
	}
	for target, o := range t.own {
		if _, ok := o.waiting[id]; !ok {
			continue
		}
		delete(o.waiting, id)
		if len(o.waiting) == 0 {
			delete(t.own, target)
			t.finish(target)
			r.Done = append(r.Done, target)
		}
	}
	for target, a := range t.others {
		if a.by == id {
			delete(t.others, target)
			r.Orphaned = append(r.Orphaned, target)
		}
	}
	sortIDs(r.Done)
	sortIDs(r.Orphaned)
	return r
}

// takeoverTimeout is what timeout asks the caller to do.
type takeoverTimeout struct {
	// Expired lists the targets of our takeovers whose TAKEOVER-EXPIRY ran
	// out with ACKs missing. As RSPLIB does, the caller gives up: it
	// removes the target from its peer list without taking its PEs over.
	Expired []uint32
	// Forgotten lists the targets whose takeover by another registrar we
	// acknowledged one TAKEOVER-EXPIRY ago without an ENRP_TAKEOVER_SERVER
	// since. The caller may start its own takeover of each that is still
	// presumed dead and owns PEs.
	Forgotten []uint32
}

// timeout runs the TAKEOVER-EXPIRY timers due at now.
func (t *takeovers) timeout(now time.Time) takeoverTimeout {
	var r takeoverTimeout
	for target, o := range t.own {
		if !now.Before(o.deadline) {
			delete(t.own, target)
			r.Expired = append(r.Expired, target)
		}
	}
	for target, a := range t.others {
		if !now.Before(a.deadline) {
			delete(t.others, target)
			r.Forgotten = append(r.Forgotten, target)
		}
	}
	sortIDs(r.Expired)
	sortIDs(r.Forgotten)
	return r
}

// nextDeadline is the earliest TAKEOVER-EXPIRY deadline, zero if none.
func (t *takeovers) nextDeadline() time.Time {
	var d time.Time
	for _, o := range t.own {
		if d.IsZero() || o.deadline.Before(d) {
			d = o.deadline
		}
	}
	for _, a := range t.others {
		if d.IsZero() || a.deadline.Before(d) {
			d = a.deadline
		}
	}
	return d
}

// running reports whether our own takeover of target is in progress, and
// how many ACKs it still waits for.
func (t *takeovers) running(target uint32) (missing int, ok bool) {
	o := t.own[target]
	if o == nil {
		return 0, false
	}
	return len(o.waiting), true
}

// takenOverBy reports which registrar we acknowledged as taking target
// over, if any (RFC 5353 §3.9: a registrar that finds the target dead
// then waits for it instead of starting its own takeover).
func (t *takeovers) takenOverBy(target uint32) (uint32, bool) {
	a, ok := t.others[target]
	return a.by, ok
}

// finish records that we took target over.
func (t *takeovers) finish(target uint32) {
	if _, ok := t.finished[target]; ok {
		return
	}
	if len(t.finishedFIFO) >= maxFinishedTakeovers {
		delete(t.finished, t.finishedFIFO[0])
		t.finishedFIFO = append(t.finishedFIFO[:0], t.finishedFIFO[1:]...)
	}
	t.finished[target] = struct{}{}
	t.finishedFIFO = append(t.finishedFIFO, target)
}

// sortIDs sorts a few server IDs in place (insertion sort; the lists are
// short), so that the caller's outputs come in a stable order.
func sortIDs(ids []uint32) {
	for i := 1; i < len(ids); i++ {
		for j := i; j > 0 && ids[j] < ids[j-1]; j-- {
			ids[j], ids[j-1] = ids[j-1], ids[j]
		}
	}
}

// takeoverKeepAlive is one ASAP_ENDPOINT_KEEP_ALIVE with H=1 that the new
// home sends to a PE it took over (RFC 5353 §3.9, RFC 5352 §3.7: the PE
// adopts the sender as its home and answers with an
// ASAP_ENDPOINT_KEEP_ALIVE_ACK).
type takeoverKeepAlive struct {
	// PE is a copy of the PE as the store held it (home still the
	// target): where to reach it is its ASAP transport (ASAPTransport, the
	// address it registered from, as the handle update carried it; RSPLIB
	// sends the keep-alive there), else its user transport.
	PE tlv.PoolElement
	// Msg is the keep-alive: H=1, our server ID, the pool handle (a copy),
	// and the PE identifier (RSPLIB's extension, as in the Core's own
	// keep-alives).
	Msg *tlv.EndpointKeepAlive
}

// takeoverKeepAlives builds the H=1 keep-alives for every PE whose home in
// s is target, to be sent by the registrar self. It does not change s.
func takeoverKeepAlives(s *handlespace.Store, target, self uint32) []takeoverKeepAlive {
	n := s.Owned(target)
	if n == 0 || target == self {
		return nil
	}
	out := make([]takeoverKeepAlive, 0, n)
	s.ForEachOwnedBy(target, func(handle tlv.PoolHandle, pe tlv.PoolElement) bool {
		h := append(tlv.PoolHandle(nil), handle...)
		out = append(out, takeoverKeepAlive{
			PE: handlespace.ClonePoolElement(pe),
			Msg: &tlv.EndpointKeepAlive{
				Home:       true,
				ServerID:   self,
				PoolHandle: h,
				HasPEID:    true,
				PEID:       pe.ID,
			},
		})
		return true
	})
	return out
}

// adoptPEs finishes a takeover in the store: it builds the H=1 keep-alives
// for target's PEs (takeoverKeepAlives), then makes self the home of all
// of them (RFC 5353 §3.9; the ownership checksums follow). The caller
// sends the keep-alives, starts their keep-alive timeouts (RFC 5352 §3.7,
// as RSPLIB does) and announces ENRP_TAKEOVER_SERVER to its peers.
func adoptPEs(now time.Time, s *handlespace.Store, target, self uint32) []takeoverKeepAlive {
	kas := takeoverKeepAlives(s, target, self)
	if len(kas) > 0 {
		s.TransferOwner(now, target, self)
	}
	return kas
}
