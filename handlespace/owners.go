package handlespace

// Owners: the PEs of each home registrar, their RFC 5353 checksum, and the
// audit mark and sweep.

import (
	"time"

	"github.com/go-rserpool/rserpool/tlv"
)

type owner struct {
	head  int32 // first PE, -1 if none
	count int
	sum   uint64 // sum of the per-PE 16-bit word sums (RFC 5353 checksum)
	check uint16 // finishChecksum(sum) when checkOK
	// checkOK: check is up to date. Registrations only clear it; Checksum
	// computes check once after a change, not once per registration.
	checkOK bool
}

// SetOwner makes newHome the home registrar of one PE (takeover, RFC 5353
// §3.9). ok is false when there is no such PE.
func (s *Store) SetOwner(now time.Time, handle tlv.PoolHandle, id uint32, newHome uint32) bool {
	p, ri := s.find(handle, id)
	if p == nil {
		return false
	}
	r := s.rec(ri)
	if r.home() != newHome {
		s.ownerUnlink(ri, r, p)
		s.setHome(ri, r, newHome)
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
		s.setHome(i, r, to)
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
	dst.setSum(dst.sum + o.sum)
	s.dropOwner(from)
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

// ownerOf returns the owner of home, nil if none. A registrar's PEs mostly
// have one home, its own: the last one found is checked before the map.
func (s *Store) ownerOf(home uint32) *owner {
	if o := s.lastOwner; o != nil && s.lastHome == home {
		return o
	}
	o := s.owners[home]
	if o != nil {
		s.lastOwner, s.lastHome = o, home
	}
	return o
}

func (s *Store) ownerLink(ri int32, r *rec, p *pool) {
	o := s.ownerOf(r.home())
	if o == nil {
		o = &owner{head: -1}
		s.owners[r.home()] = o
	}
	r.oprev = -1
	r.onext = o.head
	if o.head >= 0 {
		s.rec(o.head).oprev = ri
	}
	o.head = ri
	o.count++
	o.setSum(o.sum + p.hsum + peIDSum(r.id()))
}

func (s *Store) ownerUnlink(ri int32, r *rec, p *pool) {
	o := s.ownerOf(r.home())
	if r.oprev >= 0 {
		s.rec(r.oprev).onext = r.onext
	} else {
		o.head = r.onext
	}
	if r.onext >= 0 {
		s.rec(r.onext).oprev = r.oprev
	}
	o.count--
	o.setSum(o.sum - (p.hsum + peIDSum(r.id())))
	if o.count == 0 {
		s.dropOwner(r.home())
	}
}

// Checksum returns the PE checksum of RFC 5353 over the PEs whose home is
// home: the 16-bit one's complement of the one's complement sum, over every
// such PE, of its pool handle (zero padded to even length) followed by its
// PE identifier, as big-endian 16-bit words. It is kept incrementally, so
// the call is O(1). Write it big-endian into the PE Checksum parameter.
func (s *Store) Checksum(home uint32) uint16 {
	o := s.lastOwner
	if o == nil || s.lastHome != home {
		if o = s.owners[home]; o == nil {
			return 0xffff
		}
		s.lastOwner, s.lastHome = o, home
	}
	if !o.checkOK {
		o.check, o.checkOK = finishChecksum(o.sum), true
	}
	return o.check
}

func finishChecksum(sum uint64) uint16 {
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

// setSum sets the owner's sum; Checksum finishes it when asked.
func (o *owner) setSum(sum uint64) {
	o.sum = sum
	o.checkOK = false
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

func (s *Store) dropOwner(home uint32) {
	delete(s.owners, home)
	if s.lastHome == home {
		s.lastOwner = nil
	}
}
