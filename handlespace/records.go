package handlespace

// PE records: a chunked slab of compact records, their conversion to and
// from tlv.PoolElement, and their registration deadlines.

import (
	"cmp"
	"encoding/binary"
	"net/netip"
	"slices"
	"time"

	"github.com/go-rserpool/rserpool/tlv"
)

const chunkBits = 12

const chunkSize = 1 << chunkBits

// rec is one stored PE, 88 bytes. Its user transport, policy and
// identifiers are kept as the PE's wire encoding, the Pool Element
// parameter of RFC 5354 §2.2 with the ASAP transport left out, at the start
// of data: the form a Handle Resolution Response carries (RFC 5352 §3.5;
// the ASAP transport is for ENRP only, RFC 5354 §3.10), so that a
// resolution copies it instead of encoding the PE again. It changes only
// when the PE is registered or updated, or changes home. The ASAP
// transport is kept beside it: its type and port in the record, its use in
// flags (0 or 1: data only, data plus control), its address (if any) after
// the encoding in data, 4 or 16 bytes, or none when it is the user
// transport's address (flagAsapSame: a PE registered over ASAP usually has
// one address for both). PEs that need more (several addresses, unknown
// parameters, more than data holds) have flagExt set, their full data in
// Store.ext, and the first encHead bytes of their encoding (header,
// identifiers, life) in data. The unreachable-report count is in
// Store.reports, for the few PEs that have one (flagReports).
type rec struct {
	updated  int64 // UnixNano
	pool     int32 // -1 when the record is free
	slot     int32 // selector slot in the pool
	pos      int32 // index in pool.members
	heap     int32 // index in the expiry heap, -1 if none
	onext    int32 // owner list; also the free list
	oprev    int32
	asapPort uint16
	asapType uint8 // tlv.ParamType, 0 or a transport type (below 256)
	flags    uint8
	data     [maxInline]byte
}

// maxInline is the room for a PE's encoding and its ASAP address in a rec:
// an IPv4 user transport with a policy value of up to 8 bytes, and up to 4
// bytes with an IPv4 ASAP address of its own.
const maxInline = 52

// encHead is the fixed start of a Pool Element parameter: type, length, PE
// identifier, home ENRP server identifier, registration life.
const encHead = 16

const (
	flagAsapV4   = 1 << iota // the ASAP transport's address is IPv4
	flagAsapAddr             // the ASAP transport has one address
	flagAsapSame             // ... which is the user transport's first one
	flagAsapUse1             // the ASAP transport's use is 1, not 0
	flagMarked               // audit mark
	flagExt                  // full data in Store.ext
	flagReports              // Store.reports counts reports for it
	flagLazyExp              // the deadline is in data[lazyOff:], later than the heap key
)

// lazyOff is where a record keeps its registration deadline while the
// deadline is later than its expiry heap key (flagLazyExp): the last 8
// bytes of data, which the encoding and ASAP address of most PEs leave
// free: an IPv4 user transport with a policy value of up to 4 bytes (round
// robin, least used ...; DCCP: no policy value, its service code takes 4
// bytes) and an ASAP transport on the same address or none,
// or with no policy value and an IPv4 ASAP address of its own; and every
// flagExt PE. The others have their heap entry moved at once. See
// setExpiry.
const lazyOff = maxInline - 8

// tailFree tells whether data[lazyOff:] is unused by the record's
// encoding and ASAP address.
func (r *rec) tailFree() bool {
	if r.flags&flagExt != 0 {
		return true // data holds only the first encHead bytes
	}
	n := r.encLen()
	if r.flags&(flagAsapAddr|flagAsapSame) == flagAsapAddr {
		if r.flags&flagAsapV4 != 0 {
			n += 4
		} else {
			n += 16
		}
	}
	return n <= lazyOff
}

// encLen is the length of an inline encoding: the Pool Element
// parameter's length field (it needs no padding, see encodeInline).
func (r *rec) encLen() int { return int(binary.BigEndian.Uint16(r.data[2:])) }

func (r *rec) id() uint32   { return binary.BigEndian.Uint32(r.data[4:]) }
func (r *rec) home() uint32 { return binary.BigEndian.Uint32(r.data[8:]) }

