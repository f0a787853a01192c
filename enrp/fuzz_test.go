package enrp

import (
	"encoding/binary"
	"net/netip"
	"testing"
	"time"

	"github.com/go-rserpool/rserpool/asap"
	"github.com/go-rserpool/rserpool/handlespace"
	"github.com/go-rserpool/rserpool/policy"
	"github.com/go-rserpool/rserpool/tlv"
	"github.com/go-rserpool/rserpool/transport"
)

// frame encodes one fuzz step: op, then a 16-bit length and the bytes.
func frame(op byte, b []byte) []byte {
	f := []byte{op, byte(len(b) >> 8), byte(len(b))}
	return append(f, b...)
}

func fuzzSeedMessages() [][]byte {
	mk := func(m tlv.ASAPMessage) []byte {
		b, err := tlv.Marshal(m)
		if err != nil {
			panic(err)
		}
		return b
	}
	pe := tlv.PoolElement{
		ID: 7, RegistrationLife: 1000,
		UserTransport: tlv.NewSCTPTransport(7000, tlv.TransportUseDataOnly, netip.MustParseAddr("10.0.0.2")),
		Policy:        policy.Encode(policy.LeastUsed, policy.Values{Load: 9}),
	}
	h := tlv.PoolHandle("pool")
	big := pe // a PE with 60 KiB of unknown skip parameters (issue 9 finding 5)
	big.ID = 8
	big.Unknown = []tlv.RawParam{{Type: 0x8abc, Value: make([]byte, 60000), Index: 3}}
	return [][]byte{
		mk(&tlv.Registration{PoolHandle: h, PE: big}),
		mk(&tlv.Registration{PoolHandle: h, PE: pe}),
		mk(&tlv.Deregistration{PoolHandle: h, PEID: 7}),
		mk(&tlv.HandleResolution{PoolHandle: h, HasItems: true, Items: 5}),
		mk(&tlv.EndpointKeepAliveAck{PoolHandle: h, PEID: 7}),
		mk(&tlv.EndpointUnreachable{PoolHandle: h, PEID: 7}),
		mk(&tlv.Registration{PoolHandle: h, PE: pe, Unknown: []tlv.RawParam{{Type: 0xc123, Value: []byte{1}, Index: 1}}}),
		{0x0f, 0, 0, 4},
	}
}

// FuzzRegistrarASAP feeds random bytes to the registrar core's ASAP
// handler, from two associations, with timeouts and association losses in
// between. Nothing may panic, every message sent must encode, and the
// handlespace must stay consistent with the core's bookkeeping.
func FuzzRegistrarASAP(f *testing.F) {
	seeds := fuzzSeedMessages()
	for _, m := range seeds {
		f.Add(frame(0, m))
	}
	var all []byte
	for i, m := range seeds {
		all = append(all, frame(byte(i%2), m)...)
		all = append(all, frame(2, []byte{3})...)
	}
	all = append(all, frame(3, nil)...)
	f.Add(all)

	f.Fuzz(func(t *testing.T, data []byte) {
		const id = 0xabcd
		s, err := newServer(id, asap.ServerConfig{MaxPEsPerAssoc: 8, AssocRate: asap.Unlimited}, handlespace.Config{MaxPEs: 64}, logger(nil))
		if err != nil {
			t.Fatal(err)
		}
		now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
		for i, ip := range []string{"10.0.0.2", "10.0.0.3"} {
			s.asapAccepted(now, asap.AssocID(i+1), asap.AssocInfo{Remote: transport.Addr{Kind: transport.KindMem, AddrPort: netip.MustParseAddrPort(ip + ":1")}})
		}
		for len(data) >= 3 {
			op := data[0]
			n := int(binary.BigEndian.Uint16(data[1:]))
			data = data[3:]
			n = min(n, len(data))
			b := data[:n]
			data = data[n:]
			switch op % 4 {
			case 0, 1:
				s.asapData(now, asap.AssocID(op%4+1), b)
			case 2:
				step := 100 * time.Millisecond
				if len(b) > 0 {
					step *= time.Duration(b[0])
				}
				now = now.Add(step)
				s.timeout(now)
			case 3:
				s.asapLost(now, 1)
				s.asapAccepted(now, 1, asap.AssocInfo{})
			}
			checkOutputs(t, s.outbox())
			checkStore(t, s, id)
		}
	})
}

func checkOutputs(t *testing.T, outs []asap.Output) {
	for _, o := range outs {
		if snd, ok := o.(asap.Send); ok {
			b, err := tlv.Marshal(snd.Msg)
			if err != nil {
				t.Fatalf("unencodable %T: %v", snd.Msg, err)
			}
			if _, err := tlv.ParseASAP(b); err != nil {
				t.Fatalf("sent %T does not parse: %v", snd.Msg, err)
			}
		}
	}
}

// checkStore checks the handlespace invariants: pool counts add up, every
// PE is owned by this registrar and supervised by the ASAP core, and the
// incremental ownership checksum equals a fresh computation (SPEC §6.13).
func checkStore(t *testing.T, s *server, id uint32) {
	total := 0
	s.store.ForEachPool(func(p handlespace.PoolInfo) bool {
		if p.PEs <= 0 {
			t.Fatalf("pool %q with %d PEs", p.Handle, p.PEs)
		}
		total += p.PEs
		return true
	})
	if total != s.store.PEs() || s.store.Owned(id) != total || s.asap.Owned() != total {
		t.Fatalf("counts: pools sum %d, PEs %d, owned %d, supervised %d", total, s.store.PEs(), s.store.Owned(id), s.asap.Owned())
	}
	var sum uint64
	s.store.ForEachOwnedBy(id, func(h tlv.PoolHandle, pe tlv.PoolElement) bool {
		if _, _, ok := s.asap.AssocOf(h, pe.ID); !ok {
			t.Fatalf("PE %q/%d not supervised", h, pe.ID)
		}
		if pe.HomeServerID != id {
			t.Fatalf("PE %q/%d home %x", h, pe.ID, pe.HomeServerID)
		}
		for i := 0; i < len(h); i += 2 {
			w := uint64(h[i]) << 8
			if i+1 < len(h) {
				w |= uint64(h[i+1])
			}
			sum += w
		}
		sum += uint64(pe.ID>>16) + uint64(pe.ID&0xffff)
		return true
	})
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	if want := ^uint16(sum); s.store.Checksum(id) != want {
		t.Fatalf("checksum %04x, recomputed %04x", s.store.Checksum(id), want)
	}
}
