package handlespace

// Pools and their PEs: registration, deregistration, lookup, selection.

import (
	"time"

	"github.com/go-rserpool/rserpool/policy"
	"github.com/go-rserpool/rserpool/tlv"
)

type pool struct {
	handle  string
	hb      tlv.PoolHandle // the handle as bytes, handed out read-only
	hsum    uint64         // 16-bit word sum of the handle, odd length zero padded
	seq     uint64         // creation sequence (Page order)
	opos    int32          // index in Store.order
	ptype   uint32
	utype   tlv.ParamType
	uuse    tlv.TransportUse
	sel     policy.Selector
	ids     idTable // PE ID -> record
	shared  bool    // sel's slots are record indexes (sorted policies)
	slotPE  []int32 // otherwise: selector slot -> record, -1 if free
	freeSl  []int32
	members seqList[uint32] // records in registration order, for Page
	mseq    uint32
	due     int32 // popExpiredBulk's count of the pool's due PEs; 0 otherwise
}

func validTransportType(t tlv.ParamType) bool {
	return t >= tlv.ParamDCCPTransport && t <= tlv.ParamUDPLiteTransport
}

// Register stores pe in the pool named handle: it creates the pool if needed
// and inserts the PE, or updates it when the pool already holds pe.ID
// (re-registration, RFC 5352 §3.2; ENRP ADD_PE, RFC 5353 §3.6). The PE's
// owner is pe.HomeServerID: the registrar sets it to its own ID for ASAP
// registrations and keeps the sender's for ENRP updates. A zero expiry means
// the PE has no deadline (PEs owned by a peer, RFC 5353 §3.6).
//
// Registration resets the unreachable-report count and the audit mark, and
// gives the selector new policy values when they changed (resetting local
// degradation, RFC 5356 §5).
//
// Errors (*Error): CauseInvalidValues for an empty or too long handle, a
// missing user transport or address, or policy values package policy
// rejects; CauseInconsistentPoolingPolicy when the pool uses another policy
// type; CauseInconsistentTransportType when its PEs use another user
// transport protocol; CauseInconsistentDataControlConfig when they use
// another Transport Use; CauseLackOfResources when a limit of Config would
// be exceeded (RFC 5352 §3.2). A rejected call changes nothing.
func (s *Store) Register(now time.Time, handle tlv.PoolHandle, pe *tlv.PoolElement, expiry time.Time) (created bool, err error) {
	if pe == nil {
		return false, errorf(tlv.CauseInvalidValues, "nil pool element")
	}
	if len(handle) == 0 || len(handle) > s.cfg.MaxPoolHandleSize {
		return false, errorf(tlv.CauseInvalidValues, "pool handle length %d", len(handle))
	}
	ut := &pe.UserTransport
	if !validTransportType(ut.Type) || len(ut.Addrs) == 0 {
		return false, errorf(tlv.CauseInvalidValues, "user transport %v with %d addresses", ut.Type, len(ut.Addrs))
	}
	if at := &pe.ASAPTransport; at.Type != 0 && !validTransportType(at.Type) {
		return false, errorf(tlv.CauseInvalidValues, "ASAP transport %v", at.Type)
	}
	vals, perr := decodeValues(pe.Policy)
	if perr != nil {
		return false, &Error{Cause: tlv.CauseInvalidValues, Msg: perr.Error()}
	}
	p, pi := s.findPool(handle)
	var ri int32 = -1
	if p != nil {
		if pe.Policy.Type != p.ptype {
			return false, errorf(tlv.CauseInconsistentPoolingPolicy, "pool policy 0x%x, PE policy 0x%x", p.ptype, pe.Policy.Type)
		}
		if ut.Type != p.utype {
			return false, errorf(tlv.CauseInconsistentTransportType, "pool transport %v, PE transport %v", p.utype, ut.Type)
		}
		if useOf(ut) != p.uuse {
			return false, errorf(tlv.CauseInconsistentDataControlConfig, "pool transport use %d, PE %d", p.uuse, useOf(ut))
		}
		ri = p.ids.get(pe.ID, s)
		if ri < 0 && p.ids.n >= s.cfg.MaxPEsPerPool {
			return false, errorf(tlv.CauseLackOfResources, "pool holds %d PEs", p.ids.n)
		}
	} else if len(s.byName) >= s.cfg.MaxPools {
		return false, errorf(tlv.CauseLackOfResources, "store holds %d pools", len(s.byName))
	}
	if ri < 0 && s.pes >= s.cfg.MaxPEs {
		return false, errorf(tlv.CauseLackOfResources, "store holds %d PEs", s.pes)
	}

	if ri >= 0 { // update
		r := s.rec(ri)
		oldPol := s.polBytes(ri, r)
		changed := string(oldPol) != string(pe.Policy.Value)
		if r.home() != pe.HomeServerID {
			s.ownerUnlink(ri, r, p)
			s.fill(ri, r, pe) // sets the new home
			s.ownerLink(ri, r, p)
		} else {
			s.fill(ri, r, pe)
		}
		s.clearReports(ri, r)
		r.flags &^= flagMarked
		r.updated = now.UnixNano()
		s.setExpiry(ri, r, expiry)
		if changed {
			p.sel.Update(r.slot, vals)
		}
		return false, nil
	}

	if p == nil {
		sel, shared, err := s.newSelector(pe.Policy.Type)
		if err != nil {
			return false, &Error{Cause: tlv.CauseInvalidValues, Msg: err.Error()}
		}
		p, pi = s.newPool(string(handle), sel, pe)
		p.shared = shared
	}
	ri = s.allocRec()
	r := s.rec(ri)
	r.pool = pi
	s.fill(ri, r, pe)
	r.updated = now.UnixNano()
	r.heap = -1
	// selector slot
	if p.shared {
		r.slot = ri
	} else if n := len(p.freeSl); n > 0 {
		r.slot = p.freeSl[n-1]
		p.freeSl = p.freeSl[:n-1]
		p.slotPE[r.slot] = ri
	} else {
		r.slot = int32(len(p.slotPE))
		p.slotPE = append(p.slotPE, ri)
	}
	p.ids.put(pe.ID, ri, s, p.members.ents)
	s.addMember(p, ri, r)
	s.ownerLink(ri, r, p)
	s.setExpiry(ri, r, expiry)
	p.sel.Add(r.slot, vals)
	s.pes++
	return true, nil
}

