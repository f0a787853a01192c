package enrp

import (
	"bytes"
	"fmt"
	"net/netip"
	"testing"

	"github.com/go-rserpool/rserpool/handlespace"
	"github.com/go-rserpool/rserpool/tlv"
)

// Tests of the registrar's bounds (RFC 5355 §3: registration flooding,
// resource exhaustion) with the default configuration, driving the
// Core directly.

// sendRaw hands m to the core and returns what it queued, before any
// encoding: a driver drops a message over 65,535 bytes (tlv.Append), so
// each one is checked here and then sent through the codec.
func (f *srvFixture) sendRaw(id AssocID, m tlv.ASAPMessage) []Output {
	f.t.Helper()
	b, err := tlv.Marshal(m)
	if err != nil {
		f.t.Fatalf("marshal %T: %v", m, err)
	}
	f.c.HandleASAP(f.now, id, b)
	outs := f.c.Outbox()
	for _, s := range srvOnly[SendASAP](outs) {
		if n := s.Msg.Len(); n > tlv.MaxMessageLen {
			f.t.Fatalf("core sent a %T of %d bytes (> %d): the driver cannot encode it and the peer gets nothing", s.Msg, n, tlv.MaxMessageLen)
		}
	}
	return srvCopy(f.t, outs)
}

// bigRegistration registers PE id at ip in pool h with an unknown
// parameter of action bits 10 (skip, RFC 5354 §2) that makes the message
// 65,532 bytes, the largest ASAP message (RFC 5352 §2.1), inside the PE
// or inside its user transport (then with a second address, as the store
// keeps a transport's unknown parameters only beside several addresses).
func bigRegistration(h string, id uint32, ip string, inTransport bool) *tlv.Registration {
	m := reg(h, rrPE(id, ip))
	u := []tlv.RawParam{{Type: 0x8abc, Index: 9}}
	if inTransport {
		m.PE.UserTransport.Addrs = append(m.PE.UserTransport.Addrs, netip.MustParseAddr("192.0.2.7"))
		m.PE.UserTransport.Unknown = u
	} else {
		m.PE.Unknown = u
	}
	u[0].Value = make([]byte, tlv.MaxMessageLen-3-m.Len())
	return m
}

// Finding 5 (issue 9): one registration whose PE carries 64 KiB of
// unknown "skip" parameters must not silence its pool. The registrar
// drops them (RFC 5354 §2: skip), so the honest PU's resolution fits and
// carries the honest PEs.
func TestServerOversizePEAttack(t *testing.T) {
	for _, tc := range []struct {
		name        string
		check       AddressCheck
		inTransport bool
	}{
		{"pe-parameter", AddressCheckAssociation, false},
		{"transport-parameter/address-check-off", AddressCheckOff, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newSrv(t, func(c *ASAPConfig) { c.AddressCheck = tc.check }, handlespace.Config{})
			f.accept(1, "10.0.0.2") // honest PEs
			f.accept(2, "10.0.0.3") // attacker
			f.accept(9, "10.0.0.9") // honest PU
			f.register(1, "pool", rrPE(1, "10.0.0.2"))
			f.register(1, "pool", rrPE(2, "10.0.0.2"))
			atk := bigRegistration("pool", 3, "10.0.0.3", tc.inTransport)
			if n := atk.Len(); n != tlv.MaxMessageLen-3 {
				t.Fatalf("attack registration is %d bytes", n)
			}
			f.sendRaw(2, atk) // accepted or refused: either way the pool must keep working
			if pe, _, ok := f.st.Lookup(tlv.PoolHandle("pool"), 3); ok && (len(pe.Unknown) != 0 || len(pe.UserTransport.Unknown) != 0) {
				t.Errorf("stored PE keeps %d+%d unknown parameters", len(pe.Unknown), len(pe.UserTransport.Unknown))
			}
			for _, hr := range []*tlv.HandleResolution{
				{PoolHandle: tlv.PoolHandle("pool")},
				{PoolHandle: tlv.PoolHandle("pool"), HasItems: true, Items: tlv.HROPTAsManyAsPossible},
			} {
				r := srvOne[*tlv.HandleResolutionResponse](t, f.sendRaw(9, hr))
				ids := map[uint32]bool{}
				for _, pe := range r.PEs {
					ids[pe.ID] = true
				}
				if r.Error != nil || !ids[1] || !ids[2] {
					t.Errorf("resolution (HROPT %v): PEs %v, error %v; want the honest PEs 1 and 2", hr.HasItems, ids, r.Error)
				}
			}
		})
	}
}

