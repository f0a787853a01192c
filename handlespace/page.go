package handlespace

// Iteration and paging over the handlespace.

import (
	"github.com/go-rserpool/rserpool/tlv"
)

// Cursor is a position in the handle table for Page. The zero Cursor is the
// start. It stays usable across mutations: a resumed walk never skips a PE
// that was stored for the whole walk and never repeats one, while PEs added
// meanwhile may or may not be visited.
type Cursor struct {
	pool uint64 // creation sequence of the pool being walked; 0 = start
	pe   uint32 // member sequence of the last PE returned from it
	in   bool   // pe is meaningful
}

// PoolInfo describes one pool for a read-only view.
type PoolInfo struct {
	Handle     tlv.PoolHandle // a copy
	PolicyType uint32
	Transport  tlv.ParamType    // user transport protocol of its PEs
	Use        tlv.TransportUse // Transport Use of its PEs
	PEs        int
}

// ForEachPool calls fn with each pool, in creation order, until fn returns
// false. fn must not change the Store.
func (s *Store) ForEachPool(fn func(PoolInfo) bool) {
	for _, e := range s.order.ents {
		if e.idx < 0 {
			continue
		}
		p := s.pools[e.idx]
		if !fn(PoolInfo{Handle: tlv.PoolHandle(p.handle), PolicyType: p.ptype, Transport: p.utype, Use: p.uuse, PEs: p.ids.n}) {
			return
		}
	}
}

// ForEachPE calls fn with each PE of the pool named handle, in registration
// order, until fn returns false. fn must not change the Store; pe is valid
// until fn returns. It returns false when the pool does not exist.
func (s *Store) ForEachPE(handle tlv.PoolHandle, fn func(pe tlv.PoolElement, info Info) bool) bool {
	p, _ := s.findPool(handle)
	if p == nil {
		return false
	}
	for _, e := range p.members.ents {
		if e.idx < 0 {
			continue
		}
		r := s.rec(e.idx)
		s.resetScratch(1)
		if !fn(s.materialize(e.idx, r, p.ptype), s.info(e.idx, r)) {
			break
		}
	}
	return true
}

// Page returns up to maxPEs PEs, grouped by pool, from position c on, for an
// ENRP_HANDLE_TABLE_RESPONSE (RFC 5353 §3.5). ownerFilter 0 takes every PE;
// otherwise only those whose home is ownerFilter (W=1). more tells whether
// another matching PE follows; pass next to the following call. The
// returned entries are independent copies. Pools are walked in creation
// order and PEs in registration order.
func (s *Store) Page(c Cursor, maxPEs int, ownerFilter uint32) (entries []tlv.PoolEntry, next Cursor, more bool) {
	if maxPEs <= 0 {
		maxPEs = 1
	}
	next = c
	count := 0
	oi := s.order.search(c.pool)
	for ; oi < len(s.order.ents); oi++ {
		oe := s.order.ents[oi]
		if oe.idx < 0 {
			continue
		}
		p := s.pools[oe.idx]
		mi := 0
		if c.in && oe.seq == c.pool {
			mi = p.members.search(uint64(c.pe) + 1)
		}
		var entry *tlv.PoolEntry
		for ; mi < len(p.members.ents); mi++ {
			me := p.members.ents[mi]
			if me.idx < 0 {
				continue
			}
			r := s.rec(me.idx)
			if ownerFilter != 0 && r.home() != ownerFilter {
				continue
			}
			if count == maxPEs {
				return entries, next, true
			}
			if entry == nil {
				entries = append(entries, tlv.PoolEntry{PoolHandle: append(tlv.PoolHandle(nil), p.handle...)})
				entry = &entries[len(entries)-1]
			}
			s.resetScratch(1)
			entry.PEs = append(entry.PEs, ClonePoolElement(s.materialize(me.idx, r, p.ptype)))
			count++
			next = Cursor{pool: oe.seq, pe: uint32(me.seq), in: true}
		}
		// Whole pool done: resume after it.
		next = Cursor{pool: oe.seq + 1}
	}
	return entries, next, false
}
