package tlv

import (
	"bytes"
	"net/netip"
	"testing"
)

// TestEncodedResolutionResponse checks that a response written from
// encoded PEs is byte for byte the one written from the PEs.
func TestEncodedResolutionResponse(t *testing.T) {
	pes := []PoolElement{
		{ID: 1, HomeServerID: 2, RegistrationLife: 3, UserTransport: NewSCTPTransport(7, TransportUseDataOnly, netip.MustParseAddr("10.0.0.1")),
			Policy: Policy{Type: 0x40000001, Value: []byte{0, 0, 0, 9}}},
		{ID: 4, HomeServerID: 2, RegistrationLife: 3, UserTransport: NewSCTPTransport(8, TransportUseDataOnly, netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("10.0.0.2")),
			Policy: Policy{Type: 0x40000001, Value: []byte{0, 0, 0, 1}}},
	}
	pol := &Policy{Type: 0x40000001, Value: []byte{0, 0, 0, 9}}
	for _, p := range []*Policy{pol, nil} {
		want, err := Marshal(&HandleResolutionResponse{PoolHandle: PoolHandle("abc"), Policy: p, PEs: pes})
		if err != nil {
			t.Fatal(err)
		}
		m := &EncodedResolutionResponse{PoolHandle: PoolHandle("abc"), Policy: p}
		for i := range pes {
			m.PEs = append(m.PEs, pes[i].AppendTo(nil))
		}
		got, err := Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) || m.Len() != len(want) {
			t.Fatalf("policy %v:\n got %x (Len %d)\nwant %x", p != nil, got, m.Len(), want)
		}
	}
}