// ipv6s returns n distinct IPv6 addresses.
func ipv6s(n int) []netip.Addr {
	as := make([]netip.Addr, n)
	for i := range as {
		as[i] = netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 15: byte(i), 14: byte(i >> 8)})
	}
	return as
}

// Finding 5: a pool of many large but legal PEs (60 IPv6 user addresses
// each, about 1.3 kB) is still answered: the response asking for every PE
// holds as many as fit in 65,535 bytes, in the policy's order, and the
// next resolution goes on from there (round robin).
func TestServerResolutionFitsLargePEs(t *testing.T) {
	f := newSrv(t, func(c *ASAPConfig) { c.AddressCheck = AddressCheckOff }, handlespace.Config{})
	f.accept(1, "10.0.0.2")
	f.accept(9, "10.0.0.9")
	const pes = 128
	for id := uint32(1); id <= pes; id++ {
		pe := rrPE(id, "10.0.0.2")
		pe.UserTransport = tlv.NewSCTPTransport(7000, tlv.TransportUseDataOnly, ipv6s(60)...)
		f.register(1, "big", pe)
	}
	hr := &tlv.HandleResolution{PoolHandle: tlv.PoolHandle("big"), HasItems: true, Items: tlv.HROPTAsManyAsPossible}
	r := srvOne[*tlv.HandleResolutionResponse](t, f.sendRaw(9, hr))
	if r.Error != nil || len(r.PEs) == 0 {
		t.Fatalf("resolution: %d PEs, error %v", len(r.PEs), r.Error)
	}
	per := r.PEs[0].Len()
	t.Logf("%d of %d PEs of %d bytes in a response of %d bytes", len(r.PEs), pes, per, r.Len())
	want := (tlv.MaxMessageLen - tlv.HeaderLen - tlv.PoolHandle("big").Len() - r.Policy.Len()) / per
	if len(r.PEs) != want {
		t.Errorf("%d PEs of %d bytes in the response, want %d (as many as fit)", len(r.PEs), per, want)
	}
	// Round robin: consecutive identifiers, and the next answer goes on.
	for i := 1; i < len(r.PEs); i++ {
		if r.PEs[i].ID != r.PEs[i-1].ID%pes+1 {
			t.Fatalf("PE %d is %d after %d: not the selector's order", i, r.PEs[i].ID, r.PEs[i-1].ID)
		}
	}
	r2 := srvOne[*tlv.HandleResolutionResponse](t, f.sendRaw(9, hr))
	if r2.PEs[0].ID == r.PEs[0].ID {
		t.Errorf("second resolution starts at %d again", r2.PEs[0].ID)
	}
}

// Finding 5: a PE whose stored form exceeds the per-PE byte limit
// (DefaultMaxPESize) is refused with Lack of Resources and not stored.
func TestServerPETooLarge(t *testing.T) {
	f := newSrv(t, func(c *ASAPConfig) { c.AddressCheck = AddressCheckOff }, handlespace.Config{})
	f.accept(1, "10.0.0.2")
	pe := rrPE(1, "10.0.0.2")
	pe.UserTransport = tlv.NewSCTPTransport(7000, tlv.TransportUseDataOnly, ipv6s(200)...) // 4 kB
	r := srvOne[*tlv.RegistrationResponse](t, f.sendRaw(1, reg("p", pe)))
	if !r.Reject || r.Error.First() != tlv.CauseLackOfResources || f.st.PEs() != 0 {
		t.Fatalf("PE of %d bytes: reject=%v cause %v, %d PEs stored; want Lack of Resources", pe.Len(), r.Reject, r.Error.First(), f.st.PEs())
	}
	pe.UserTransport = tlv.NewSCTPTransport(7000, tlv.TransportUseDataOnly, ipv6s(64)...) // RSPLIB's maximum
	f.register(1, "p", pe)
}

