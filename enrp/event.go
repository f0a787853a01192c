package enrp

import (
	"fmt"
	"time"

	"github.com/go-rserpool/rserpool/tlv"
)

// EventKind says what happened to a PE or a peer registrar; see [Event].
type EventKind uint8

// Kinds of [Event].
const (
	// EventRegistered: a registration added a PE to the handlespace
	// (RFC 5352 §3.2).
	EventRegistered EventKind = iota + 1
	// EventUpdated: the PE, already registered over the same
	// association, registered again (RFC 5352 §3.2: a re-registration
	// refreshes its registration life and may change its transports and
	// policy values).
	EventUpdated
	// EventRemoved: the PE left the handlespace; Event.Reason says why
	// (deregistration, RFC 5352 §3.4; expiry, §3.2; keep-alive timeout
	// or association loss, §3.7; MAX-BAD-PE-REPORT unreachable reports,
	// §3.5).
	EventRemoved

	// The kinds below are about a peer registrar (RFC 5353); their
	// Event carries ServerID and, for takeovers, PEs, and no PE fields.

	// EventPeerUp: a peer registrar (Event.ServerID) is in the peer
	// list and heard from (RFC 5353 §3.1, §3.2).
	EventPeerUp
	// EventPeerDown: a peer registrar (Event.ServerID) left the peer
	// list: not heard within MAX-TIME-LAST-HEARD and no answer within
	// MAX-TIME-NO-RESPONSE (RFC 5353 §3.3), or its PEs were taken over.
	EventPeerDown
	// EventTakeoverStarted: this registrar began to take over the PEs of
	// a peer presumed dead (Event.ServerID): it sent ENRP_INIT_TAKEOVER
	// to every peer (RFC 5353 §3.9).
	EventTakeoverStarted
	// EventTakeoverDone: this registrar is now home of Event.PEs PEs of
	// the dead peer Event.ServerID (RFC 5353 §3.9: every peer
	// acknowledged, or TAKEOVER-EXPIRY passed; ENRP_TAKEOVER_SERVER
	// sent).
	EventTakeoverDone
	// EventTakenOver: another registrar (Event.ServerID, the new home)
	// took over Event.PEs PEs that this registrar owned (RFC 5353 §3.9):
	// its peers presumed it dead, e.g. behind a partition.
	EventTakenOver
)

var eventKindNames = [...]string{
	EventRegistered:      "registered",
	EventUpdated:         "updated",
	EventRemoved:         "removed",
	EventPeerUp:          "peer up",
	EventPeerDown:        "peer down",
	EventTakeoverStarted: "takeover started",
	EventTakeoverDone:    "takeover done",
	EventTakenOver:       "taken over",
}

// peerEventKinds maps the core's PeerEventKind onto EventKind.
var peerEventKinds = [...]EventKind{
	PeerUp:          EventPeerUp,
	PeerDown:        EventPeerDown,
	TakeoverStarted: EventTakeoverStarted,
	TakeoverDone:    EventTakeoverDone,
	TakenOverBy:     EventTakenOver,
}

// IsPeer reports whether the kind is about a peer registrar rather than
// a PE.
func (k EventKind) IsPeer() bool { return k >= EventPeerUp && int(k) < len(eventKindNames) }

// String names the kind.
func (k EventKind) String() string {
	if int(k) < len(eventKindNames) && eventKindNames[k] != "" {
		return eventKindNames[k]
	}
	return fmt.Sprintf("EventKind(%d)", uint8(k))
}

