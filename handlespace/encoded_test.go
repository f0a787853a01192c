package handlespace

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net/netip"
	"reflect"
	"testing"
	"time"

	"github.com/go-rserpool/rserpool/policy"
	"github.com/go-rserpool/rserpool/tlv"
)

// wantEncoding is what a resolution carries for pe: its Pool Element
// parameter with the ASAP transport cleared (RFC 5354 §3.10).
func wantEncoding(pe tlv.PoolElement) []byte {
	pe.ASAPTransport = tlv.Transport{}
	return pe.AppendTo(nil)
}

// TestSelectEncoded checks that the encoding the store keeps for each PE is
// byte for byte the encoding of the PE Select returns (ASAP transport left
// out), for PEs that fit a record and PEs that do not (IPv6, several
// addresses, long policy values, unknown parameters), and that it follows
// re-registration and changes of home (SetOwner, TransferOwner).
func TestSelectEncoded(t *testing.T) {
	s := newTestStore(t, Config{})
	v6 := netip.MustParseAddr("2001:db8::7")
	pes := []*tlv.PoolElement{testPE(1, 7), testPE(2, 7), testPE(3, 8), testPE(4, 7), testPE(5, 7)}
	pes[1].UserTransport.Addrs = []netip.Addr{v6}
	pes[2].UserTransport.Addrs = append(pes[2].UserTransport.Addrs, v6)
	pes[3].ASAPTransport = tlv.Transport{}
	pes[4].Unknown = []tlv.RawParam{{Type: 0x8123, Value: []byte{1, 2, 3, 4}, Index: 5}}
	for _, pe := range pes {
		mustRegister(t, s, "rr", pe, time.Time{})
	}
	lud := testPE(9, 7)
	lud.Policy = policy.Encode(policy.LeastUsedDegradationDPF, policy.Values{Load: 5, LoadDegradation: 6, LoadDPF: 7, Distance: 8})
	mustRegister(t, s, "lud", lud, time.Time{})

	check := func(stage string, handle string, k int) {
		t.Helper()
		got, pol, err := s.SelectEncoded(tlv.PoolHandle(handle), k, nil)
		if err != nil || len(got) != k {
			t.Fatalf("%s: SelectEncoded %d, %v", stage, len(got), err)
		}
		for i, enc := range got {
			id := binary.BigEndian.Uint32(enc[4:])
			pe, _, ok := s.Lookup(tlv.PoolHandle(handle), id)
			if !ok {
				t.Fatalf("%s: selected PE %d not stored", stage, id)
			}
			if w := wantEncoding(pe); !bytes.Equal(enc, w) {
				t.Errorf("%s: PE %d encoded\n %x, want\n %x", stage, id, enc, w)
			}
			if i == 0 && (pol.Type != pe.Policy.Type || !bytes.Equal(pol.Value, pe.Policy.Value)) {
				t.Errorf("%s: policy %x/%x, first PE's %x/%x", stage, pol.Type, pol.Value, pe.Policy.Type, pe.Policy.Value)
			}
		}
	}
	check("registered", "rr", len(pes))
	check("registered", "lud", 1)

	// Re-registration with other data, IPv4 <-> IPv6, fits <-> does not.
	pes[0].UserTransport.Addrs = []netip.Addr{v6}
	pes[0].RegistrationLife = 1234
	pes[1].UserTransport.Addrs = []netip.Addr{netip.MustParseAddr("10.9.8.7")}
	pes[1].UserTransport.Port = 4242
	for _, pe := range pes[:2] {
		mustRegister(t, s, "rr", pe, time.Time{})
	}
	check("re-registered", "rr", len(pes))

	s.SetOwner(t0, tlv.PoolHandle("rr"), 2, 99)
	s.TransferOwner(t0, 7, 55)
	check("new homes", "rr", len(pes))
	got, _, _ := s.SelectEncoded(tlv.PoolHandle("lud"), 1, nil)
	if home := uint32(got[0][8])<<24 | uint32(got[0][9])<<16 | uint32(got[0][10])<<8 | uint32(got[0][11]); home != 55 {
		t.Errorf("home in the encoding after TransferOwner: %d, want 55", home)
	}

	if _, _, err := s.SelectEncoded(tlv.PoolHandle("none"), 3, nil); err != ErrUnknownPoolHandle {
		t.Errorf("unknown pool: %v", err)
	}
}