// Finding 5, other messages: an error report that would outgrow 65,535
// bytes is shortened, not dropped: an unrecognized message of 65,532
// bytes (RFC 5354 §3.12 attaches it), and a registration carrying 4,000
// skip-and-report parameters (one cause each, RFC 5354 §2).
func TestServerErrorFits(t *testing.T) {
	f := newSrv(t, nil, handlespace.Config{})
	f.accept(1, "10.0.0.2")
	msg := make([]byte, tlv.MaxMessageLen-3)
	msg[0], msg[2], msg[3] = 0x0f, byte(len(msg)>>8), byte(len(msg))
	f.c.HandleASAP(f.now, 1, msg)
	outs := f.c.Outbox()
	var e *tlv.ASAPError
	for _, s := range srvOnly[SendASAP](outs) {
		if n := s.Msg.Len(); n > tlv.MaxMessageLen {
			t.Fatalf("ASAP_ERROR of %d bytes for an unrecognized message of %d", n, len(msg))
		}
	}
	e = srvOne[*tlv.ASAPError](t, srvCopy(t, outs))
	if c := e.Error.Causes[0]; c.Code != tlv.CauseUnrecognizedMessage || !bytes.HasPrefix(msg, c.Info) || len(c.Info) < len(msg)-16 {
		t.Errorf("cause %v with %d bytes of the message", c.Code, len(c.Info))
	}

	m := reg("p", rrPE(1, "10.0.0.2"))
	for i := range 4000 {
		m.Unknown = append(m.Unknown, tlv.RawParam{Type: 0xc0f0, Value: []byte(fmt.Sprintf("%012d", i)), Index: 2 + i})
	}
	outs = f.sendRaw(1, m)
	e = srvOne[*tlv.ASAPError](t, outs)
	if n := len(e.Error.Causes); n < 3000 || n >= 4000 || e.Error.Causes[0].Code != tlv.CauseUnrecognizedParameter {
		t.Errorf("%d causes reported, want the first ones that fit", n)
	}
	if r := srvOne[*tlv.RegistrationResponse](t, outs); r.Reject {
		t.Errorf("registration refused: %v", r.Error)
	}
}

// exhaust makes attackers try to create pools until the store's pool
// limit: association k (from ips[k%len(ips)]) registers one PE in a new
// pool per message, up to DefaultMaxPEsPerAssoc, and gives up at its
// first refusal. It returns the pools created.
func exhaust(f *srvFixture, assocs int, ips []string) int {
	for k := range assocs {
		id := AssocID(100 + k)
		f.accept(id, ips[k%len(ips)])
		pe := rrPE(1, ips[k%len(ips)])
		for i := range DefaultMaxPEsPerAssoc {
			f.c.HandleASAPMessage(f.now, id, reg(fmt.Sprintf("atk-%d-%d", k, i), pe))
			ok := true
			for _, o := range f.c.Outbox() {
				if s, isSend := o.(SendASAP); isSend {
					if r, isResp := s.Msg.(*tlv.RegistrationResponse); isResp && r.Reject {
						ok = false
					}
				}
			}
			if !ok {
				break
			}
		}
	}
	return f.st.Pools()
}

