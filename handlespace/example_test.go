package handlespace_test

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/go-rserpool/rserpool/handlespace"
	"github.com/go-rserpool/rserpool/policy"
	"github.com/go-rserpool/rserpool/tlv"
)

// A registrar's store: register three PEs in a round-robin pool (RFC 5352
// §3.2), select for handle resolutions (§3.5), and see a registration with
// another policy refused with the RFC 5354 cause to answer with. Every
// mutator takes the caller's now; the Store reads no clock.
func Example() {
	s, err := handlespace.New(handlespace.Config{}) // zero Config: the defaults
	if err != nil {
		fmt.Println(err)
		return
	}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	const life = 30 * time.Second // the PEs' Registration Life
	pool := tlv.PoolHandle("web")
	for id := uint32(1); id <= 3; id++ {
		pe := tlv.PoolElement{
			ID:               id,
			HomeServerID:     0x1234, // this registrar
			RegistrationLife: int32(life / time.Millisecond),
			UserTransport:    tlv.NewSCTPTransport(8000, tlv.TransportUseDataOnly, netip.AddrFrom4([4]byte{192, 0, 2, byte(id)})),
			Policy:           policy.Encode(policy.RoundRobin, policy.Values{}),
		}
		created, err := s.Register(now, pool, &pe, now.Add(life))
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Printf("registered %v (new PE: %v)\n", tlv.PEIdentifier(id), created)
	}

	// Three resolutions of one PE each: round robin moves by one per
	// resolution.
	var buf []tlv.PoolElement
	for range 3 {
		pes, pol, err := s.Select(pool, 1, buf)
		if err != nil {
			fmt.Println(err)
			return
		}
		t, _, _ := policy.Decode(pol)
		fmt.Printf("%v: %v at %v\n", t, tlv.PEIdentifier(pes[0].ID), pes[0].UserTransport)
		buf = pes
	}

	// A PE that asks for another policy in the same pool is refused, and
	// the store is unchanged.
	other := tlv.PoolElement{
		ID:               4,
		HomeServerID:     0x1234,
		RegistrationLife: int32(life / time.Millisecond),
		UserTransport:    tlv.NewSCTPTransport(8000, tlv.TransportUseDataOnly, netip.AddrFrom4([4]byte{192, 0, 2, 4})),
		Policy:           policy.Encode(policy.LeastUsed, policy.Values{}),
	}
	_, err = s.Register(now, pool, &other, now.Add(life))
	var herr *handlespace.Error
	if errors.As(err, &herr) {
		fmt.Println("refused:", herr.Cause)
	}
	pes, _, _ := s.Select(pool, 10, buf)
	fmt.Println("PEs in pool:", len(pes))
	// Output:
	// registered 0x00000001 (new PE: true)
	// registered 0x00000002 (new PE: true)
	// registered 0x00000003 (new PE: true)
	// RoundRobin: 0x00000001 at sctp 192.0.2.1:8000
	// RoundRobin: 0x00000002 at sctp 192.0.2.2:8000
	// RoundRobin: 0x00000003 at sctp 192.0.2.3:8000
	// refused: Inconsistent Pooling Policy
	// PEs in pool: 3
}
