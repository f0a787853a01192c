package enrp

// ASAP handle resolution at the registrar (RFC 5352 §3.5), shortened to
// fit one message.

import (
	"github.com/go-rserpool/rserpool/tlv"
)

// onHandleResolution runs RFC 5352 §3.5 with the HROPT item count.
func (c *Core) onHandleResolution(id AssocID, m *tlv.HandleResolution) {
	c.stats.Resolutions++
	if c.cfg.AuthorizeResolution != nil && c.refuseResolution(id, m) {
		return
	}
	n := c.cfg.ResolutionItems
	if m.HasItems && m.Items != 0 {
		n = c.cfg.MaxResolutionItems
		if uint64(m.Items) < uint64(n) {
			n = int(m.Items)
		}
	}
	resp := &tlv.HandleResolutionResponse{PoolHandle: m.PoolHandle}
	pes, pol, err := c.store.Select(m.PoolHandle, n, c.selBuf)
	c.selBuf = pes[:0]
	if err != nil || len(pes) == 0 {
		resp.Error = tlv.NewOperationError(tlv.CauseUnknownPoolHandle, nil)
		c.send(id, resp)
		return
	}
	resp.Policy = &tlv.Policy{Type: pol.Type, Value: pol.Value}
	// The ASAP transports are cleared (for ENRP only, RFC 5354 §3.10),
	// and PEs that would take the response over 65,535 bytes are left
	// out, so that a pool of large PEs is answered with fewer PEs rather
	// than not at all.
	pes, left := fitResolution(resp, pes)
	if left > 0 {
		c.stats.PEsLeftOut += uint64(left)
		if len(pes) == 0 {
			resp.Policy = nil
			resp.Error = tlv.NewOperationError(tlv.CauseLackOfResources, nil)
			c.send(id, resp)
			return
		}
	}
	resp.PEs = pes
	c.send(id, resp)
}

// fitResolution shortens the PEs of a Handle Resolution Response so that
// the message fits the 16-bit Message Length (RFC 5352 §2.1): PEs are
// kept in the selector's order and one that does not fit the room left is
// left out, so the best-chosen PEs come first. It clears the ASAP
// transports (for ENRP only, RFC 5354 §3.10) on the way and returns the
// number of PEs left out.
func fitResolution(resp *tlv.HandleResolutionResponse, pes []tlv.PoolElement) ([]tlv.PoolElement, int) {
	room := tlv.MaxMessageLen - tlv.HeaderLen - resp.PoolHandle.Len()
	if resp.Policy != nil {
		room -= resp.Policy.Len()
	}
	keep := pes[:0]
	for i := range pes {
		pes[i].ASAPTransport = tlv.Transport{}
		n := pes[i].Len()
		if n > room {
			continue
		}
		room -= n
		if len(keep) != i {
			pes[len(keep)] = pes[i]
		}
		keep = keep[:len(keep)+1]
	}
	return keep, len(pes) - len(keep)
}
