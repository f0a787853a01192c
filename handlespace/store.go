package handlespace

import (
	"errors"
	"math/rand/v2"
	"net/netip"
	"time"

	"github.com/go-rserpool/rserpool/policy"
	"github.com/go-rserpool/rserpool/tlv"
)

// Defaults for a zero Config field.
const (
	// DefaultMaxPools bounds the number of pools.
	DefaultMaxPools = 1 << 16
	// DefaultMaxPEsPerPool bounds the PEs of one pool.
	DefaultMaxPEsPerPool = 1 << 22
	// DefaultMaxPEs bounds the PEs of the whole store.
	DefaultMaxPEs = 1 << 22
	// DefaultMaxPoolHandleSize bounds a pool handle in bytes. RFC 5354 sets
	// no limit; RSPLIB 3.4.4 caps handles at 32 bytes.
	DefaultMaxPoolHandleSize = 32

	// maxLimit keeps every index inside an int32.
	maxLimit = 1 << 30
)

// Config configures a Store. The zero value works: every zero field takes
// the default named in its comment.
type Config struct {
	MaxPools          int // default DefaultMaxPools
	MaxPEsPerPool     int // default DefaultMaxPEsPerPool
	MaxPEs            int // default DefaultMaxPEs
	MaxPoolHandleSize int // default DefaultMaxPoolHandleSize

	// Rand feeds the random policies (RFC 5356 §2.3, §2.4 ...). Default: a
	// PCG seeded from the runtime's random source. Tests pass a fixed seed.
	Rand rand.Source
}

// Info is the registrar-local data kept with a PE (RFC 5352 §3.2, §3.5).
type Info struct {
	LastUpdate         time.Time // when the PE was last registered or updated
	Expiry             time.Time // registration deadline; zero: no deadline
	UnreachableReports int       // ENDPOINT_UNREACHABLE reports since the last registration
	Marked             bool      // audit mark (Mark/Sweep)
}

// Cursor is a position in the handle table for Page. The zero Cursor is the
// start. It stays usable across mutations: a resumed walk never skips a PE
// that was stored for the whole walk and never repeats one, while PEs added
// meanwhile may or may not be visited.
type Cursor struct {
	pool uint64 // creation sequence of the pool being walked; 0 = start
	pe   uint32 // member sequence of the last PE returned from it
	in   bool   // pe is meaningful
}

// Store is the handlespace of one registrar: pools keyed by pool handle, each
// holding pool elements (RFC 5353 §1.1, RFC 5352 §3.2).
//
// # Concurrency
//
// A Store is not safe for concurrent use. It is meant to be owned by the
// registrar's single event-loop goroutine, which calls every method; any
// other goroutine must hand its request to that loop.
//
// # Time
//
// A Store reads no clock. Every method that changes it takes the caller's
// now as its first argument, so that one registrar loop with one clock
// (real, or virtual in tests) drives it: Register stamps Info.LastUpdate
// with it and PopExpired compares the deadlines with it; the other
// mutators take it for the same contract and do not keep it.
//
// # Returned values
//
// PoolElements returned by Select and Deregister, and those passed to the
// callbacks of PopExpired, ForEachOwnedBy, ForEachPE and Sweep, alias memory
// owned by the Store: they are read-only and valid only until the next call
// of any Store method (for callbacks: until the callback returns). Use
// ClonePoolElement to keep one. Pool handles passed to callbacks are
// read-only too. Lookup and Page return independent copies.
type Store struct {
	cfg Config
	rnd rand.Source

	// PE records live in a chunked slab and are named by int32 indexes.
	chunks   [][]rec
	free     int32 // head of the free-record list, -1 if none
	nrec     int32 // records ever allocated
	pes      int
	ext      map[int32]*extData // PEs whose data does not fit a rec
	heap     expiryHeap
	owners   map[uint32]*owner
	pools    []*pool
	freePool []int32
	byName   map[string]int32
	order    seqList[uint64] // pools in creation order, for Page
	poolSeq  uint64

	// Scratch memory for returned PoolElements (see "Returned values").
	scrAddrs []netip.Addr
	scrVal   []byte
	scrSlots []int32

	seed uint32 // hash seed of the PE-ID tables
}

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