// setHome changes the home ENRP server identifier, in the cached encoding
// too.
func (s *Store) setHome(ri int32, r *rec, home uint32) {
	binary.BigEndian.PutUint32(r.data[8:], home)
	if r.flags&flagExt != 0 {
		binary.BigEndian.PutUint32(s.ext[ri].enc[8:], home)
	}
}

// extData holds what a rec cannot: deep copies owned by the store.
type extData struct {
	user, asap tlv.Transport
	polVal     []byte
	unknown    []tlv.RawParam
	enc        []byte // the cached encoding, as in rec.data
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
	s.clearReports(i, r)
	s.clearLazy(r)
	*r = rec{pool: -1, heap: -1, onext: s.free}
	s.free = i
}

// fill stores the PE's data in r: its encoding, ASAP transport, or the ext
// data. The home in pe becomes the record's home.
func (s *Store) fill(ri int32, r *rec, pe *tlv.PoolElement) {
	// The new data may cover data[lazyOff:]: a postponed deadline falls
	// back to its heap key, a lower bound, until the caller sets the
	// deadline again.
	s.clearLazy(r)
	// The encoding as a resolution carries it: without the ASAP transport.
	asap := &pe.ASAPTransport
	ext := needsExt(pe, asap) || asap.Type > 0xff || asap.Use > 1
	n, an := 0, 0
	var f uint8
	if asap.Use == 1 {
		f |= flagAsapUse1
	}
	if !ext {
		n = inlineLen(pe)
		if len(asap.Addrs) == 1 {
			f |= flagAsapAddr
			a := asap.Addrs[0]
			switch {
			case a == pe.UserTransport.Addrs[0]:
				f |= flagAsapSame
			case a.Is4():
				an = 4
			default:
				an = 16
			}
			if a.Is4() {
				f |= flagAsapV4
			}
		}
	}
	if ext || n+an > maxInline {
		c := *pe
		c.ASAPTransport = tlv.Transport{}
		n = c.Len()
		e := &extData{
			user:    cloneTransport(pe.UserTransport),
			asap:    cloneTransport(*asap),
			polVal:  append([]byte(nil), pe.Policy.Value...),
			unknown: cloneRaw(pe.Unknown),
			enc:     c.AppendTo(make([]byte, 0, n)),
		}
		s.ext[ri] = e
		copy(r.data[:], e.enc[:encHead])
		r.flags = r.flags&(flagMarked|flagReports) | flagExt
		return
	}
	encodeInline(&r.data, pe, n)
	if r.flags&flagExt != 0 {
		delete(s.ext, ri)
	}
	r.asapType, r.asapPort = uint8(asap.Type), asap.Port
	switch a := asap.Addrs; an {
	case 4:
		v := a[0].As4()
		copy(r.data[n:], v[:])
	case 16:
		v := a[0].As16()
		copy(r.data[n:], v[:])
	}
	r.flags = r.flags&(flagMarked|flagReports) | f
}

// encodeInline writes into enc the n-byte encoding of pe without its ASAP
// transport, as PoolElement.AppendTo does (RFC 5354 §3.7: PE Identifier,
// Home ENRP Server Identifier, Registration Life, User Transport with its
// one address, Member Selection Policy), for a PE that needsExt refuses.
// The policy value is a multiple of 4 bytes, so no padding is needed.
func encodeInline(enc *[maxInline]byte, pe *tlv.PoolElement, n int) int {
	be := binary.BigEndian
	be.PutUint16(enc[0:], uint16(tlv.ParamPoolElement))
	be.PutUint16(enc[2:], uint16(n))
	be.PutUint32(enc[4:], pe.ID)
	be.PutUint32(enc[8:], pe.HomeServerID)
	be.PutUint32(enc[12:], uint32(pe.RegistrationLife))
	u := &pe.UserTransport
	be.PutUint16(enc[16:], uint16(u.Type))
	be.PutUint16(enc[20:], u.Port)
	o := 24
	switch u.Type {
	case tlv.ParamSCTPTransport, tlv.ParamTCPTransport:
		be.PutUint16(enc[22:], uint16(u.Use))
	case tlv.ParamDCCPTransport:
		be.PutUint16(enc[22:], 0)
		be.PutUint32(enc[24:], 0) // Service Code 0 (else needsExt)
		o = 28
	default:
		be.PutUint16(enc[22:], 0)
	}
	if a := u.Addrs[0]; a.Is4() {
		v := a.As4()
		be.PutUint16(enc[o:], uint16(tlv.ParamIPv4Address))
		be.PutUint16(enc[o+2:], 8)
		copy(enc[o+4:], v[:])
		o += 8
	} else {
		v := a.As16()
		be.PutUint16(enc[o:], uint16(tlv.ParamIPv6Address))
		be.PutUint16(enc[o+2:], 20)
		copy(enc[o+4:], v[:])
		o += 20
	}
	be.PutUint16(enc[18:], uint16(o-16))
	be.PutUint16(enc[o:], uint16(tlv.ParamPolicy))
	be.PutUint16(enc[o+2:], uint16(8+len(pe.Policy.Value)))
	be.PutUint32(enc[o+4:], pe.Policy.Type)
	copy(enc[o+8:], pe.Policy.Value)
	return o + 8 + len(pe.Policy.Value)
}

