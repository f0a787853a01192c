package asap

import (
	"net/netip"

	"github.com/go-rserpool/rserpool/tlv"
)

// Registrar resource limits (RFC 5355 §3: registration flooding and
// resource exhaustion). Every one is a field of [ServerConfig]; a refused
// registration is answered with Lack of Resources (0x6, RFC 5354 §3.12,
// RFC 5352 §3.2).
const (
	// DefaultMaxPESize bounds the encoded size in bytes of a PE as the
	// registrar stores it: the Pool Element parameter after the
	// registrar has dropped its unknown parameters (RFC 5354 §2 "skip"),
	// kept only the user addresses of the association (AddressCheck) and
	// put in the ASAP transport. 2,048 bytes hold RSPLIB 3.4.4's
	// MAX_PE_TRANSPORTADDRESSES (64) user addresses, all IPv6, with any
	// policy of RFC 5356 and the ASAP transport; a PE registered with the
	// default AddressCheck (one user address) is about 100 bytes.
	DefaultMaxPESize = 2048

	// DefaultMaxPoolsPerAssoc bounds the pools one association has PEs in
	// (see ServerConfig.MaxPoolsPerAssoc). RFC 5355 §3 asks for such
	// bounds without values; 256 lets 64 associations take at most a
	// quarter of the store's default handlespace.DefaultMaxPools (65,536).
	DefaultMaxPoolsPerAssoc = 256

	// DefaultMaxPoolsPerSource bounds the pools the associations of one
	// source address together have PEs in: 64 sources are needed to fill
	// the default handlespace.DefaultMaxPools.
	DefaultMaxPoolsPerSource = 1024

	// DefaultMaxPEsPerSource bounds the PEs registered over the
	// associations of one source address: eight associations at
	// DefaultMaxPEsPerAssoc.
	DefaultMaxPEsPerSource = 8 * DefaultMaxPEsPerAssoc
)

// srcState counts what the associations of one source address hold.
type srcState struct {
	ip    netip.Addr
	pes   int
	pools map[string]int32 // pool handle -> PEs of this source in it
}

// sourceOf returns the accounting key of an association: its peer's IP
// address without zone, invalid when the association has none.
func sourceOf(info AssocInfo) netip.Addr {
	if !info.Remote.AddrPort.IsValid() {
		return netip.Addr{}
	}
	return info.Remote.AddrPort.Addr().Unmap().WithZone("")
}

// validatePE checks the values RFC 5354 gives no meaning to: PE
// identifier 0 (RFC 5354 §3.10 names a PE by its identifier; RSPLIB uses
// 0 for "undefined") and user-transport port 0 (no PU can reach it,
// RFC 5354 §3.3-3.7). It returns the Invalid Values (0x3) cause
// information, the offending parameter, and a reason; ok when none.
func validatePE(pe *tlv.PoolElement) (info []byte, why string, ok bool) {
	if pe.ID == 0 {
		return tlv.PEIdentifier(0).AppendTo(nil), "PE identifier 0", false
	}
	if pe.UserTransport.Type != 0 && pe.UserTransport.Port == 0 {
		return pe.UserTransport.AppendTo(nil), "user transport port 0", false
	}
	return nil, "", true
}

// stripUnknown drops the unknown parameters of a PE before it is stored.
// RFC 5354 §2 tells a receiver to skip parameters of action 10 and 11,
// not to keep them; RSPLIB does not store them either. Those with action
// 11 were already reported in an ASAP_ERROR (HandleData).
func stripUnknown(pe *tlv.PoolElement) {
	pe.Unknown = nil
	pe.UserTransport.Unknown = nil
	pe.ASAPTransport.Unknown = nil
}

