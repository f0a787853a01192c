package enrp

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/go-rserpool/rserpool/handlespace"
	"github.com/go-rserpool/rserpool/policy"
	"github.com/go-rserpool/rserpool/tlv"
)

// reencodedResolution is the handle resolution of RFC 5352 §3.5 as the
// registrar answered it before it copied the stored encodings: Select,
// each PE encoded again with its ASAP transport cleared (RFC 5354 §3.10),
// PEs that do not fit 65,535 bytes left out in selection order. It returns
// the response's bytes and the number of PEs left out.
func reencodedResolution(t *testing.T, c *Core, m *tlv.HandleResolution) ([]byte, int) {
	t.Helper()
	n := c.cfg.ResolutionItems
	if m.HasItems && m.Items != 0 {
		n = c.cfg.MaxResolutionItems
		if uint64(m.Items) < uint64(n) {
			n = int(m.Items)
		}
	}
	resp := &tlv.HandleResolutionResponse{PoolHandle: m.PoolHandle}
	pes, pol, err := c.store.Select(m.PoolHandle, n, nil)
	left := 0
	if err != nil || len(pes) == 0 {
		resp.Error = tlv.NewOperationError(tlv.CauseUnknownPoolHandle, nil)
	} else {
		resp.Policy = &tlv.Policy{Type: pol.Type, Value: bytes.Clone(pol.Value)}
		room := tlv.MaxMessageLen - tlv.HeaderLen - resp.PoolHandle.Len() - resp.Policy.Len()
		for _, pe := range pes {
			pe = handlespace.ClonePoolElement(pe)
			pe.ASAPTransport = tlv.Transport{}
			if pe.Len() > room {
				left++
				continue
			}
			room -= pe.Len()
			resp.PEs = append(resp.PEs, pe)
		}
		if len(resp.PEs) == 0 {
			resp.Policy = nil
			resp.Error = tlv.NewOperationError(tlv.CauseLackOfResources, nil)
		}
	}
	b, err := tlv.Marshal(resp)
	if err != nil {
		t.Fatal(err)
	}
	return b, left
}

// resolutionPE is PE id of the golden test's pools: policy values drawn
// from id, IPv4 or IPv6 user addresses (extra of them beyond the first),
// an ASAP transport from the association.
func resolutionPE(pt policy.Type, id uint32, v6 bool, extra int) tlv.PoolElement {
	addrs := []netip.Addr{netip.AddrFrom4([4]byte{10, 1, byte(id >> 8), byte(id)})}
	if v6 {
		addrs[0] = netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 14: byte(id >> 8), 15: byte(id)})
	}
	addrs = append(addrs, ipv6s(extra)...)
	h := id * 2654435761
	v := policy.Values{Weight: 1 + h%7, Priority: h % 3, Load: (h % 5) * (policy.MaxLoad / 4),
		LoadDegradation: policy.MaxLoad / 20, LoadDPF: policy.MaxLoad / 1000, WeightDPF: policy.MaxLoad / 1000, Distance: h % 50}
	return tlv.PoolElement{
		ID: id, RegistrationLife: 60000,
		UserTransport: tlv.NewSCTPTransport(uint16(7000+id), tlv.TransportUseDataOnly, addrs...),
		Policy:        policy.Encode(pt, v),
	}
}