// inlineLen is the length encodeInline writes for pe, which needsExt
// refuses.
func inlineLen(pe *tlv.PoolElement) int {
	n := 16 + 8 + 8 + 8 + len(pe.Policy.Value) // header, transport, IPv4, policy
	if pe.UserTransport.Type == tlv.ParamDCCPTransport {
		n += 4
	}
	if !pe.UserTransport.Addrs[0].Is4() {
		n += 12
	}
	return n
}

// needsExt tells whether a PE's data does not fit a rec's fields (apart
// from the length of its encoding): several addresses, unknown parameters,
// or fields the wire form does not keep for its transport type.
func needsExt(pe *tlv.PoolElement, a *tlv.Transport) bool {
	u := &pe.UserTransport
	return len(u.Addrs) != 1 || len(a.Addrs) > 1 || u.ServiceCode != 0 || a.ServiceCode != 0 ||
		len(u.Unknown) > 0 || len(a.Unknown) > 0 ||
		u.Addrs[0].Zone() != "" || (len(a.Addrs) == 1 && a.Addrs[0].Zone() != "") ||
		len(pe.Unknown) > 0 || len(pe.Policy.Value)%4 != 0 ||
		(u.Use != 0 && u.Type != tlv.ParamSCTPTransport && u.Type != tlv.ParamTCPTransport) ||
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
	_, v := encPolicy(r.data[:r.encLen()])
	return v
}

// encoded returns the cached encoding of record ri (read-only).
func (s *Store) encoded(ri int32, r *rec) []byte {
	if r.flags&flagExt != 0 {
		return s.ext[ri].enc
	}
	n := r.encLen()
	return r.data[:n:n]
}

// encUser returns the offset of the user transport's address parameter in
// an inline encoding, and the offset of the policy parameter.
func encOffsets(e []byte) (addr, pol int) {
	fixed := 8
	if tlv.ParamType(binary.BigEndian.Uint16(e[encHead:])) == tlv.ParamDCCPTransport {
		fixed = 12
	}
	return encHead + fixed, encHead + int(binary.BigEndian.Uint16(e[encHead+2:]))
}

// encPolicy returns the policy type and value of an inline encoding; the
// value aliases e.
func encPolicy(e []byte) (uint32, []byte) {
	_, po := encOffsets(e)
	end := po + int(binary.BigEndian.Uint16(e[po+2:]))
	return binary.BigEndian.Uint32(e[po+4:]), e[po+8 : end : end]
}

// materialize builds the PoolElement of record ri. Slices alias the scratch
// buffers, the record or its ext data; the caller has reserved room in the
// scratch buffers so that appending does not reallocate.
func (s *Store) materialize(ri int32, r *rec, ptype uint32) tlv.PoolElement {
	var pe tlv.PoolElement
	s.materializeInto(&pe, ri, r, ptype)
	return pe
}

