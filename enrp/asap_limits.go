package enrp

// Resource limits per association and per source address (RFC 5355 §3
// registration flooding).

import (
	"net/netip"

	"github.com/go-rserpool/rserpool/tlv"
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

// admit applies the resource limits to a registration of PE key, which
// the store will hold as pe, over association a; st is its supervision
// state when it is a re-registration of one of ours. It returns the
// reason of a refusal (Lack of Resources), or "" to go on.
func (c *Core) admit(a *assoc, key peKey, st *supPE, pe *tlv.PoolElement) string {
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
func (c *Core) source(a *assoc, create bool) *srcState {
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
func (c *Core) charge(a *assoc, st *supPE) {
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
func (c *Core) release(a *assoc, st *supPE) {
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