// Finding 6 (issue 9): 64 associations, from one source address or from
// 64, try to take every pool of the store (handlespace.DefaultMaxPools,
// 65,536); an honest PE on another source still creates its pool.
func TestServerPoolExhaustion(t *testing.T) {
	if testing.Short() {
		t.Skip("registers up to 65,536 pools")
	}
	many := make([]string, 64)
	for i := range many {
		many[i] = fmt.Sprintf("10.1.0.%d", i+1)
	}
	for _, tc := range []struct {
		name string
		ips  []string
	}{
		{"one-source", []string{"10.1.0.1"}},
		{"64-sources", many},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newSrv(t, func(c *ASAPConfig) { c.AssocRate = Unlimited }, handlespace.Config{})
			pools := exhaust(f, 64, tc.ips)
			t.Logf("64 associations from %d source(s) created %d pools", len(tc.ips), pools)
			f.accept(1, "10.0.0.2")
			outs := f.feed(1, reg("honest", rrPE(7, "10.0.0.2")))
			if r := srvOne[*tlv.RegistrationResponse](t, outs); r.Reject {
				t.Fatalf("after %d attacker pools the honest PE is refused: %v", pools, r.Error)
			}
		})
	}
}

// Finding 6: the PEs registered over the associations of one source
// address are bounded (DefaultMaxPEsPerSource); PEs from other sources
// are not affected, and a lost association frees its share.
func TestServerPEsPerSource(t *testing.T) {
	f := newSrv(t, func(c *ASAPConfig) { c.AssocRate = Unlimited }, handlespace.Config{})
	accepted := 0
	for k := range 9 {
		id := AssocID(100 + k)
		f.accept(id, "10.1.0.1")
		for i := range DefaultMaxPEsPerAssoc {
			f.c.HandleASAPMessage(f.now, id, reg("shared", rrPE(uint32(k*DefaultMaxPEsPerAssoc+i+1), "10.1.0.1")))
			for _, s := range srvOnly[SendASAP](f.c.Outbox()) {
				if r, ok := s.Msg.(*tlv.RegistrationResponse); ok && !r.Reject {
					accepted++
				}
			}
		}
	}
	if want := 8 * DefaultMaxPEsPerAssoc; accepted != want {
		t.Errorf("one source registered %d PEs over 9 associations, want %d", accepted, want)
	}
	f.accept(1, "10.0.0.2")
	f.register(1, "shared", rrPE(1_000_000, "10.0.0.2"))
	f.c.HandleLost(f.now, 100)
	f.c.Outbox()
	f.register(108, "shared", rrPE(2_000_000, "10.1.0.1"))
}

// Finding 10 (issue 9): PE identifier 0 and user-transport port 0 are
// refused with Invalid Values (0x3, RFC 5354 §3.12) carrying the
// offending parameter, and nothing is stored.
func TestServerInvalidIdentifierAndPort(t *testing.T) {
	zeroPort := rrPE(5, "10.0.0.2")
	zeroPort.UserTransport.Port = 0
	for _, tc := range []struct {
		name string
		pe   tlv.PoolElement
		info []byte
	}{
		{"pe-identifier-0", rrPE(0, "10.0.0.2"), tlv.PEIdentifier(0).AppendTo(nil)},
		{"user-port-0", zeroPort, zeroPort.UserTransport.AppendTo(nil)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newSrv(t, nil, handlespace.Config{})
			f.accept(1, "10.0.0.2")
			r := srvOne[*tlv.RegistrationResponse](t, f.feed(1, reg("p", tc.pe)))
			if !r.Reject || r.Error.First() != tlv.CauseInvalidValues {
				t.Fatalf("reject=%v cause %v, want Invalid Values; %d PEs stored", r.Reject, r.Error.First(), f.st.PEs())
			}
			if !bytes.Equal(r.Error.Causes[0].Info, tc.info) {
				t.Errorf("cause information %x, want %x", r.Error.Causes[0].Info, tc.info)
			}
			if f.st.PEs() != 0 || f.c.Owned() != 0 {
				t.Errorf("%d PEs stored, %d owned", f.st.PEs(), f.c.Owned())
			}
		})
	}
}
