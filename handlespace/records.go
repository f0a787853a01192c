package handlespace

// PE records: a chunked slab of compact records, their conversion to and
// from tlv.PoolElement, and their registration deadlines.

import (
	"net/netip"
	"time"

	"github.com/go-rserpool/rserpool/tlv"
)

const chunkBits = 12

const chunkSize = 1 << chunkBits

// rec is one stored PE. Transport addresses and policy values are kept
// inline; PEs that need more (several addresses, unknown parameters, long
// policy values) have flagExt set and their full data in Store.ext.
type rec struct {
	id, home uint32
	pool     int32 // -1 when the record is free
	slot     int32 // selector slot in the pool
	pos      int32 // index in pool.members
	heap     int32 // index in the expiry heap, -1 if none
	onext    int32 // owner list; also the free list
	oprev    int32
	life     int32
	reports  uint32
	updated  int64 // UnixNano
	userAddr [16]byte
	asapAddr [16]byte
	userPort uint16
	asapPort uint16
	userType tlv.ParamType
	asapType tlv.ParamType
	userUse  tlv.TransportUse
	asapUse  tlv.TransportUse
	flags    uint8
	polLen   uint8
	pol      [maxInlinePolicy]byte
}

const maxInlinePolicy = 16

const (
	flagUserV4   = 1 << iota // userAddr holds an IPv4 address (else IPv6)
	flagAsapV4               // asapAddr holds an IPv4 address
	flagAsapAddr             // the ASAP transport has one address
	flagMarked               // audit mark
	flagExt                  // full data in Store.ext
)

// extData holds what a rec cannot: deep copies owned by the store.
type extData struct {
	user, asap tlv.Transport
	polVal     []byte
	unknown    []tlv.RawParam
}

func (s *Store) rec(i int32) *rec { return &s.chunks[i>>chunkBits][i&(chunkSize-1)] }

func (s *Store) allocRec() int32 {
	if s.free >= 0 {
		i := s.free
		s.free = s.rec(i).onext
		return i
	}
	i := s.nrec
	switch {
	case i < chunkSize: // the first chunk grows by appending, for small stores
		if i == 0 {
			s.chunks = append(s.chunks, make([]rec, 0, 64))
		}
		s.chunks[0] = append(s.chunks[0], rec{})
	case int(i)&(chunkSize-1) == 0:
		s.chunks = append(s.chunks, make([]rec, chunkSize))
	}
	s.nrec++
	return i
}

func (s *Store) freeRec(i int32) {
	r := s.rec(i)
	if r.flags&flagExt != 0 {
		delete(s.ext, i)
	}
	*r = rec{pool: -1, heap: -1, onext: s.free}
	s.free = i
}

// fill copies the transports and the policy value of pe into r.
func (s *Store) fill(ri int32, r *rec, pe *tlv.PoolElement) {
	r.life = pe.RegistrationLife
	if x := needsExt(pe); x {
		e := &extData{
			user:    cloneTransport(pe.UserTransport),
			asap:    cloneTransport(pe.ASAPTransport),
			polVal:  append([]byte(nil), pe.Policy.Value...),
			unknown: cloneRaw(pe.Unknown),
		}
		s.ext[ri] = e
		r.flags = r.flags&flagMarked | flagExt
		r.userType, r.asapType = pe.UserTransport.Type, pe.ASAPTransport.Type
		return
	}
	if r.flags&flagExt != 0 {
		delete(s.ext, ri)
	}
	f := r.flags & flagMarked
	u := &pe.UserTransport
	r.userType, r.userPort, r.userUse = u.Type, u.Port, u.Use
	a := u.Addrs[0]
	if a.Is4() {
		f |= flagUserV4
	}
	r.userAddr = a.As16()
	at := &pe.ASAPTransport
	r.asapType, r.asapPort, r.asapUse = at.Type, at.Port, at.Use
	r.asapAddr = [16]byte{}
	if len(at.Addrs) == 1 {
		f |= flagAsapAddr
		if at.Addrs[0].Is4() {
			f |= flagAsapV4
		}
		r.asapAddr = at.Addrs[0].As16()
	}
	r.polLen = uint8(copy(r.pol[:], pe.Policy.Value))
	r.flags = f
}

func needsExt(pe *tlv.PoolElement) bool {
	u, a := &pe.UserTransport, &pe.ASAPTransport
	return len(u.Addrs) != 1 || len(a.Addrs) > 1 || u.ServiceCode != 0 || a.ServiceCode != 0 ||
		u.Addrs[0].Zone() != "" || (len(a.Addrs) == 1 && a.Addrs[0].Zone() != "") ||
		len(pe.Policy.Value) > maxInlinePolicy || len(pe.Unknown) > 0 ||
		!u.Addrs[0].IsValid() || (len(a.Addrs) == 1 && !a.Addrs[0].IsValid())
}

func cloneTransport(t tlv.Transport) tlv.Transport {
	t.Addrs = append([]netip.Addr(nil), t.Addrs...)
	return t
}

func cloneRaw(ps []tlv.RawParam) []tlv.RawParam {
	if len(ps) == 0 {
		return nil
	}
	out := make([]tlv.RawParam, len(ps))
	for i, p := range ps {
		out[i] = p
		out[i].Value = append([]byte(nil), p.Value...)
	}
	return out
}

// ClonePoolElement returns a deep copy of pe that shares no memory with it.
func ClonePoolElement(pe tlv.PoolElement) tlv.PoolElement {
	pe.UserTransport = cloneTransport(pe.UserTransport)
	pe.ASAPTransport = cloneTransport(pe.ASAPTransport)
	if pe.ASAPTransport.Type == 0 && len(pe.ASAPTransport.Addrs) == 0 {
		pe.ASAPTransport.Addrs = nil
	}
	pe.Policy.Value = append([]byte(nil), pe.Policy.Value...)
	pe.Unknown = cloneRaw(pe.Unknown)
	return pe
}

