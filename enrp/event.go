package enrp

import (
	"fmt"
	"time"

	"github.com/go-rserpool/rserpool/tlv"
)

// EventKind says what happened to a PE; see [Event].
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
)

var eventKindNames = [...]string{
	EventRegistered: "registered",
	EventUpdated:    "updated",
	EventRemoved:    "removed",
}

// String names the kind.
func (k EventKind) String() string {
	if int(k) < len(eventKindNames) && eventKindNames[k] != "" {
		return eventKindNames[k]
	}
	return fmt.Sprintf("EventKind(%d)", uint8(k))
}

// Event tells the host about a change to a PE this registrar owns; see
// Config.Events. The ENRP handle updates to peer registrars (RFC 5353
// §3.6: ADD_PE for a registration or an update, DEL_PE for a removal) are
// made from the same changes.
type Event struct {
	Kind EventKind
	// Time is the registrar's clock when the change happened.
	Time time.Time
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
func (e Event) String() string {
	s := fmt.Sprintf("PE %v of pool %q %v", tlv.PEIdentifier(e.PEID), e.PoolHandle, e.Kind)
	if e.Kind == EventRemoved {
		s += ": " + e.Reason.String()
	}
	return s
}

// emit hands the host the events among outs, on the loop goroutine. A
// full channel drops the event; the host is never waited for.
func (r *Registrar) emit(now time.Time, outs []Output) {
	if r.cfg.Events == nil {
		return
	}
	for _, o := range outs {
		pe, ok := o.(PEEvent)
		if !ok {
			continue
		}
		ev := Event{Kind: pe.Kind, Time: now, PoolHandle: pe.PoolHandle, PEID: pe.PEID, Reason: pe.Reason}
		if pe.Kind != EventRemoved {
			// The outputs of one piece of work are handled right after
			// it, so the store holds the PE as that registration left it.
			if stored, _, ok := r.core.store.Lookup(pe.PoolHandle, pe.PEID); ok {
				ev.PE = stored // Lookup returns a deep copy
			}
		}
		select {
		case r.cfg.Events <- ev:
		default:
			r.dropped.Add(1)
		}
	}
}
