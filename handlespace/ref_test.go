package handlespace

import (
	"net/netip"
	"reflect"
	"slices"
	"sort"
	"time"

	"github.com/go-rserpool/rserpool/policy"
	"github.com/go-rserpool/rserpool/tlv"
)

// refStore is the plain, obviously correct model the Store is checked
// against: maps and slices, linear scans, checksums recomputed from scratch.
type refStore struct {
	cfg   Config
	pools map[string]*refPool
	order []string // pool handles in creation order
}

type refPool struct {
	ptype uint32
	utype tlv.ParamType
	uuse  tlv.TransportUse
	pes   []*refPE // registration order
	gseq  uint64   // RSPLIB GlobalSeqNumber, for the deterministic policies
}

type refPE struct {
	pe      tlv.PoolElement
	expiry  time.Time
	updated time.Time
	reports int
	marked  bool
	seq     uint64 // RSPLIB SeqNumber
}

func newRef(cfg Config) *refStore {
	return &refStore{cfg: cfg, pools: map[string]*refPool{}}
}

func (r *refStore) numPEs() int {
	n := 0
	for _, p := range r.pools {
		n += len(p.pes)
	}
	return n
}

func (p *refPool) find(id uint32) int {
	for i, e := range p.pes {
		if e.pe.ID == id {
			return i
		}
	}
	return -1
}

func (r *refStore) register(h string, pe *tlv.PoolElement, expiry, now time.Time) (bool, tlv.CauseCode, bool) {
	if len(h) == 0 || len(h) > r.cfg.MaxPoolHandleSize {
		return false, tlv.CauseInvalidValues, false
	}
	ut := pe.UserTransport
	if ut.Type < tlv.ParamDCCPTransport || ut.Type > tlv.ParamUDPLiteTransport || len(ut.Addrs) == 0 {
		return false, tlv.CauseInvalidValues, false
	}
	if at := pe.ASAPTransport.Type; at != 0 && (at < tlv.ParamDCCPTransport || at > tlv.ParamUDPLiteTransport) {
		return false, tlv.CauseInvalidValues, false
	}
	if _, _, err := policy.Decode(pe.Policy); err != nil {
		return false, tlv.CauseInvalidValues, false
	}
	use := tlv.TransportUse(0)
	if ut.Type == tlv.ParamSCTPTransport || ut.Type == tlv.ParamTCPTransport {
		use = ut.Use
	}
	p := r.pools[h]
	idx := -1
	if p != nil {
		switch {
		case pe.Policy.Type != p.ptype:
			return false, tlv.CauseInconsistentPoolingPolicy, false
		case ut.Type != p.utype:
			return false, tlv.CauseInconsistentTransportType, false
		case use != p.uuse:
			return false, tlv.CauseInconsistentDataControlConfig, false
		}
		idx = p.find(pe.ID)
		if idx < 0 && len(p.pes) >= r.cfg.MaxPEsPerPool {
			return false, tlv.CauseLackOfResources, false
		}
	} else if len(r.pools) >= r.cfg.MaxPools {
		return false, tlv.CauseLackOfResources, false
	}
	if idx < 0 && r.numPEs() >= r.cfg.MaxPEs {
		return false, tlv.CauseLackOfResources, false
	}
	if idx >= 0 {
		e := p.pes[idx]
		if !slices.Equal(e.pe.Policy.Value, pe.Policy.Value) {
			e.seq = p.gseq
			p.gseq++
		}
		e.pe = ClonePoolElement(*pe)
		e.expiry, e.updated, e.reports, e.marked = expiry, now, 0, false
		return false, 0, true
	}
	if p == nil {
		p = &refPool{ptype: pe.Policy.Type, utype: ut.Type, uuse: use}
		r.pools[h] = p
		r.order = append(r.order, h)
	}
	p.pes = append(p.pes, &refPE{pe: ClonePoolElement(*pe), expiry: expiry, updated: now, seq: p.gseq})
	p.gseq++
	return true, 0, true
}

func (r *refStore) remove(h string, id uint32) (tlv.PoolElement, bool) {
	p := r.pools[h]
	if p == nil {
		return tlv.PoolElement{}, false
	}
	i := p.find(id)
	if i < 0 {
		return tlv.PoolElement{}, false
	}
	pe := p.pes[i].pe
	p.pes = slices.Delete(p.pes, i, i+1)
	if len(p.pes) == 0 {
		delete(r.pools, h)
		r.order = slices.DeleteFunc(r.order, func(s string) bool { return s == h })
	}
	return pe, true
}

func (r *refStore) get(h string, id uint32) *refPE {
	p := r.pools[h]
	if p == nil {
		return nil
	}
	if i := p.find(id); i >= 0 {
		return p.pes[i]
	}
	return nil
}

