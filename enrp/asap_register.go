package enrp

// ASAP registration and deregistration at the registrar (RFC 5352 §3.2,
// §3.4), with the checks a registration passes (RFC 5354, RFC 5355 §3).

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"time"

	"github.com/go-rserpool/rserpool/asap"
	"github.com/go-rserpool/rserpool/handlespace"
	"github.com/go-rserpool/rserpool/tlv"
	"github.com/go-rserpool/rserpool/transport"
)

// onRegistration runs the registrar side of RFC 5352 §3.2.
func (c *Core) onRegistration(now time.Time, id AssocID, a *assoc, m *tlv.Registration) {
	pe := m.PE // a copy of the struct; its slices alias the message
	resp := &tlv.RegistrationResponse{PoolHandle: m.PoolHandle, PEID: pe.ID}
	reject := func(code tlv.CauseCode, info []byte, why string) {
		resp.Reject = true
		resp.Error = tlv.NewOperationError(code, info)
		c.stats.RegistrationsRefd++
		c.send(id, resp)
		if c.log.Enabled(context.Background(), slog.LevelDebug) {
			c.log.Debug("enrp: registration refused", "assoc", id, "pool", m.PoolHandle, "pe", tlv.PEIdentifier(pe.ID), "cause", code, "why", why)
		}
	}
	if c.en.startup {
		// RFC 5353 §3.4: no registrations until the mentor's handle
		// table has arrived (or no mentor was found).
		reject(tlv.CauseLackOfResources, nil, "registrar in its start-up phase")
		return
	}
	if pe.RegistrationLife <= 0 {
		reject(tlv.CauseInvalidValues, nil, "registration life not positive")
		return
	}
	if info, why, ok := validatePE(&pe); !ok {
		reject(tlv.CauseInvalidValues, info, why)
		return
	}
	if c.cfg.Authorize != nil {
		if err := c.cfg.Authorize(a.info, m.PoolHandle, &pe); err != nil {
			reject(tlv.CauseRejectedSecurity, nil, err.Error())
			return
		}
	}
	if c.cfg.AddressCheck == AddressCheckAssociation {
		ut, ok := filterUserTransport(pe.UserTransport, a.info.Remote)
		if !ok {
			reject(tlv.CauseInvalidValues, pe.UserTransport.AppendTo(nil), "no user address belongs to the association")
			return
		}
		pe.UserTransport = ut
	}
	key := peKey{string(m.PoolHandle), pe.ID}
	st := c.sup[key]
	if st != nil && st.assoc != id {
		reject(tlv.CauseNonUniquePEIdentifier, nil, "PE identifier registered over another association")
		return
	}
	if st == nil {
		if code, info, why := c.graceRefuses(now, id, a, m.PoolHandle, &pe); code != 0 {
			reject(code, info, why)
			return
		}
	}
	pe.HomeServerID = c.id
	pe.ASAPTransport = tlv.Transport{}
	if a.info.Remote.AddrPort.IsValid() {
		// RFC 5352 §3.2: the registrar takes the ASAP transport from the
		// association; ENRP carries it to the peers (RFC 5354 §3.x).
		if t, err := asap.TransportParam(a.info.Remote, tlv.TransportUseDataOnly); err == nil {
			pe.ASAPTransport = t
		}
	}
	stripUnknown(&pe)
	if why := c.admit(a, key, st, &pe); why != "" {
		reject(tlv.CauseLackOfResources, nil, why)
		return
	}
	life := time.Duration(pe.RegistrationLife) * time.Millisecond
	created, err := c.store.Register(now, m.PoolHandle, &pe, now.Add(life))
	if err != nil {
		code := tlv.CauseLackOfResources
		var he *handlespace.Error
		if errors.As(err, &he) {
			code = he.Cause
		}
		var info []byte
		switch code {
		case tlv.CauseInconsistentPoolingPolicy:
			info = m.PE.Policy.AppendTo(nil)
		case tlv.CauseInconsistentTransportType:
			info = m.PE.UserTransport.AppendTo(nil)
		}
		reject(code, info, err.Error())
		return
	}
	if st == nil {
		st = &supPE{key: key, assoc: id, idx: -1}
		c.sup[key] = st
		if a.pes == nil {
			a.pes = make(map[peKey]struct{})
		}
		a.pes[key] = struct{}{}
		c.charge(a, st)
	}
	// A (re-)registration proves the PE alive: restart its keep-alive cycle.
	c.alive(now, st)
	c.graceDone(key)
	c.stats.Registrations++
	c.send(id, resp)
	c.stored(key, created)
}

