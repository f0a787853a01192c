package asap

import (
	"fmt"
	"strings"

	"github.com/go-rserpool/rserpool/tlv"
)

// String describes the failover in one line: pool, old and new PE, reason
// and cause, duration, PEs tried, whether the cookie was echoed and the
// requests sent again; or, when no PE was found, why.
func (e FailoverEvent) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "failover of pool %v from PE %v (%v", e.Pool, tlv.PEIdentifier(e.Old.ID), e.Reason)
	if e.Cause != nil {
		b.WriteString(": " + e.Cause.Error())
	}
	b.WriteString(")")
	if e.Err != nil {
		fmt.Fprintf(&b, " found no PE after %v, %d tried: %v", e.Duration, e.Tried, e.Err)
		return b.String()
	}
	fmt.Fprintf(&b, " to PE %v in %v, %d tried", tlv.PEIdentifier(e.New.ID), e.Duration, e.Tried)
	if e.CookieEchoed {
		b.WriteString(", cookie echoed")
	}
	if e.Retried > 0 {
		fmt.Fprintf(&b, ", %d request sent again", e.Retried)
	}
	return b.String()
}

// String describes the event without the cookie's bytes (a sealed cookie
// is opaque, and may be secret): its PE and length.
func (e SessionCookieReceived) String() string {
	return fmt.Sprintf("cookie of %d bytes from PE %v", len(e.Cookie), tlv.PEIdentifier(e.PE))
}

// String describes the event: the PE that sent the card and the PEs it
// names, in order.
func (e SessionCardReceived) String() string {
	ids := make([]string, len(e.PEs))
	for i, pe := range e.PEs {
		ids[i] = tlv.PEIdentifier(pe.ID).String()
	}
	return fmt.Sprintf("business card from PE %v: %s", tlv.PEIdentifier(e.PE), strings.Join(ids, ", "))
}