// RFC 5352 §2.2.6: the Handle Resolution Response the core assembles from
// the stored encodings is byte for byte the one it would send by encoding
// every selected PE again, and leaves out the same PEs: for every policy,
// pools of 1, 3 and 40 PEs (IPv4 PEs that fit a store record, IPv6 PEs and
// PEs with several addresses that do not), without and with the Handle
// Resolution Option (RFC 5352 §2.2.5, among them "as many as possible"),
// for pools whose PEs do not all fit 65,535 bytes (PEsLeftOut), and for an
// unknown pool.
func TestResolutionFromStoredEncodings(t *testing.T) {
	requests := []*tlv.HandleResolution{
		{},
		{HasItems: true, Items: 1},
		{HasItems: true, Items: 2},
		{HasItems: true, Items: 17},
		{HasItems: true, Items: 0},
		{HasItems: true, Items: tlv.HROPTAsManyAsPossible},
	}
	type pool struct {
		name string
		pt   policy.Type
		pes  []tlv.PoolElement
	}
	var pools []pool
	for _, pt := range policy.Types() {
		for _, size := range []int{1, 3, 40} {
			p := pool{name: fmt.Sprintf("%x-%d", uint32(pt), size), pt: pt}
			for i := range size {
				id := uint32(100*size + i + 1)
				p.pes = append(p.pes, resolutionPE(pt, id, i%3 == 1, 2*(i%5/4)))
			}
			pools = append(pools, p)
		}
	}
	// Large PEs (500 IPv6 addresses, about 8 kB each) and small ones
	// mixed: a response for all of them must leave some out, and the
	// small ones after a left-out large one still fit.
	big := pool{name: "big", pt: policy.RoundRobin}
	for i := range 12 {
		extra := 500
		if i%4 == 3 {
			extra = 0
		}
		big.pes = append(big.pes, resolutionPE(policy.RoundRobin, uint32(i+1), false, extra))
	}
	pools = append(pools, big)

	twin := func() *srvFixture {
		f := newSrv(t, func(c *ASAPConfig) {
			c.AddressCheck = AddressCheckOff
			c.MaxPEsPerAssoc, c.MaxPEsPerSource = Unlimited, Unlimited
			c.MaxPoolsPerAssoc, c.MaxPoolsPerSource = Unlimited, Unlimited
			c.MaxHRRate, c.MaxPESize = Unlimited, Unlimited
		}, handlespace.Config{Rand: rand.NewPCG(14, 5352)})
		f.accept(1, "10.0.0.2")
		f.accept(9, "10.0.0.9")
		for _, p := range pools {
			for _, pe := range p.pes {
				f.register(1, p.name, pe)
			}
		}
		return f
	}
	got, want := twin(), twin()

	resolve := func(p string, req *tlv.HandleResolution) {
		t.Helper()
		m := *req
		m.PoolHandle = tlv.PoolHandle(p)
		wb, wleft := reencodedResolution(t, want.c, &m)
		before := got.c.Stats().PEsLeftOut
		b, err := tlv.Marshal(&m)
		if err != nil {
			t.Fatal(err)
		}
		got.c.HandleASAP(got.now, 9, b)
		sent := srvOnly[SendASAP](got.c.Outbox())
		if len(sent) != 1 {
			t.Fatalf("%s %+v: %d messages sent", p, req, len(sent))
		}
		gb, err := tlv.Marshal(sent[0].Msg)
		if err != nil {
			t.Fatalf("%s %+v: %v", p, req, err)
		}
		if !bytes.Equal(gb, wb) {
			t.Fatalf("%s %+v: response\n %x\nwant\n %x", p, req, gb, wb)
		}
		if left := got.c.Stats().PEsLeftOut - before; left != uint64(wleft) {
			t.Errorf("%s %+v: %d PEs left out, want %d", p, req, left, wleft)
		}
	}
	for _, p := range pools {
		for _, req := range requests {
			// Twice, so that the policies' per-selection state moves.
			resolve(p.name, req)
			resolve(p.name, req)
		}
	}
	resolve("no-such-pool", requests[0])

	// The big pool's test shortens: check that it did.
	m := &tlv.HandleResolution{PoolHandle: tlv.PoolHandle("big"), HasItems: true, Items: tlv.HROPTAsManyAsPossible}
	wb, left := reencodedResolution(t, want.c, m)
	r, err := tlv.ParseASAP(wb)
	if err != nil {
		t.Fatal(err)
	}
	if hr := r.(*tlv.HandleResolutionResponse); left == 0 || len(hr.PEs) <= 8 || hr.Error != nil {
		t.Fatalf("big pool: %d PEs sent, %d left out; the test needs both", len(hr.PEs), left)
	}
	if got.c.Stats().PEsLeftOut == 0 {
		t.Fatal("no PE left out")
	}
}