func useOf(t *tlv.Transport) tlv.TransportUse {
	if t.Type == tlv.ParamSCTPTransport || t.Type == tlv.ParamTCPTransport {
		return t.Use
	}
	return 0
}

func (s *Store) newPool(name string, sel policy.Selector, pe *tlv.PoolElement) (*pool, int32) {
	p := &pool{
		handle: name,
		hb:     tlv.PoolHandle(name),
		hsum:   wordSum([]byte(name)),
		ptype:  pe.Policy.Type,
		utype:  pe.UserTransport.Type,
		uuse:   useOf(&pe.UserTransport),
		sel:    sel,
	}
	p.ids.init(s.seed, s.cfg.MaxPEs)
	var pi int32
	if n := len(s.freePool); n > 0 {
		pi = s.freePool[n-1]
		s.freePool = s.freePool[:n-1]
		s.pools[pi] = p
	} else {
		pi = int32(len(s.pools))
		s.pools = append(s.pools, p)
	}
	s.byName[name] = pi
	s.poolSeq++
	p.seq = s.poolSeq
	p.opos = s.order.add(p.seq, pi, func(idx, pos int32) { s.pools[idx].opos = pos })
	return p, pi
}

func (s *Store) dropPool(p *pool, pi int32) {
	s.order.remove(p.opos, func(idx, pos int32) { s.pools[idx].opos = pos })
	delete(s.byName, p.handle)
	if s.lastPool == pi {
		s.lastPool = -1
	}
	s.pools[pi] = nil
	s.freePool = append(s.freePool, pi)
}

func (s *Store) addMember(p *pool, ri int32, r *rec) {
	if p.mseq == ^uint32(0) {
		// Sequence space exhausted: renumber. Cursors into this pool then
		// restart it (repeats, never skips).
		p.members.renumber(func(idx, pos int32) { s.rec(idx).pos = pos })
		p.mseq = uint32(p.members.len())
	}
	p.mseq++
	r.pos = p.members.add(p.mseq, ri, func(idx, pos int32) { s.rec(idx).pos = pos })
}

// removeRec deletes record ri from every index. p is its pool.
func (s *Store) removeRec(p *pool, pi int32, ri int32, r *rec) {
	p.sel.Remove(r.slot)
	if !p.shared {
		p.slotPE[r.slot] = -1
		p.freeSl = append(p.freeSl, r.slot)
	}
	p.ids.del(r.id(), ri, s)
	p.members.remove(r.pos, func(idx, pos int32) { s.rec(idx).pos = pos })
	s.ownerUnlink(ri, r, p)
	if r.heap >= 0 {
		s.heap.remove(r.heap, s)
	}
	s.pes--
	if p.ids.n == 0 {
		s.dropPool(p, pi)
	}
	s.freeRec(ri)
}

// Deregister removes PE id from the pool named handle (RFC 5352 §3.3) and
// returns it (read-only, valid until the next Store call). The pool goes
// away with its last PE. ok is false when there is no such PE.
func (s *Store) Deregister(now time.Time, handle tlv.PoolHandle, id uint32) (pe tlv.PoolElement, ok bool) {
	p, ri := s.find(handle, id)
	if p == nil {
		return pe, false
	}
	r := s.rec(ri)
	s.resetScratch(1)
	s.materializeInto(&pe, ri, r, p.ptype)
	// The value aliases the record, which removeRec clears.
	s.scrVal = append(s.scrVal[:0], pe.Policy.Value...)
	pe.Policy.Value = s.scrVal[:len(pe.Policy.Value):len(pe.Policy.Value)]
	s.removeRec(p, r.pool, ri, r)
	return pe, true
}