// TestDeregisterCopy checks that the PE Deregister returns keeps its policy
// value after the record is gone and reused.
func TestDeregisterCopy(t *testing.T) {
	s := newTestStore(t, Config{})
	pe := testPE(1, 7)
	pe.Policy = policy.Encode(policy.LeastUsed, policy.Values{Load: 0x01020304})
	mustRegister(t, s, "lu", pe, time.Time{})
	got, ok := s.Deregister(t0, tlv.PoolHandle("lu"), 1)
	if !ok || !bytes.Equal(got.Policy.Value, []byte{1, 2, 3, 4}) {
		t.Fatalf("Deregister: %v %x", ok, got.Policy.Value)
	}
}

// TestView checks that View returns what Lookup returns.
func TestView(t *testing.T) {
	s := newTestStore(t, Config{})
	pe := testPE(3, 7)
	mustRegister(t, s, "p", pe, t0.Add(time.Minute))
	want, wi, _ := s.Lookup(tlv.PoolHandle("p"), 3)
	got, gi, ok := s.View(tlv.PoolHandle("p"), 3)
	if !ok || !reflect.DeepEqual(ClonePoolElement(got), want) || gi != wi {
		t.Fatalf("View %v %v %v, Lookup %v %v", ok, got, gi, want, wi)
	}
	if _, _, ok := s.View(tlv.PoolHandle("p"), 4); ok {
		t.Fatal("View of a missing PE")
	}
}

// TestEncodingMatchesTLV checks the encoding the store writes for each PE
// against package tlv's encoding of the registered PE (ASAP transport left
// out), over transports, address families and policy value lengths.
func TestEncodingMatchesTLV(t *testing.T) {
	s := newTestStore(t, Config{})
	addrs := []netip.Addr{netip.MustParseAddr("10.1.2.3"), netip.MustParseAddr("2001:db8::9"), netip.MustParseAddr("::ffff:10.1.2.3")}
	types := []tlv.ParamType{tlv.ParamSCTPTransport, tlv.ParamTCPTransport, tlv.ParamUDPTransport, tlv.ParamUDPLiteTransport, tlv.ParamDCCPTransport}
	pols := []tlv.Policy{
		policy.Encode(policy.RoundRobin, policy.Values{}),
		policy.Encode(policy.LeastUsed, policy.Values{Load: 77}),
		policy.Encode(policy.LeastUsedDegradation, policy.Values{Load: 1, LoadDegradation: 2}),
		policy.Encode(policy.LeastUsedDPF, policy.Values{Load: 1, LoadDPF: 2, Distance: 3}),
		policy.Encode(policy.LeastUsedDegradationDPF, policy.Values{Load: 1, LoadDegradation: 2, LoadDPF: 3, Distance: 4}),
	}
	id := uint32(0)
	for _, tt := range types {
		for _, a := range addrs {
			for _, pol := range pols {
				id++
				pe := &tlv.PoolElement{ID: id, HomeServerID: 0x01020304 + id, RegistrationLife: int32(1000 * id),
					UserTransport: tlv.Transport{Type: tt, Port: uint16(id), Addrs: []netip.Addr{a}},
					Policy:        pol}
				if tt == tlv.ParamSCTPTransport || tt == tlv.ParamTCPTransport {
					pe.UserTransport.Use = tlv.TransportUseDataOnly
				}
				// The ASAP transport: none, the user transport's address,
				// another IPv4 or another IPv6 address (with a Use beyond 1;
				// kept in the record
				// beside the encoding, or in the ext data when they do not
				// fit).
				switch id % 4 {
				case 1:
					pe.ASAPTransport = tlv.NewSCTPTransport(99, tlv.TransportUseDataOnly, a)
				case 2:
					pe.ASAPTransport = tlv.NewSCTPTransport(98, tlv.TransportUseDataPlusControl, netip.MustParseAddr("192.0.2.1"))
				case 3:
					pe.ASAPTransport = tlv.NewTCPTransport(97, tlv.TransportUse(7), netip.MustParseAddr("2001:db8::1"))
				}
				h := tlv.PoolHandle(fmt.Sprintf("%v/%x", tt, pol.Type))
				mustRegister(t, s, string(h), pe, time.Time{})
				p, ri := s.find(h, id)
				if p == nil {
					t.Fatalf("PE %d not stored", id)
				}
				if got, want := s.encoded(ri, s.rec(ri)), wantEncoding(*pe); !bytes.Equal(got, want) {
					t.Errorf("%v %v %x: encoded\n %x, want\n %x", tt, a, pol.Type, got, want)
				}
				if got, _, _ := s.Lookup(h, id); !reflect.DeepEqual(got.ASAPTransport, ClonePoolElement(*pe).ASAPTransport) {
					t.Errorf("%v %v %x: ASAP transport %+v, registered %+v", tt, a, pol.Type, got.ASAPTransport, pe.ASAPTransport)
				}
			}
		}
	}
}