// Event tells the host about a change to a PE this registrar owns, or
// about a peer registrar (the kinds for which Kind.IsPeer holds); see
// Config.Events. The ENRP handle updates to peer registrars (RFC 5353
// §3.6: ADD_PE for a registration or an update, DEL_PE for a removal) are
// made from the same PE changes.
type Event struct {
	Kind EventKind
	// Time is the registrar's clock when the change happened.
	Time time.Time
	// ServerID is the peer registrar a peer event is about: the peer
	// that came up or went down, the dead peer of a takeover, or the new
	// home for EventTakenOver (zero for PE events).
	ServerID uint32
	// PEs counts PEs: those the peer was home of in this registrar's
	// handlespace (EventPeerDown, EventTakeoverStarted), or those taken
	// over (EventTakeoverDone, EventTakenOver); zero for EventPeerUp and
	// the PE events.
	PEs int
	// PoolHandle names the PE's pool (a copy); PEID identifies the PE in
	// it.
	PoolHandle tlv.PoolHandle
	PEID       uint32
	// Reason says why the PE was removed (EventRemoved only; zero
	// otherwise).
	Reason RemoveReason
	// PE is a deep copy of the PE as the registrar stored it, with its
	// home server ID and the ASAP transport the registrar took from the
	// association (EventRegistered and EventUpdated only). It is the zero
	// PoolElement for EventRemoved: the PE is gone; the event that stored
	// it last carried its copy.
	PE tlv.PoolElement
}

// String describes the event in one line, e.g.
// `PE 0x0000002a of pool "echo" removed: keep-alive timeout`.
//
// Peer events read e.g. `peer 0x1234abcd up`, `peer 0x1234abcd down: 12
// PEs`, `takeover of peer 0x1234abcd done: 12 PEs`, `taken over by peer
// 0x1234abcd: 12 PEs`.
func (e Event) String() string {
	if e.Kind.IsPeer() {
		id := tlv.ServerID(e.ServerID)
		switch e.Kind {
		case EventPeerUp:
			return fmt.Sprintf("peer %v up", id)
		case EventPeerDown:
			return fmt.Sprintf("peer %v down: %s", id, countPEs(e.PEs))
		case EventTakeoverStarted:
			return fmt.Sprintf("takeover of peer %v started: %s", id, countPEs(e.PEs))
		case EventTakeoverDone:
			return fmt.Sprintf("takeover of peer %v done: %s", id, countPEs(e.PEs))
		default:
			return fmt.Sprintf("taken over by peer %v: %s", id, countPEs(e.PEs))
		}
	}
	s := fmt.Sprintf("PE %v of pool %q %v", tlv.PEIdentifier(e.PEID), e.PoolHandle, e.Kind)
	if e.Kind == EventRemoved {
		s += ": " + e.Reason.String()
	}
	return s
}

func countPEs(n int) string {
	if n == 1 {
		return "1 PE"
	}
	return fmt.Sprintf("%d PEs", n)
}

// emit hands the host the events among outs, on the loop goroutine. A
// full channel drops the event; the host is never waited for.
func (r *Registrar) emit(now time.Time, outs []Output) {
	if r.cfg.Events == nil {
		return
	}
	for _, o := range outs {
		var ev Event
		switch o := o.(type) {
		case PEEvent:
			ev = r.peEvent(now, o)
		case PeerEvent:
			if int(o.Kind) >= len(peerEventKinds) || peerEventKinds[o.Kind] == 0 {
				continue // a kind this driver does not know
			}
			ev = Event{Kind: peerEventKinds[o.Kind], Time: now, ServerID: o.ServerID, PEs: o.PEs}
		default:
			continue
		}
		select {
		case r.cfg.Events <- ev:
		default:
			r.dropped.Add(1)
		}
	}
}

// peEvent makes the host's Event of a PE change.
func (r *Registrar) peEvent(now time.Time, pe PEEvent) Event {
	ev := Event{Kind: pe.Kind, Time: now, PoolHandle: pe.PoolHandle, PEID: pe.PEID, Reason: pe.Reason}
	if pe.Kind != EventRemoved {
		// The outputs of one piece of work are handled right after it,
		// so the store holds the PE as that registration left it.
		if stored, _, ok := r.core.store.Lookup(pe.PoolHandle, pe.PEID); ok {
			ev.PE = stored // Lookup returns a deep copy
		}
	}
	return ev
}
