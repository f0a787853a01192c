package enrp

import (
	"context"
	"time"

	"github.com/go-rserpool/rserpool/handlespace"
	"github.com/go-rserpool/rserpool/policy"
	"github.com/go-rserpool/rserpool/tlv"
	"github.com/go-rserpool/rserpool/transport"
)

// PoolInfo describes one pool of the handlespace.
type PoolInfo struct {
	Handle    tlv.PoolHandle   // a copy
	Policy    policy.Type      // the pool's member selection policy (RFC 5356)
	Transport tlv.ParamType    // user transport protocol of its PEs
	Use       tlv.TransportUse // Transport Use of its PEs
	PEs       int
}

// PoolElementInfo describes one PE of the handlespace.
type PoolElementInfo struct {
	// PE is a deep copy of the stored Pool Element: identifier, home
	// registrar, registration life, user and ASAP transports, policy.
	PE tlv.PoolElement
	// LastUpdate is when it was last registered; Expiry when its
	// registration life ends.
	LastUpdate time.Time
	Expiry     time.Time
	// UnreachableReports counts ASAP_ENDPOINT_UNREACHABLE reports since
	// its last registration (RFC 5352 §3.5).
	UnreachableReports int
	// Owned tells whether this registrar is its home; Remote is then the
	// address of the association it registered over.
	Owned  bool
	Remote transport.Addr
}

// Pools returns the pools of the handlespace, in creation order. It runs
// on the registrar's loop and fails with ErrNotRunning or ErrClosed when
// there is none, or with ctx's error.
func (r *Registrar) Pools(ctx context.Context) ([]PoolInfo, error) {
	var out []PoolInfo
	err := r.do(ctx, func() {
		r.core.store.ForEachPool(func(p handlespace.PoolInfo) bool {
			out = append(out, PoolInfo{Handle: p.Handle, Policy: policy.Type(p.PolicyType), Transport: p.Transport, Use: p.Use, PEs: p.PEs})
			return true
		})
	})
	return out, err
}

// PoolElements returns the PEs of the pool named handle, in registration
// order; none when the pool does not exist.
func (r *Registrar) PoolElements(ctx context.Context, handle []byte) ([]PoolElementInfo, error) {
	var out []PoolElementInfo
	err := r.do(ctx, func() {
		r.core.store.ForEachPE(tlv.PoolHandle(handle), func(pe tlv.PoolElement, in handlespace.Info) bool {
			pi := PoolElementInfo{
				PE:                 handlespace.ClonePoolElement(pe),
				LastUpdate:         in.LastUpdate,
				Expiry:             in.Expiry,
				UnreachableReports: in.UnreachableReports,
			}
			if _, info, ok := r.core.AssocOf(tlv.PoolHandle(handle), pe.ID); ok {
				pi.Owned, pi.Remote = true, info.Remote
			}
			out = append(out, pi)
			return true
		})
	})
	return out, err
}

// Checksums returns, for every home registrar that owns a PE of the
// handlespace, the ownership checksum (RFC 5353 §3.7) of that home's PEs
// as this registrar's store holds them: what a Presence of that home
// must carry for the audit to find this registrar in sync with it.
func (r *Registrar) Checksums(ctx context.Context) (map[uint32]uint16, error) {
	out := map[uint32]uint16{}
	err := r.do(ctx, func() {
		r.core.store.ForEachPool(func(p handlespace.PoolInfo) bool {
			r.core.store.ForEachPE(p.Handle, func(pe tlv.PoolElement, _ handlespace.Info) bool {
				out[pe.HomeServerID] = 0
				return true
			})
			return true
		})
		for home := range out {
			out[home] = r.core.store.Checksum(home)
		}
	})
	return out, err
}