func (s *Store) polBytes(ri int32, r *rec) []byte {
	if r.flags&flagExt != 0 {
		return s.ext[ri].polVal
	}
	return r.pol[:r.polLen]
}

// materialize builds the PoolElement of record ri. Slices alias the scratch
// buffers (or ext data); the caller has reserved room in the scratch
// buffers so that appending does not reallocate.
func (s *Store) materialize(ri int32, r *rec, ptype uint32) tlv.PoolElement {
	var pe tlv.PoolElement
	s.materializeInto(&pe, ri, r, ptype)
	return pe
}

// materializeInto is materialize writing into *pe field by field, which
// overwrites every field and avoids copying the large struct around.
func (s *Store) materializeInto(pe *tlv.PoolElement, ri int32, r *rec, ptype uint32) {
	pe.ID, pe.HomeServerID, pe.RegistrationLife = r.id, r.home, r.life
	pe.Policy.Type = ptype
	if r.flags&flagExt != 0 {
		e := s.ext[ri]
		pe.UserTransport, pe.ASAPTransport = e.user, e.asap
		pe.Policy.Value = e.polVal
		pe.Unknown = e.unknown
		return
	}
	pe.Unknown = nil
	ut := &pe.UserTransport
	ut.Type, ut.Port, ut.Use, ut.ServiceCode, ut.Unknown = r.userType, r.userPort, r.userUse, 0, nil
	ut.Addrs = s.scratchAddr(r.userAddr, r.flags&flagUserV4 != 0)
	at := &pe.ASAPTransport
	at.Type, at.Port, at.Use, at.ServiceCode, at.Unknown = r.asapType, r.asapPort, r.asapUse, 0, nil
	if r.flags&flagAsapAddr != 0 {
		at.Addrs = s.scratchAddr(r.asapAddr, r.flags&flagAsapV4 != 0)
	} else {
		at.Addrs = nil
	}
	n := len(s.scrVal)
	s.scrVal = append(s.scrVal, r.pol[:r.polLen]...)
	pe.Policy.Value = s.scrVal[n:len(s.scrVal):len(s.scrVal)]
}

func (s *Store) scratchAddr(b [16]byte, v4 bool) []netip.Addr {
	a := netip.AddrFrom16(b)
	if v4 {
		a = a.Unmap()
	}
	n := len(s.scrAddrs)
	s.scrAddrs = append(s.scrAddrs, a)
	return s.scrAddrs[n : n+1 : n+1]
}

// resetScratch empties the scratch buffers and reserves room for n PEs.
func (s *Store) resetScratch(n int) {
	if cap(s.scrAddrs) < 2*n {
		s.scrAddrs = make([]netip.Addr, 0, 2*n)
	}
	if cap(s.scrVal) < maxInlinePolicy*n {
		s.scrVal = make([]byte, 0, maxInlinePolicy*n)
	}
	s.scrAddrs, s.scrVal = s.scrAddrs[:0], s.scrVal[:0]
}

func (s *Store) info(r *rec) Info {
	in := Info{
		LastUpdate:         time.Unix(0, r.updated),
		UnreachableReports: int(r.reports),
		Marked:             r.flags&flagMarked != 0,
	}
	if r.heap >= 0 { // a PE has a deadline exactly when it is in the heap
		in.Expiry = time.Unix(0, s.heap[r.heap].exp)
	}
	return in
}

// SetExpiry sets the PE's registration deadline (keep-alive, refresh); a
// zero t removes it. ok is false when there is no such PE.
func (s *Store) SetExpiry(now time.Time, handle tlv.PoolHandle, id uint32, t time.Time) bool {
	p, ri := s.find(handle, id)
	if p == nil {
		return false
	}
	s.setExpiry(ri, s.rec(ri), t)
	return true
}

func (s *Store) setExpiry(ri int32, r *rec, t time.Time) {
	var e int64
	if !t.IsZero() {
		e = t.UnixNano()
		if e == 0 {
			e = 1 // keep 0 for "none"
		}
	}
	switch {
	case e == 0 && r.heap >= 0:
		s.heap.remove(r.heap, s)
	case e != 0 && r.heap >= 0:
		s.heap.update(r.heap, e, s)
	case e != 0:
		s.heap.push(ri, e, s)
	}
}

// NextExpiry returns the earliest PE deadline, if any PE has one.
func (s *Store) NextExpiry() (time.Time, bool) {
	if len(s.heap) == 0 {
		return time.Time{}, false
	}
	return time.Unix(0, s.heap[0].exp), true
}

// PopExpired removes every PE whose deadline is not after now, calling fn
// (if not nil) with each before it goes, in deadline order, and returns how
// many it removed (RFC 5352 §3.3 lifetime expiry). fn must not call the
// Store; pe is valid until fn returns.
func (s *Store) PopExpired(now time.Time, fn func(handle tlv.PoolHandle, pe tlv.PoolElement)) int {
	t := now.UnixNano()
	n := 0
	for len(s.heap) > 0 && s.heap[0].exp <= t {
		ri := s.heap[0].idx
		r := s.rec(ri)
		p := s.pools[r.pool]
		if fn != nil {
			s.resetScratch(1)
			fn(p.hb, s.materialize(ri, r, p.ptype))
		}
		s.removeRec(p, r.pool, ri, r)
		n++
	}
	return n
}
