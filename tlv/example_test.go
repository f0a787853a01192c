package tlv_test

import (
	"encoding/json"
	"fmt"
	"net/netip"

	"github.com/go-rserpool/rserpool/policy"
	"github.com/go-rserpool/rserpool/tlv"
)

// Build an ASAP_REGISTRATION (RFC 5352 §2.2.1), append it to a buffer,
// parse it back as a registrar would, and answer it.
func Example() {
	reg := &tlv.Registration{
		PoolHandle: tlv.PoolHandle("echo"),
		PE: tlv.PoolElement{
			ID:               0x2a,
			RegistrationLife: 30000, // milliseconds
			UserTransport:    tlv.NewSCTPTransport(7000, tlv.TransportUseDataOnly, netip.MustParseAddr("192.0.2.10")),
			Policy:           policy.Encode(policy.LeastUsed, policy.Values{Load: policy.FromFraction(0.25)}),
		},
	}
	buf := make([]byte, 0, 256)
	buf = reg.AppendTo(buf) // no allocation: buf has room for reg.Len() bytes
	fmt.Printf("%d bytes, type 0x%02x\n", len(buf), buf[0])

	m, err := tlv.ParseASAP(buf)
	if err != nil {
		fmt.Println(err)
		return
	}
	switch m := m.(type) {
	case *tlv.Registration:
		fmt.Printf("%v of PE %v to pool %q\n", m.ASAPType(), tlv.PEIdentifier(m.PE.ID), m.PoolHandle)
		fmt.Println("user transport:", m.PE.UserTransport)
		p, _ := json.Marshal(m.PE.Policy)
		fmt.Println("policy:", string(p))

		// The answer goes out on the same buffer (parsed slices alias
		// it, so copy what you keep first).
		resp := &tlv.RegistrationResponse{PoolHandle: append(tlv.PoolHandle(nil), m.PoolHandle...), PEID: m.PE.ID}
		buf = resp.AppendTo(buf[:0])
		fmt.Printf("%v: %d bytes\n", resp.ASAPType(), len(buf))
	}
	// Output:
	// 56 bytes, type 0x01
	// ASAP_REGISTRATION of PE 0x0000002a to pool "echo"
	// user transport: sctp 192.0.2.10:7000
	// policy: {"Type":"LeastUsed","Load":0.25}
	// ASAP_REGISTRATION_RESPONSE: 20 bytes
}

// Values print and marshal the way people read them: handles as text (hex
// when not printable), identifiers in hex, enumerations by name.
func ExamplePoolHandle_String() {
	fmt.Println(tlv.PoolHandle("echo"), tlv.PoolHandle{0, 1, 0xff})
	fmt.Println(tlv.PEIdentifier(42), tlv.FormatID(0xbeef))
	b, _ := json.Marshal(struct {
		Pool tlv.PoolHandle
		PE   tlv.PEIdentifier
		Use  tlv.TransportUse
	}{tlv.PoolHandle("echo"), 42, tlv.TransportUseDataOnly})
	fmt.Println(string(b))
	// Output:
	// echo 0x0001ff
	// 0x0000002a 0x0000beef
	// {"Pool":"echo","PE":"0x0000002a","Use":"data only"}
}