// onDeregistration runs RFC 5352 §3.4: remove the PE and confirm; an
// unknown pool is answered with Unknown Pool Handle, an unknown PE with
// Invalid Values carrying its PE Identifier, and a PE registered over
// another association, or owned by another registrar, with Rejected due
// to security considerations.
func (c *Core) onDeregistration(id AssocID, m *tlv.Deregistration) {
	resp := &tlv.DeregistrationResponse{PoolHandle: m.PoolHandle, PEID: m.PEID}
	key := peKey{string(m.PoolHandle), m.PEID}
	if st := c.sup[key]; st != nil && st.assoc != id {
		resp.Error = tlv.NewOperationError(tlv.CauseRejectedSecurity, nil)
		c.send(id, resp)
		return
	}
	if c.removeOwned(key, RemovedDeregistered) {
		c.stats.Deregistrations++
		c.send(id, resp)
		return
	}
	// Not one of ours: a PE another registrar owns is for its home to
	// remove (RFC 5353 §3.6), not for an association of this one.
	if _, _, ok := c.store.Lookup(m.PoolHandle, m.PEID); ok {
		c.stats.DeregistrationsRefd++
		resp.Error = tlv.NewOperationError(tlv.CauseRejectedSecurity, nil)
		c.send(id, resp)
		return
	}
	if _, _, err := c.store.Select(m.PoolHandle, 0, nil); err != nil {
		resp.Error = tlv.NewOperationError(tlv.CauseUnknownPoolHandle, nil)
	} else {
		resp.Error = tlv.NewOperationError(tlv.CauseInvalidValues, tlv.PEIdentifier(m.PEID).AppendTo(nil))
	}
	c.send(id, resp)
}

// removeOwned removes one of our PEs from the store and from supervision,
// and reports it. It returns false when the PE is not ours.
func (c *Core) removeOwned(key peKey, why RemoveReason) bool {
	st := c.sup[key]
	if st == nil {
		return false
	}
	c.forget(st)
	pe, ok := c.store.Deregister(c.clock, tlv.PoolHandle(key.handle), key.id)
	var peP *tlv.PoolElement
	if ok {
		peP = &pe
	}
	c.removed(key, why, peP)
	return true
}

// filterUserTransport applies AddressCheckAssociation (RFC 5352 §3.2):
// it returns t with only the addresses of remote (unspecified ones
// replaced by it), and false when none is left.
func filterUserTransport(t tlv.Transport, remote transport.Addr) (tlv.Transport, bool) {
	if !remote.AddrPort.IsValid() {
		// Without a peer address there is nothing to check against.
		return t, true
	}
	ra := remote.AddrPort.Addr().Unmap().WithZone("")
	var keep []netip.Addr
	for _, a := range t.Addrs {
		a = a.Unmap()
		if a.IsUnspecified() {
			a = ra
		}
		if a == ra && len(keep) == 0 {
			keep = append(keep, a)
		}
	}
	if len(keep) == 0 {
		return t, false
	}
	t.Addrs = keep
	t.Unknown = nil
	return t, true
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
// 11 were already reported in an ASAP_ERROR (HandleASAP).
func stripUnknown(pe *tlv.PoolElement) {
	pe.Unknown = nil
	pe.UserTransport.Unknown = nil
	pe.ASAPTransport.Unknown = nil
}

func transportUse(t *tlv.Transport) tlv.TransportUse {
	if t.Type == tlv.ParamSCTPTransport || t.Type == tlv.ParamTCPTransport {
		return t.Use
	}
	return 0
}