// admit applies the resource limits to a registration of PE key, which
// the store will hold as pe, over association a; st is its supervision
// state when it is a re-registration of one of ours. It returns the
// reason of a refusal (Lack of Resources), or "" to go on.
func (c *ServerCore) admit(a *srvAssoc, key peKey, st *srvPE, pe *tlv.PoolElement) string {
	if lim := c.cfg.MaxPESize; lim != Unlimited && pe.Len() > lim {
		return "PE larger than MaxPESize"
	}
	if st != nil {
		return "" // a re-registration changes no count
	}
	if lim := c.cfg.MaxPEsPerAssoc; lim != Unlimited && len(a.pes) >= lim {
		return "association PE limit"
	}
	if lim := c.cfg.MaxPoolsPerAssoc; lim != Unlimited && a.pools[key.handle] == 0 && len(a.pools) >= lim {
		return "association pool limit"
	}
	s := c.source(a, false)
	if s == nil {
		return ""
	}
	if lim := c.cfg.MaxPEsPerSource; lim != Unlimited && s.pes >= lim {
		return "source address PE limit"
	}
	if lim := c.cfg.MaxPoolsPerSource; lim != Unlimited && s.pools[key.handle] == 0 && len(s.pools) >= lim {
		return "source address pool limit"
	}
	return ""
}

// source returns the counters of a's source address, nil when there are
// none yet (or the association has no peer address); with create, it
// makes them for an association that has an address.
func (c *ServerCore) source(a *srvAssoc, create bool) *srcState {
	ip := sourceOf(a.info)
	if !ip.IsValid() {
		return nil
	}
	s := c.srcs[ip]
	if s == nil && create {
		s = &srcState{ip: ip, pools: make(map[string]int32)}
		if c.srcs == nil {
			c.srcs = make(map[netip.Addr]*srcState)
		}
		c.srcs[ip] = s
	}
	return s
}

// charge counts a new PE of ours, registered over a, against a and its
// source address.
func (c *ServerCore) charge(a *srvAssoc, st *srvPE) {
	if a.pools == nil {
		a.pools = make(map[string]int32)
	}
	a.pools[st.key.handle]++
	if s := c.source(a, true); s != nil {
		s.pes++
		s.pools[st.key.handle]++
		st.src = s
	}
}

// release undoes charge when the PE leaves supervision; a may be nil
// when its association is already gone.
func (c *ServerCore) release(a *srvAssoc, st *srvPE) {
	h := st.key.handle
	if a != nil && a.pools != nil {
		if a.pools[h]--; a.pools[h] <= 0 {
			delete(a.pools, h)
		}
	}
	s := st.src
	if s == nil {
		return
	}
	st.src = nil
	s.pes--
	if s.pools[h]--; s.pools[h] <= 0 {
		delete(s.pools, h)
	}
	if s.pes <= 0 {
		delete(c.srcs, s.ip)
	}
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

// fit shortens a message the core is about to send when it does not fit
// the 16-bit Message Length (RFC 5352 §2.1): trailing error causes are
// left out, then the information of the first one is cut (RFC 5354
// §3.12 carries the offending parameter or message there, which can be as
// large as the message that caused it). It reports whether m fits now; it
// does not when the pool handle alone is too long (only with a
// tlv.Limits.MaxPoolHandle near 64 KiB).
func fit(m tlv.ASAPMessage) bool {
	over := m.Len() - tlv.MaxMessageLen
	if over <= 0 {
		return true
	}
	var e *tlv.OperationError
	switch m := m.(type) {
	case *tlv.ASAPError:
		e = &m.Error
	case *tlv.RegistrationResponse:
		e = m.Error
	case *tlv.DeregistrationResponse:
		e = m.Error
	case *tlv.HandleResolutionResponse:
		e = m.Error
	}
	if e == nil || len(e.Causes) == 0 {
		return false
	}
	for len(e.Causes) > 1 && over > 0 {
		last := e.Causes[len(e.Causes)-1]
		e.Causes = e.Causes[:len(e.Causes)-1]
		over -= (4 + len(last.Info) + 3) &^ 3
	}
	if over > 0 {
		// Cutting over+3 bytes shortens the padded cause by at least over.
		info := e.Causes[0].Info
		e.Causes[0].Info = info[:max(0, len(info)-over-3)]
	}
	return m.Len() <= tlv.MaxMessageLen
}