// materializeInto is materialize writing into *pe field by field, which
// overwrites every field and avoids copying the large struct around.
func (s *Store) materializeInto(pe *tlv.PoolElement, ri int32, r *rec, ptype uint32) {
	pe.ID, pe.HomeServerID = r.id(), r.home()
	pe.RegistrationLife = int32(binary.BigEndian.Uint32(r.data[12:]))
	pe.Policy.Type = ptype
	if r.flags&flagExt != 0 {
		e := s.ext[ri]
		pe.UserTransport, pe.ASAPTransport = e.user, e.asap
		pe.Policy.Value = e.polVal
		pe.Unknown = e.unknown
		return
	}
	pe.Unknown = nil
	e := r.data[:r.encLen()]
	ao, po := encOffsets(e)
	ut := &pe.UserTransport
	ut.Type = tlv.ParamType(binary.BigEndian.Uint16(e[encHead:]))
	ut.Port = binary.BigEndian.Uint16(e[encHead+4:])
	ut.Use = 0
	if ut.Type == tlv.ParamSCTPTransport || ut.Type == tlv.ParamTCPTransport {
		ut.Use = tlv.TransportUse(binary.BigEndian.Uint16(e[encHead+6:]))
	}
	ut.ServiceCode, ut.Unknown = 0, nil
	var ua netip.Addr
	if tlv.ParamType(binary.BigEndian.Uint16(e[ao:])) == tlv.ParamIPv4Address {
		ua = netip.AddrFrom4([4]byte(e[ao+4 : ao+8]))
	} else {
		ua = netip.AddrFrom16([16]byte(e[ao+4 : ao+20]))
	}
	n := len(s.scrAddrs)
	s.scrAddrs = append(s.scrAddrs, ua)
	ut.Addrs = s.scrAddrs[n : n+1 : n+1]
	at := &pe.ASAPTransport
	at.Type, at.Port, at.Use, at.ServiceCode, at.Unknown = tlv.ParamType(r.asapType), r.asapPort, 0, 0, nil
	if r.flags&flagAsapUse1 != 0 {
		at.Use = 1
	}
	switch f := r.flags; {
	case f&flagAsapAddr == 0:
		at.Addrs = nil
	case f&flagAsapSame != 0:
		at.Addrs = ut.Addrs
	default:
		var a netip.Addr
		if f&flagAsapV4 != 0 {
			a = netip.AddrFrom4([4]byte(r.data[len(e) : len(e)+4]))
		} else {
			a = netip.AddrFrom16([16]byte(r.data[len(e) : len(e)+16]))
		}
		n := len(s.scrAddrs)
		s.scrAddrs = append(s.scrAddrs, a)
		at.Addrs = s.scrAddrs[n : n+1 : n+1]
	}
	end := po + int(binary.BigEndian.Uint16(e[po+2:]))
	pe.Policy.Value = e[po+8 : end : end]
}

// resetScratch empties the scratch buffers and reserves room for n PEs.
func (s *Store) resetScratch(n int) {
	if cap(s.scrAddrs) < 2*n {
		s.scrAddrs = make([]netip.Addr, 0, 2*n)
	}
	s.scrAddrs = s.scrAddrs[:0]
}

// reportsOf is record ri's unreachable-report count.
func (s *Store) reportsOf(ri int32, r *rec) int {
	if r.flags&flagReports == 0 {
		return 0
	}
	return int(s.reports[ri])
}

// clearReports resets record ri's unreachable-report count.
func (s *Store) clearReports(ri int32, r *rec) {
	if r.flags&flagReports != 0 {
		delete(s.reports, ri)
		r.flags &^= flagReports
	}
}

func (s *Store) info(ri int32, r *rec) Info {
	var in Info
	s.infoInto(&in, ri, r)
	return in
}

// infoInto is info writing into *in, which must be zero.
func (s *Store) infoInto(in *Info, ri int32, r *rec) {
	in.LastUpdate = time.Unix(0, r.updated)
	if r.flags&flagReports != 0 {
		in.UnreachableReports = int(s.reports[ri])
	}
	in.Marked = r.flags&flagMarked != 0
	if r.heap >= 0 { // a PE has a deadline exactly when it is in the heap
		in.Expiry = time.Unix(0, s.deadline(r))
	}
}