// Lookup returns a copy of PE id of the pool named handle and its local data.
func (s *Store) Lookup(handle tlv.PoolHandle, id uint32) (tlv.PoolElement, Info, bool) {
	p, ri := s.find(handle, id)
	if p == nil {
		return tlv.PoolElement{}, Info{}, false
	}
	r := s.rec(ri)
	s.resetScratch(1)
	pe := ClonePoolElement(s.materialize(ri, r, p.ptype))
	return pe, s.info(ri, r), true
}

// View is Lookup without the copy: the PE aliases store memory and is
// read-only and valid until the next Store call, like the PEs of Select.
func (s *Store) View(handle tlv.PoolHandle, id uint32) (pe tlv.PoolElement, in Info, ok bool) {
	p, ri := s.find(handle, id)
	if p == nil {
		return pe, in, false
	}
	r := s.rec(ri)
	s.resetScratch(1)
	// Written in place: the results are large, and copies of them cost
	// as much as the lookup.
	s.materializeInto(&pe, ri, r, p.ptype)
	s.infoInto(&in, ri, r)
	return pe, in, true
}

// Select runs the pool's policy (RFC 5356, via package policy) and appends
// up to n PEs in selection order to dst[:0], for a handle resolution
// (RFC 5352 §3.5). It also returns the pool's policy: the pool's type with
// the first selected PE's values (as RSPLIB does). The PEs and the policy
// value are read-only and valid until the next Store call. An unknown pool
// handle gives an error matching ErrUnknownPoolHandle.
func (s *Store) Select(handle tlv.PoolHandle, n int, dst []tlv.PoolElement) ([]tlv.PoolElement, tlv.Policy, error) {
	dst = dst[:0]
	p, k, err := s.selectRecs(handle, n)
	if p == nil || k == 0 {
		return dst, tlv.Policy{Type: pt(p)}, err
	}
	s.resetScratch(k)
	if cap(dst) < k {
		dst = make([]tlv.PoolElement, k)
	} else {
		dst = dst[:k]
	}
	// Read every record's identifier first, so that their cache misses
	// overlap instead of following one another.
	for i, ri := range s.scrSlots {
		dst[i].ID = s.rec(ri).id()
	}
	for i, ri := range s.scrSlots {
		s.materializeInto(&dst[i], ri, s.rec(ri), p.ptype)
	}
	return dst, tlv.Policy{Type: p.ptype, Value: dst[0].Policy.Value}, nil
}

// SelectEncoded is Select giving each selected PE as its wire encoding,
// which the store keeps from the PE's registration: a whole Pool Element
// parameter (RFC 5354 §3.7, padding included) without the ASAP transport,
// as a Handle Resolution Response carries it (RFC 5352 §3.5; the ASAP
// transport is for ENRP only, RFC 5354 §3.10). It appends them in
// selection order to dst[:0] and returns the pool's policy as Select does.
// The slices are read-only and valid until the next Store call; copy them
// into the response.
func (s *Store) SelectEncoded(handle tlv.PoolHandle, n int, dst [][]byte) ([][]byte, tlv.Policy, error) {
	dst = dst[:0]
	p, k, err := s.selectRecs(handle, n)
	if p == nil || k == 0 {
		return dst, tlv.Policy{Type: pt(p)}, err
	}
	if cap(dst) < k {
		dst = make([][]byte, k)
	} else {
		dst = dst[:k]
	}
	for i, ri := range s.scrSlots {
		dst[i] = s.encoded(ri, s.rec(ri))
	}
	r0 := s.rec(s.scrSlots[0])
	return dst, tlv.Policy{Type: p.ptype, Value: s.polBytes(s.scrSlots[0], r0)}, nil
}

func pt(p *pool) uint32 {
	if p == nil {
		return 0
	}
	return p.ptype
}

// selectRecs runs the policy of the pool named handle for n PEs and leaves
// the records of the selected ones in s.scrSlots. p is nil for an unknown
// pool, with err matching ErrUnknownPoolHandle.
func (s *Store) selectRecs(handle tlv.PoolHandle, n int) (p *pool, k int, err error) {
	p, _ = s.findPool(handle)
	if p == nil {
		return nil, 0, ErrUnknownPoolHandle
	}
	if n <= 0 {
		return p, 0, nil
	}
	if n > p.ids.n {
		n = p.ids.n
	}
	s.scrSlots = p.sel.Select(n, s.scrSlots[:0])
	if !p.shared {
		for i, sl := range s.scrSlots {
			s.scrSlots[i] = p.slotPE[sl]
		}
	}
	return p, len(s.scrSlots), nil
}

// ReportUnreachable counts one ASAP_ENDPOINT_UNREACHABLE report against the
// PE (RFC 5352 §3.5) and returns the count since its last registration. The
// registrar removes the PE when the count reaches MAX-BAD-PE-REPORT.
func (s *Store) ReportUnreachable(now time.Time, handle tlv.PoolHandle, id uint32) (reports int, ok bool) {
	p, ri := s.find(handle, id)
	if p == nil {
		return 0, false
	}
	r := s.rec(ri)
	n := s.reports[ri]
	if n < ^uint32(0) {
		n++
	}
	s.reports[ri] = n
	r.flags |= flagReports
	return int(n), true
}
