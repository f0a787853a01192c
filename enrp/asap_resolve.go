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
	// The store keeps each PE's wire encoding without its ASAP transport
	// (for ENRP only, RFC 5354 §3.10), which the response copies.
	encs, pol, err := c.store.SelectEncoded(m.PoolHandle, n, c.encBuf)
	c.encBuf = encs[:0]
	if err != nil || len(encs) == 0 {
		c.sendResolutionError(id, m.PoolHandle, tlv.CauseUnknownPoolHandle)
		return
	}
	resp := c.resolutionResponse()
	resp.PoolHandle = m.PoolHandle
	resp.pol = tlv.Policy{Type: pol.Type, Value: pol.Value}
	resp.Policy = &resp.pol
	// PEs that would take the response over 65,535 bytes are left out,
	// so that a pool of large PEs is answered with fewer PEs rather than
	// not at all.
	encs, left := fitEncoded(&resp.EncodedResolutionResponse, encs)
	if left > 0 {
		c.stats.PEsLeftOut += uint64(left)
		if len(encs) == 0 {
			c.sendResolutionError(id, m.PoolHandle, tlv.CauseLackOfResources)
			return
		}
	}
	resp.PEs = encs
	c.send(id, &resp.EncodedResolutionResponse)
}

func (c *Core) sendResolutionError(id AssocID, handle tlv.PoolHandle, cause tlv.CauseCode) {
	c.send(id, &tlv.HandleResolutionResponse{PoolHandle: handle, Error: tlv.NewOperationError(cause, nil)})
}

// resolution is a Handle Resolution Response with room for its policy, so
// that the core can reuse it.
type resolution struct {
	tlv.EncodedResolutionResponse
	pol tlv.Policy
}

// resolutionResponse returns a response to fill in. Responses are reused
// once the outbox that held them has been taken (Outbox): the messages of
// the outbox are valid only until the core's next call.
func (c *Core) resolutionResponse() *resolution {
	if c.resUsed == len(c.resPool) {
		c.resPool = append(c.resPool, new(resolution))
	}
	r := c.resPool[c.resUsed]
	c.resUsed++
	return r
}

// fitEncoded shortens the PEs of a Handle Resolution Response so that the
// message fits the 16-bit Message Length (RFC 5352 §2.1): PEs are kept in
// the selector's order and one that does not fit the room left is left
// out, so the best-chosen PEs come first. It returns the number of PEs left
// out.
func fitEncoded(resp *tlv.EncodedResolutionResponse, pes [][]byte) ([][]byte, int) {
	room := tlv.MaxMessageLen - tlv.HeaderLen - resp.PoolHandle.Len()
	if resp.Policy != nil {
		room -= resp.Policy.Len()
	}
	keep := pes[:0]
	for i, pe := range pes {
		if len(pe) > room {
			continue
		}
		room -= len(pe)
		if len(keep) != i {
			pes[len(keep)] = pe
		}
		keep = keep[:len(keep)+1]
	}
	return keep, len(pes) - len(keep)
}
