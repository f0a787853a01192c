package enrp

import (
	"encoding/binary"
	"net/netip"
	"testing"
	"time"

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

// Fuzz ops (the first byte of a step, modulo fuzzOps).
const (
	fuzzAssocs  = 4 // ops 0..3: ASAP bytes from association op+1
	opTimeout   = 4 // advance the clock by 100 ms × b[0], run the timers
	opLose      = 5 // association b[0]%fuzzAssocs+1 goes down and comes back
	opForeign   = 6 // put a PE of another home registrar into the store
	opOversized = 7 // a registration carrying many unknown parameters, or reports from every association
	fuzzOps     = 8
	fuzzOther   = 0x7777 // home of the foreign PEs
)

var fuzzAddrs = [fuzzAssocs]string{"10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.4"}

func fuzzAssocInfo(i int) AssocInfo {
	return AssocInfo{Remote: transport.Addr{Kind: transport.KindMem, AddrPort: netip.MustParseAddrPort(fuzzAddrs[i] + ":1")}}
}

// fuzzPE builds a PE of pool "pool" or "other" from b: identifier b[0],
// address of association a.
func fuzzPE(b []byte, a int) (tlv.PoolHandle, tlv.PoolElement) {
	var id byte
	if len(b) > 0 {
		id = b[0]
	}
	h := tlv.PoolHandle("pool")
	if id&0x40 != 0 {
		h = tlv.PoolHandle("other")
	}
	return h, tlv.PoolElement{
		ID: uint32(id%16) + 1, RegistrationLife: 5000,
		UserTransport: tlv.NewSCTPTransport(7000, tlv.TransportUseDataOnly, netip.MustParseAddr(fuzzAddrs[a])),
		Policy:        policy.Encode(policy.LeastUsed, policy.Values{Load: uint32(id)}),
	}
}

// oversized encodes a registration whose PE carries up to 255 unknown
// "skip" parameters (RFC 5354 §2 action 10 or 11) of up to 255 bytes each,
// as big as an ASAP message may be.
func oversized(b []byte, a int) []byte {
	h, pe := fuzzPE(b, a)
	n, size := 200, 250
	if len(b) > 2 {
		n, size = int(b[1]), int(b[2])
	}
	for i := range n {
		typ := tlv.ParamType(0x8000 | 0x100 + i)
		if i%7 == 3 {
			typ |= 0x4000 // skip and report
		}
		pe.Unknown = append(pe.Unknown, tlv.RawParam{Type: typ, Value: make([]byte, size), Index: 10 + i})
		if m := (&tlv.Registration{PoolHandle: h, PE: pe}); m.Len() > 0xfff0 {
			pe.Unknown = pe.Unknown[:len(pe.Unknown)-1]
			break
		}
	}
	m, err := tlv.Marshal(&tlv.Registration{PoolHandle: h, PE: pe})
	if err != nil {
		panic(err)
	}
	return m
}

// FuzzRegistrarASAP feeds random bytes to the registrar core's ASAP
// handler from four associations (two of them from one address), with
// timeouts, association losses, PEs of another home registrar put into
// the store (as ENRP will), oversized registrations and Endpoint
// Unreachable reports from every association in between. Nothing may
// panic, every message sent must encode, the handlespace must stay
// consistent with the core's bookkeeping, no PE of another home may be
// removed, and the grace table stays within its bound.
func FuzzRegistrarASAP(f *testing.F) {
	seeds := fuzzSeedMessages()
	for _, m := range seeds {
		f.Add(frame(0, m))
	}
	var all []byte
	for i, m := range seeds {
		all = append(all, frame(byte(i%fuzzAssocs), m)...)
		all = append(all, frame(opTimeout, []byte{3})...)
	}
	all = append(all, frame(opLose, []byte{0})...)
	f.Add(all)
	// Register, report from every association, let the check time out,
	// try to take the identifier over, register again.
	h, pe := fuzzPE([]byte{6}, 0)
	pe.RegistrationLife = 60000
	reg, _ := tlv.Marshal(&tlv.Registration{PoolHandle: h, PE: pe})
	eu, _ := tlv.Marshal(&tlv.EndpointUnreachable{PoolHandle: h, PEID: pe.ID})
	attack := frame(0, reg)
	attack = append(attack, frame(opForeign, []byte{0x47})...)
	for a := range byte(fuzzAssocs) {
		attack = append(attack, frame(a, eu)...)
		attack = append(attack, frame(a, eu)...)
	}
	attack = append(attack, frame(opTimeout, []byte{10})...)
	attack = append(attack, frame(1, reg)...) // over another association, from another address
	attack = append(attack, frame(3, reg)...)
	attack = append(attack, frame(opOversized, []byte{0x06, 200, 250})...)
	attack = append(attack, frame(opOversized, []byte{0x86})...)
	attack = append(attack, frame(opTimeout, []byte{255})...)
	attack = append(attack, frame(0, reg)...)
	f.Add(attack)

	f.Fuzz(func(t *testing.T, data []byte) {
		const id = 0xabcd
		const maxGrace = 8
		s, err := newCore(id, ASAPConfig{
			MaxPEsPerAssoc: 8, AssocRate: Unlimited,
			MaxGraceEntries: maxGrace, IdleTimeout: 3 * time.Second,
			KeepAliveInterval: time.Second, KeepAliveTimeout: time.Second,
		}, handlespace.Config{MaxPEs: 64}, false, logger(nil))
		if err != nil {
			t.Fatal(err)
		}
		now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
		for i := range fuzzAssocs {
			s.HandleAccepted(now, AssocID(i+1), fuzzAssocInfo(i))
		}
		type fkey struct {
			h  string
			id uint32
		}
		fpes := map[fkey]bool{} // PEs of another home put into the store
		drive := func() {
			// As the driver does: carry out the aborts, then report the
			// association lost (here it comes back at once).
			for round := 0; round < 4; round++ {
				outs := s.Outbox()
				checkOutputs(t, outs)
				var aborted []AssocID
				for _, o := range outs {
					if ab, ok := o.(CloseAssoc); ok {
						if ab.Assoc < 1 || ab.Assoc > fuzzAssocs {
							t.Fatalf("abort of unknown association %d", ab.Assoc)
						}
						aborted = append(aborted, ab.Assoc)
					}
				}
				if len(aborted) == 0 {
					return
				}
				for _, a := range aborted {
					s.HandleLost(now, a)
					s.HandleAccepted(now, a, fuzzAssocInfo(int(a-1)))
				}
			}
		}
		for len(data) >= 3 {
			op := data[0]
			n := int(binary.BigEndian.Uint16(data[1:]))
			data = data[3:]
			n = min(n, len(data))
			b := data[:n]
			data = data[n:]
			var arg byte
			if len(b) > 0 {
				arg = b[0]
			}
			switch op % fuzzOps {
			case 0, 1, 2, 3:
				s.HandleASAP(now, AssocID(op%fuzzOps+1), b)
			case opTimeout:
				now = now.Add(100 * time.Millisecond * time.Duration(arg))
				s.HandleTimeout(now)
			case opLose:
				a := AssocID(arg%fuzzAssocs + 1)
				s.HandleLost(now, a)
				s.HandleAccepted(now, a, fuzzAssocInfo(int(a-1)))
			case opForeign:
				h, pe := fuzzPE(b, 0)
				pe.HomeServerID = fuzzOther
				if _, _, ok := s.store.Lookup(h, pe.ID); ok {
					break // ENRP updates of PEs this registrar owns are not the point here
				}
				if _, err := s.store.Register(now, h, &pe, time.Time{}); err == nil {
					fpes[fkey{string(h), pe.ID}] = true
				}
			case opOversized:
				a := int(arg>>4) % fuzzAssocs
				if arg&0x80 != 0 {
					h, pe := fuzzPE(b[min(1, len(b)):], a)
					m, _ := tlv.Marshal(&tlv.EndpointUnreachable{PoolHandle: h, PEID: pe.ID})
					for i := range fuzzAssocs {
						s.HandleASAP(now, AssocID(i+1), m)
					}
				} else {
					s.HandleASAP(now, AssocID(a+1), oversized(b, a))
				}
			}
			drive()
			checkStore(t, s, id)
			// A PE of another home leaves only by becoming ours (a
			// registration of its identifier moves it here).
			for k := range fpes {
				pe, _, ok := s.store.Lookup(tlv.PoolHandle(k.h), k.id)
				switch {
				case !ok:
					t.Fatalf("PE %s/%d of another home removed", k.h, k.id)
				case pe.HomeServerID == id:
					delete(fpes, k)
				}
			}
			if g := s.GraceEntries(); g > maxGrace {
				t.Fatalf("%d grace entries, bound %d", g, maxGrace)
			}
			if s.Associations() != fuzzAssocs {
				t.Fatalf("%d associations, want %d", s.Associations(), fuzzAssocs)
			}
		}
	})
}

func checkOutputs(t *testing.T, outs []Output) {
	for _, o := range outs {
		if snd, ok := o.(SendASAP); ok {
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
// PE is owned by this registrar and supervised by the ASAP core, or put
// there as another home's (fuzzOther), and the
// incremental ownership checksum equals a fresh computation (the RFC 5353 PE checksum).
func checkStore(t *testing.T, s *Core, id uint32) {
	total := 0
	s.store.ForEachPool(func(p handlespace.PoolInfo) bool {
		if p.PEs <= 0 {
			t.Fatalf("pool %q with %d PEs", p.Handle, p.PEs)
		}
		total += p.PEs
		return true
	})
	if total != s.store.PEs() || s.store.Owned(id)+s.store.Owned(fuzzOther) != total || len(s.sup) != s.store.Owned(id) {
		t.Fatalf("counts: pools sum %d, PEs %d, owned %d (+%d of another home), supervised %d",
			total, s.store.PEs(), s.store.Owned(id), s.store.Owned(fuzzOther), len(s.sup))
	}
	var sum uint64
	s.store.ForEachOwnedBy(id, func(h tlv.PoolHandle, pe tlv.PoolElement) bool {
		if _, _, ok := s.AssocOf(h, pe.ID); !ok {
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
