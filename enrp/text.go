package enrp

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/go-rserpool/rserpool/tlv"
)

// MarshalText implements encoding.TextMarshaler: the name String gives
// ("registered", "updated", "removed", "peer up", "peer down", "takeover
// started", "takeover done", "taken over").
func (k EventKind) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler (MarshalText's names).
func (k *EventKind) UnmarshalText(b []byte) error {
	for i, s := range eventKindNames {
		if s != "" && s == string(b) {
			*k = EventKind(i)
			return nil
		}
	}
	return fmt.Errorf("%w: event kind %q", tlv.ErrBadText, b)
}

// MarshalJSON implements json.Marshaler: the fields by their Go names,
// Kind and Reason by name, the pool handle as text (tlv.PoolHandle), PEID
// and ServerID as 0x0000002a; Reason only for EventRemoved, PE only when
// it carries one (EventRegistered, EventUpdated). A peer event (Kind.IsPeer)
// has ServerID instead of PoolHandle and PEID, and PEs (but EventPeerUp).
func (e Event) MarshalJSON() ([]byte, error) {
	if e.Kind.IsPeer() {
		j := struct {
			Kind     EventKind
			Time     time.Time
			ServerID tlv.ServerID
			PEs      *int `json:",omitempty"`
		}{Kind: e.Kind, Time: e.Time, ServerID: tlv.ServerID(e.ServerID)}
		if e.Kind != EventPeerUp {
			j.PEs = &e.PEs
		}
		return json.Marshal(j)
	}
	j := struct {
		Kind       EventKind
		Time       time.Time
		PoolHandle tlv.PoolHandle
		PEID       tlv.PEIdentifier
		Reason     string           `json:",omitempty"`
		PE         *tlv.PoolElement `json:",omitempty"`
	}{Kind: e.Kind, Time: e.Time, PoolHandle: e.PoolHandle, PEID: tlv.PEIdentifier(e.PEID)}
	if e.Kind == EventRemoved {
		j.Reason = e.Reason.String()
	}
	if e.PE.UserTransport.Type != 0 || e.PE.ID != 0 {
		j.PE = &e.PE
	}
	return json.Marshal(j)
}