// deadline is the registration deadline (UnixNano) of record r, which is
// in the expiry heap.
func (s *Store) deadline(r *rec) int64 {
	if r.flags&flagLazyExp != 0 {
		return int64(binary.LittleEndian.Uint64(r.data[lazyOff:]))
	}
	return s.heap.exp[r.heap]
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

// setExpiry sets record ri's deadline. A deadline that moves later (every
// keep-alive and re-registration moves it so) does not move the record's
// heap entry when the record has room for it (tailFree): the entry keeps
// its earlier key, a lower bound of the deadline, which the record keeps
// in data[lazyOff:] (flagLazyExp). settleTop gives such an entry its
// deadline and sinks it once it comes to the top, so each deadline pays at
// most one sift-down however often it moves later, and none while earlier
// ones are still pending. The runtime's timers do the same for timers
// reset to a later time.
func (s *Store) setExpiry(ri int32, r *rec, t time.Time) {
	var e int64
	if !t.IsZero() {
		e = t.UnixNano()
		if e == 0 {
			e = 1 // keep 0 for "none"
		}
	}
	switch {
	case e == 0:
		if r.heap >= 0 {
			s.clearLazy(r)
			s.heap.remove(r.heap, s)
		}
	case r.heap < 0:
		s.heap.push(ri, e, s)
	default:
		switch key := s.heap.exp[r.heap]; {
		case e == key:
			s.clearLazy(r)
		case e > key && r.tailFree():
			binary.LittleEndian.PutUint64(r.data[lazyOff:], uint64(e))
			if r.flags&flagLazyExp == 0 {
				r.flags |= flagLazyExp
				s.lazy++
			}
		default:
			s.clearLazy(r)
			s.heap.update(r.heap, e, s)
		}
	}
}

// clearLazy makes the heap key of record r its deadline again (the
// caller moves it).
func (s *Store) clearLazy(r *rec) {
	if r.flags&flagLazyExp != 0 {
		r.flags &^= flagLazyExp
		s.lazy--
	}
}

// settleTop gives the heap's first entries their deadlines until the first
// one has its own (see setExpiry): then its key is the earliest deadline,
// since every key is at most its record's deadline.
func (s *Store) settleTop() {
	for {
		if s.heap.top(s); s.heap.len() == 0 {
			return
		}
		r := s.rec(s.heap.idx[0])
		if r.flags&flagLazyExp == 0 {
			return
		}
		r.flags &^= flagLazyExp
		s.lazy--
		s.heap.update(0, int64(binary.LittleEndian.Uint64(r.data[lazyOff:])), s)
	}
}

// NextExpiry returns the earliest PE deadline, if any PE has one.
func (s *Store) NextExpiry() (time.Time, bool) {
	if s.lazy > 0 {
		s.settleTop()
	} else if s.heap.dead > 0 {
		s.heap.top(s)
	}
	if s.heap.len() == 0 {
		return time.Time{}, false
	}
	return time.Unix(0, s.heap.exp[0]), true
}

// PopExpired removes every PE whose deadline is not after now, calling fn
// (if not nil) with each before it goes, in deadline order, and returns how
// many it removed (RFC 5352 §3.3 lifetime expiry). fn must not call the
// Store; pe is valid until fn returns.
func (s *Store) PopExpired(now time.Time, fn func(handle tlv.PoolHandle, pe tlv.PoolElement)) int {
	t := now.UnixNano()
	n := 0
	counted := false
	// The keys are lower bounds of the deadlines (see setExpiry): none
	// due, no deadline due.
	for s.heap.len() > 0 && s.heap.exp[0] <= t {
		if s.heap.idx[0] < 0 { // a tombstone (its key is below the rest)
			s.heap.popDead(s)
			continue
		}
		// When the heap's last entry, a leaf, is due too, many may be:
		// count them (once) and take them in one pass if they are.
		if h := &s.heap; !counted && !s.noBulk && h.len() >= bulkMin && h.exp[h.len()-1] <= t {
			counted = true
			if k := h.countDue(t); k*bulkShare >= h.len() {
				return n + s.popExpiredBulk(t, k, fn)
			}
		}
		ri := s.heap.idx[0]
		r := s.rec(ri)
		if r.flags&flagLazyExp != 0 {
			s.settleTop()
			continue
		}
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

// PopExpired takes the due PEs in one pass (popExpiredBulk) when the heap
// holds at least bulkMin entries and at least one in bulkShare is due: a
// pass over the heap, a sort of the due entries and a rebuild of the rest
// cost less than sifting the heap down for each.
const (
	bulkMin   = 64
	bulkShare = 8
)

// maxDueScratch bounds the due-entry scratch popExpiredBulk keeps between
// calls (16 bytes an entry).
const maxDueScratch = 4096

// dueEnt is a due heap entry for popExpiredBulk.
type dueEnt struct {
	exp int64
	ri  int32
}

// popExpiredBulk is PopExpired in one pass: it finds every entry with a
// deadline not after t, sorts them by deadline and hands them to fn, and
// only then takes them out of the heap, rebuilds the heap from the rest and
// removes them. fn runs before anything changes, so a panic in fn leaves
// the Store as it was. A pool whose PEs all go is dropped as a whole: its
// selector is cleared in one pass and its PE-ID table and member list go
// with it. k is the number of keys not after t, which bounds the number
// due.
func (s *Store) popExpiredBulk(t int64, k int, fn func(handle tlv.PoolHandle, pe tlv.PoolElement)) int {
	h := &s.heap
	if cap(s.scrDue) < k {
		// k counts keys, some of which may be lower bounds of later
		// deadlines: an upper bound, so the scratch never grows.
		s.scrDue = make([]dueEnt, 0, k)
	}
	due := s.scrDue[:0]
	for i, e := range h.exp {
		if e > t {
			continue // a lower bound of the deadline
		}
		ri := h.idx[i]
		if ri < 0 {
			continue // a tombstone
		}
		if d := s.deadline(s.rec(ri)); d <= t {
			due = append(due, dueEnt{d, ri})
		}
	}
	slices.SortFunc(due, func(a, b dueEnt) int {
		if c := cmp.Compare(a.exp, b.exp); c != 0 {
			return c
		}
		return cmp.Compare(a.ri, b.ri)
	})
	if fn != nil {
		for _, d := range due {
			r := s.rec(d.ri)
			p := s.pools[r.pool]
			s.resetScratch(1)
			fn(p.hb, s.materialize(d.ri, r, p.ptype))
		}
	}
	// Now the heap: the due entries go, postponed deadlines that are due
	// are settled, and the rest is rebuilt.
	j := 0
	for i, e := range h.exp {
		ri := h.idx[i]
		if ri < 0 {
			continue // a tombstone
		}
		if e <= t {
			r := s.rec(ri)
			if e = s.deadline(r); r.flags&flagLazyExp != 0 {
				r.flags &^= flagLazyExp // settled: e is its key from here on
				s.lazy--
			}
			if e <= t {
				continue // in due
			}
		}
		h.exp[j] = e
		if i != j {
			h.idx[j] = ri
			s.rec(ri).heap = int32(j)
		}
		j++
	}
	h.exp, h.idx, h.dead = h.exp[:j], h.idx[:j], 0
	for i := (j - 2) / heapArity; i >= 0 && j > 1; i-- {
		h.down(i, s)
	}
	for _, d := range due {
		r := s.rec(d.ri)
		r.heap = -1
		s.pools[r.pool].due++
	}
	// p.due counts a pool's due PEs; negative: the pool goes as a whole,
	// -p.due of them are left to free.
	for _, d := range due {
		r := s.rec(d.ri)
		pi := r.pool
		p := s.pools[pi]
		if p.due > 0 && int(p.due) == p.ids.n {
			p.sel.Clear()
			p.due = -p.due
		}
		if p.due > 0 {
			p.due--
			s.removeRec(p, pi, d.ri, r)
			continue
		}
		s.ownerUnlink(d.ri, r, p)
		s.pes--
		s.freeRec(d.ri)
		if p.due++; p.due == 0 {
			s.dropPool(p, pi)
		}
	}
	n := len(due)
	s.scrDue = due[:0]
	if cap(due) > maxDueScratch {
		s.scrDue = nil // scratch (16 bytes a PE), not kept at the size of a large purge
	}
	return n
}

// countDue is the number of entries (tombstones too) whose key is not
// after t.
func (h *expiryHeap) countDue(t int64) int {
	n := 0
	for _, e := range h.exp {
		if e <= t {
			n++
		}
	}
	return n
}