// checksum recomputes the RFC 5353 PE checksum of owner home by scanning.
func (r *refStore) checksum(home uint32) uint16 {
	var sum uint32 // fold as we go: a textbook RFC 1071 sum
	add := func(w uint32) {
		sum += w
		sum = sum&0xffff + sum>>16
	}
	for h, p := range r.pools {
		for _, e := range p.pes {
			if e.pe.HomeServerID != home {
				continue
			}
			b := append([]byte(h), 0)[:len(h)+len(h)%2]
			b = append(b, byte(e.pe.ID>>24), byte(e.pe.ID>>16), byte(e.pe.ID>>8), byte(e.pe.ID))
			if len(h)%2 == 1 { // the pad byte must be zero
				b[len(h)] = 0
			}
			for i := 0; i < len(b); i += 2 {
				add(uint32(b[i])<<8 | uint32(b[i+1]))
			}
		}
	}
	return ^uint16(sum)
}

type refItem struct {
	handle string
	pe     tlv.PoolElement
}

// all lists every PE (owner filter 0 = all) in Page order.
func (r *refStore) all(owner uint32) []refItem {
	var out []refItem
	for _, h := range r.order {
		for _, e := range r.pools[h].pes {
			if owner == 0 || e.pe.HomeServerID == owner {
				out = append(out, refItem{h, e.pe})
			}
		}
	}
	return out
}

func (r *refStore) nextExpiry() (time.Time, bool) {
	var best time.Time
	for _, p := range r.pools {
		for _, e := range p.pes {
			if !e.expiry.IsZero() && (best.IsZero() || e.expiry.Before(best)) {
				best = e.expiry
			}
		}
	}
	return best, !best.IsZero()
}

// popExpired removes expired PEs and returns them sorted by (expiry, handle, id).
func (r *refStore) popExpired(now time.Time) []refItem {
	type x struct {
		it  refItem
		exp time.Time
	}
	var xs []x
	for h, p := range r.pools {
		for _, e := range p.pes {
			if !e.expiry.IsZero() && !e.expiry.After(now) {
				xs = append(xs, x{refItem{h, e.pe}, e.expiry})
			}
		}
	}
	for _, e := range xs {
		r.remove(e.it.handle, e.it.pe.ID)
	}
	sort.Slice(xs, func(i, j int) bool {
		if !xs[i].exp.Equal(xs[j].exp) {
			return xs[i].exp.Before(xs[j].exp)
		}
		if xs[i].it.handle != xs[j].it.handle {
			return xs[i].it.handle < xs[j].it.handle
		}
		return xs[i].it.pe.ID < xs[j].it.pe.ID
	})
	out := make([]refItem, len(xs))
	for i := range xs {
		out[i] = xs[i].it
	}
	return out
}

// selectDet is RSPLIB's sorted selection for Round Robin and
// Least Used: order by (key, seq), take n, the first gets a new seq.
func (r *refStore) selectDet(h string, n int) []tlv.PoolElement {
	p := r.pools[h]
	if p == nil {
		return nil
	}
	es := slices.Clone(p.pes)
	key := func(e *refPE) uint64 {
		if policy.Type(p.ptype) == policy.LeastUsed {
			_, v, _ := policy.Decode(e.pe.Policy)
			return uint64(v.Load)
		}
		return 0
	}
	sort.Slice(es, func(i, j int) bool {
		ki, kj := key(es[i]), key(es[j])
		if ki != kj {
			return ki < kj
		}
		return es[i].seq < es[j].seq
	})
	n = min(n, len(es))
	out := make([]tlv.PoolElement, n)
	for i := range n {
		out[i] = es[i].pe
	}
	if n > 0 {
		es[0].seq = p.gseq
		p.gseq++
	}
	return out
}

// normPE makes empty slices nil so that DeepEqual compares content.
func normPE(pe tlv.PoolElement) tlv.PoolElement {
	pe = ClonePoolElement(pe)
	if len(pe.UserTransport.Addrs) == 0 {
		pe.UserTransport.Addrs = nil
	}
	if len(pe.ASAPTransport.Addrs) == 0 {
		pe.ASAPTransport.Addrs = nil
	}
	if len(pe.Policy.Value) == 0 {
		pe.Policy.Value = nil
	}
	if len(pe.Unknown) == 0 {
		pe.Unknown = nil
	}
	for i := range pe.Unknown {
		if len(pe.Unknown[i].Value) == 0 {
			pe.Unknown[i].Value = nil
		}
	}
	return pe
}

func samePE(a, b tlv.PoolElement) bool { return reflect.DeepEqual(normPE(a), normPE(b)) }

var _ = netip.Addr{}
