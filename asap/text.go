package asap

import (
	"encoding/json"
	"time"

	"github.com/go-rserpool/rserpool/tlv"
)

// MarshalText implements encoding.TextMarshaler: the name String gives
// ("registered", "registration lost", ...).
func (k PEEventKind) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// MarshalJSON implements json.Marshaler: the fields by their Go names,
// Kind by name, ServerID as 0x0000002a (absent while unknown), Err as its
// message and Retry only when set.
func (e PEEvent) MarshalJSON() ([]byte, error) {
	j := struct {
		Kind     PEEventKind
		Time     time.Time
		ServerID *tlv.ServerID `json:",omitempty"`
		Err      string        `json:",omitempty"`
		Retry    *time.Time    `json:",omitempty"`
	}{Kind: e.Kind, Time: e.Time}
	if e.ServerID != 0 {
		id := tlv.ServerID(e.ServerID)
		j.ServerID = &id
	}
	if e.Err != nil {
		j.Err = e.Err.Error()
	}
	if !e.Retry.IsZero() {
		j.Retry = &e.Retry
	}
	return json.Marshal(j)
}

// String names the pool element for logs, "PE 0x0000002a in pool echo",
// from what never changes (its identifier and pool handle), so that
// printing a running PoolElement with %v reads none of its live state.
func (pe *PoolElement) String() string {
	return "PE " + tlv.PEIdentifier(pe.core.ID()).String() + " in pool " + tlv.PoolHandle(pe.core.handle).String()
}