type owner struct {
	head  int32 // first PE, -1 if none
	count int
	sum   uint64 // sum of the per-PE 16-bit word sums (RFC 5353 checksum)
}

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
	slotPE  []int32 // selector slot -> record, -1 if free
	freeSl  []int32
	members seqList[uint32] // records in registration order, for Page
	mseq    uint32
}

// New returns an empty Store. It fails with an error naming the field when
// a limit in cfg is negative or too large.
func New(cfg Config) (*Store, error) {
	lim := []struct {
		name string
		v    *int
		def  int
	}{
		{"MaxPools", &cfg.MaxPools, DefaultMaxPools},
		{"MaxPEsPerPool", &cfg.MaxPEsPerPool, DefaultMaxPEsPerPool},
		{"MaxPEs", &cfg.MaxPEs, DefaultMaxPEs},
		{"MaxPoolHandleSize", &cfg.MaxPoolHandleSize, DefaultMaxPoolHandleSize},
	}
	for _, l := range lim {
		switch {
		case *l.v == 0:
			*l.v = l.def
		case *l.v < 0 || *l.v > maxLimit:
			return nil, errors.New("handlespace: Config." + l.name + " out of range")
		}
	}
	if cfg.MaxPoolHandleSize > 0xffff-4 {
		return nil, errors.New("handlespace: Config.MaxPoolHandleSize out of range")
	}
	s := &Store{cfg: cfg, free: -1, rnd: cfg.Rand}
	if s.rnd == nil {
		s.rnd = rand.NewPCG(rand.Uint64(), rand.Uint64())
	}
	s.seed = uint32(rand.Uint64())
	s.ext = make(map[int32]*extData)
	s.owners = make(map[uint32]*owner)
	s.byName = make(map[string]int32)
	return s, nil
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

// Pools is the number of pools (pools with at least one PE).
func (s *Store) Pools() int { return len(s.byName) }

// PEs is the number of stored PEs.
func (s *Store) PEs() int { return s.pes }

func (s *Store) findPool(handle tlv.PoolHandle) (*pool, int32) {
	pi, ok := s.byName[string(handle)]
	if !ok {
		return nil, -1
	}
	return s.pools[pi], pi
}

func (s *Store) find(handle tlv.PoolHandle, id uint32) (*pool, int32) {
	p, _ := s.findPool(handle)
	if p == nil {
		return nil, -1
	}
	ri := p.ids.get(id)
	if ri < 0 {
		return nil, -1
	}
	return p, ri
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
		ri = p.ids.get(pe.ID)
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
		if r.home != pe.HomeServerID {
			s.ownerUnlink(ri, r, p)
			r.home = pe.HomeServerID
			s.ownerLink(ri, r, p)
		}
		s.fill(ri, r, pe)
		r.reports = 0
		r.flags &^= flagMarked
		r.updated = now.UnixNano()
		s.setExpiry(ri, r, expiry)
		if changed {
			p.sel.Update(r.slot, vals)
		}
		return false, nil
	}

	if p == nil {
		sel, err := newSelector(pe.Policy.Type, s.rnd)
		if err != nil {
			return false, &Error{Cause: tlv.CauseInvalidValues, Msg: err.Error()}
		}
		p, pi = s.newPool(string(handle), sel, pe)
	}
	ri = s.allocRec()
	r := s.rec(ri)
	r.id, r.home, r.pool = pe.ID, pe.HomeServerID, pi
	s.fill(ri, r, pe)
	r.updated = now.UnixNano()
	r.heap = -1
	// selector slot
	if n := len(p.freeSl); n > 0 {
		r.slot = p.freeSl[n-1]
		p.freeSl = p.freeSl[:n-1]
		p.slotPE[r.slot] = ri
	} else {
		r.slot = int32(len(p.slotPE))
		p.slotPE = append(p.slotPE, ri)
	}
	p.ids.put(pe.ID, ri)
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
	p.ids.init(s.seed)
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

// removeRec deletes record ri from every index. p is its pool.
func (s *Store) removeRec(p *pool, pi int32, ri int32, r *rec) {
	p.sel.Remove(r.slot)
	p.slotPE[r.slot] = -1
	p.freeSl = append(p.freeSl, r.slot)
	p.ids.del(r.id)
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
func (s *Store) Deregister(now time.Time, handle tlv.PoolHandle, id uint32) (tlv.PoolElement, bool) {
	p, ri := s.find(handle, id)
	if p == nil {
		return tlv.PoolElement{}, false
	}
	r := s.rec(ri)
	s.resetScratch(1)
	pe := s.materialize(ri, r, p.ptype)
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
	return pe, s.info(r), true
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

// Select runs the pool's policy (RFC 5356, via package policy) and appends
// up to n PEs in selection order to dst[:0], for a handle resolution
// (RFC 5352 §3.5). It also returns the pool's policy: the pool's type with
// the first selected PE's values (as RSPLIB does). The PEs and the policy
// value are read-only and valid until the next Store call. An unknown pool
// handle gives an error matching ErrUnknownPoolHandle.
func (s *Store) Select(handle tlv.PoolHandle, n int, dst []tlv.PoolElement) ([]tlv.PoolElement, tlv.Policy, error) {
	dst = dst[:0]
	p, _ := s.findPool(handle)
	if p == nil {
		return dst, tlv.Policy{}, ErrUnknownPoolHandle
	}
	if n <= 0 {
		return dst, tlv.Policy{Type: p.ptype}, nil
	}
	if n > p.ids.n {
		n = p.ids.n
	}
	s.scrSlots = p.sel.Select(n, s.scrSlots[:0])
	k := len(s.scrSlots)
	s.resetScratch(k)
	if cap(dst) < k {
		dst = make([]tlv.PoolElement, k)
	} else {
		dst = dst[:k]
	}
	// Map the slots to records and read every record's identifier first,
	// so that their cache misses overlap instead of following one another.
	for i, sl := range s.scrSlots {
		ri := p.slotPE[sl]
		s.scrSlots[i] = ri
		dst[i].ID = s.rec(ri).id
	}
	for i, ri := range s.scrSlots {
		s.materializeInto(&dst[i], ri, s.rec(ri), p.ptype)
	}
	pol := tlv.Policy{Type: p.ptype}
	if len(dst) > 0 {
		pol.Value = dst[0].Policy.Value
	}
	return dst, pol, nil
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
	if r.reports < ^uint32(0) {
		r.reports++
	}
	return int(r.reports), true
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

// SetOwner makes newHome the home registrar of one PE (takeover, RFC 5353
// §3.9). ok is false when there is no such PE.
func (s *Store) SetOwner(now time.Time, handle tlv.PoolHandle, id uint32, newHome uint32) bool {
	p, ri := s.find(handle, id)
	if p == nil {
		return false
	}
	r := s.rec(ri)
	if r.home != newHome {
		s.ownerUnlink(ri, r, p)
		r.home = newHome
		s.ownerLink(ri, r, p)
	}
	return true
}

// TransferOwner makes to the home of every PE owned by from (ENRP takeover,
// RFC 5353 §3.9) and returns how many PEs moved.
func (s *Store) TransferOwner(now time.Time, from, to uint32) int {
	o := s.owners[from]
	if o == nil || from == to {
		return 0
	}
	n := o.count
	dst := s.owners[to]
	if dst == nil {
		dst = &owner{head: -1}
		s.owners[to] = dst
	}
	last := int32(-1)
	for i := o.head; i >= 0; {
		r := s.rec(i)
		r.home = to
		last = i
		i = r.onext
	}
	// splice from's list in front of to's
	if last >= 0 {
		s.rec(last).onext = dst.head
		if dst.head >= 0 {
			s.rec(dst.head).oprev = last
		}
		dst.head = o.head
	}
	dst.count += o.count
	dst.sum += o.sum
	delete(s.owners, from)
	return n
}

// ForEachOwnedBy calls fn with every PE whose home registrar is home, until
// fn returns false (handle table response with W=1, takeover; RFC 5353
// §3.5, §3.9). fn must not change the Store.
func (s *Store) ForEachOwnedBy(home uint32, fn func(handle tlv.PoolHandle, pe tlv.PoolElement) bool) {
	o := s.owners[home]
	if o == nil {
		return
	}
	for i := o.head; i >= 0; {
		r := s.rec(i)
		next := r.onext
		p := s.pools[r.pool]
		s.resetScratch(1)
		if !fn(p.hb, s.materialize(i, r, p.ptype)) {
			return
		}
		i = next
	}
}

// Owned is the number of PEs whose home registrar is home.
func (s *Store) Owned(home uint32) int {
	if o := s.owners[home]; o != nil {
		return o.count
	}
	return 0
}

func (s *Store) ownerLink(ri int32, r *rec, p *pool) {
	o := s.owners[r.home]
	if o == nil {
		o = &owner{head: -1}
		s.owners[r.home] = o
	}
	r.oprev = -1
	r.onext = o.head
	if o.head >= 0 {
		s.rec(o.head).oprev = ri
	}
	o.head = ri
	o.count++
	o.sum += p.hsum + peIDSum(r.id)
}

func (s *Store) ownerUnlink(ri int32, r *rec, p *pool) {
	o := s.owners[r.home]
	if r.oprev >= 0 {
		s.rec(r.oprev).onext = r.onext
	} else {
		o.head = r.onext
	}
	if r.onext >= 0 {
		s.rec(r.onext).oprev = r.oprev
	}
	o.count--
	o.sum -= p.hsum + peIDSum(r.id)
	if o.count == 0 {
		delete(s.owners, r.home)
	}
}

// Checksum returns the PE checksum of RFC 5353 over the PEs whose home is
// home: the 16-bit one's complement of the one's complement sum, over every
// such PE, of its pool handle (zero padded to even length) followed by its
// PE identifier, as big-endian 16-bit words. It is kept incrementally, so
// the call is O(1). Write it big-endian into the PE Checksum parameter.
func (s *Store) Checksum(home uint32) uint16 {
	var sum uint64
	if o := s.owners[home]; o != nil {
		sum = o.sum
	}
	return finishChecksum(sum)
}

func finishChecksum(sum uint64) uint16 {
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

// wordSum adds b as big-endian 16-bit words, an odd last byte zero padded.
func wordSum(b []byte) uint64 {
	var sum uint64
	for len(b) >= 2 {
		sum += uint64(b[0])<<8 | uint64(b[1])
		b = b[2:]
	}
	if len(b) == 1 {
		sum += uint64(b[0]) << 8
	}
	return sum
}

func peIDSum(id uint32) uint64 { return uint64(id>>16) + uint64(id&0xffff) }

// Mark sets the audit mark on every PE owned by home and returns how many
// (RFC 5353 §3.10 audit: before synchronising with a peer). Register clears
// a PE's mark; Sweep then removes the PEs still marked.
func (s *Store) Mark(now time.Time, home uint32) int {
	o := s.owners[home]
	if o == nil {
		return 0
	}
	for i := o.head; i >= 0; {
		r := s.rec(i)
		r.flags |= flagMarked
		i = r.onext
	}
	return o.count
}

// Sweep removes every PE owned by home that is still marked, calling fn (if
// not nil) with each before it goes, and returns how many it removed. fn
// must not call the Store; pe is valid until fn returns.
func (s *Store) Sweep(now time.Time, home uint32, fn func(handle tlv.PoolHandle, pe tlv.PoolElement)) int {
	o := s.owners[home]
	if o == nil {
		return 0
	}
	n := 0
	for i := o.head; i >= 0; {
		r := s.rec(i)
		next := r.onext
		if r.flags&flagMarked != 0 {
			p := s.pools[r.pool]
			if fn != nil {
				s.resetScratch(1)
				fn(p.hb, s.materialize(i, r, p.ptype))
			}
			s.removeRec(p, r.pool, i, r)
			n++
		}
		i = next
	}
	return n
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
		if !fn(s.materialize(e.idx, r, p.ptype), s.info(r)) {
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
			if ownerFilter != 0 && r.home != ownerFilter {
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
