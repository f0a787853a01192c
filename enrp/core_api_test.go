package enrp_test

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/go-rserpool/rserpool/enrp"
	"github.com/go-rserpool/rserpool/policy"
	"github.com/go-rserpool/rserpool/tlv"
	"github.com/go-rserpool/rserpool/transport"
)

// A host drives the exported Core message by message, with its own now:
// a registration (RFC 5352 §3.2) is answered and reported as a PEEvent, a
// resolution (§3.5) returns the PE, and a PE that stops answering its
// keep-alive (§3.7) is removed, reported, and its association aborted,
// all at the deadlines NextDeadline names. The owner count is the store's
// (home = ServerID).
func TestCoreDrivenByHost(t *testing.T) {
	const id = 0x1234
	c, err := enrp.NewCore(enrp.Config{ServerID: id, ASAP: enrp.ASAPConfig{
		KeepAliveInterval: time.Second, KeepAliveTimeout: time.Second,
	}})
	if err != nil {
		t.Fatal(err)
	}
	if c.ServerID() != id {
		t.Fatalf("ServerID %x", c.ServerID())
	}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	mem := func(s string) transport.Addr {
		return transport.Addr{Kind: transport.KindMem, AddrPort: netip.MustParseAddrPort(s)}
	}
	c.HandleTimeout(now) // as a driver does when it starts
	c.Outbox()
	c.HandleAccepted(now, 1, enrp.AssocInfo{Local: mem("10.0.0.1:3863"), Remote: mem("10.0.0.2:4000")})

	feed := func(m tlv.ASAPMessage) []enrp.Output {
		t.Helper()
		b, err := tlv.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		c.HandleASAP(now, 1, b)
		return c.Outbox()
	}
	pe := tlv.PoolElement{
		ID: 7, RegistrationLife: 60000,
		UserTransport: tlv.NewSCTPTransport(7000, tlv.TransportUseDataOnly, netip.MustParseAddr("10.0.0.2")),
		Policy:        policy.Encode(policy.RoundRobin, policy.Values{}),
	}
	outs := feed(&tlv.Registration{PoolHandle: tlv.PoolHandle("echo"), PE: pe})
	if len(outs) != 2 {
		t.Fatalf("registration: outputs %#v", outs)
	}
	for _, o := range outs {
		switch o := o.(type) {
		case enrp.PEEvent:
			if o.Kind != enrp.EventRegistered || string(o.PoolHandle) != "echo" || o.PEID != 7 {
				t.Fatalf("event %#v", o)
			}
		case enrp.SendASAP:
			if r, ok := o.Msg.(*tlv.RegistrationResponse); !ok || r.Reject || o.Assoc != 1 {
				t.Fatalf("response %#v on %d", o.Msg, o.Assoc)
			}
		default:
			t.Fatalf("unexpected output %#v", o)
		}
	}
	if got, _, ok := c.Lookup(tlv.PoolHandle("echo"), 7); !ok || got.HomeServerID != id {
		t.Fatalf("Lookup: %v, home %x", ok, got.HomeServerID)
	}
	if c.Owned() != 1 {
		t.Fatalf("Owned %d", c.Owned())
	}

	outs = feed(&tlv.HandleResolution{PoolHandle: tlv.PoolHandle("echo")})
	if len(outs) != 1 {
		t.Fatalf("resolution: outputs %#v", outs)
	}
	// The answer carries the stored PE's encoding: parse what the host
	// would send.
	sent, ok := outs[0].(enrp.SendASAP)
	if !ok {
		t.Fatalf("resolution answer %#v", outs[0])
	}
	if _, ok := sent.Msg.(*tlv.EncodedResolutionResponse); !ok {
		t.Fatalf("resolution answer is a %T, want the stored encodings", sent.Msg)
	}
	b, err := tlv.Marshal(sent.Msg)
	if err != nil {
		t.Fatal(err)
	}
	if m, err := tlv.ParseASAP(b); err != nil {
		t.Fatalf("resolution answer does not parse: %v", err)
	} else if r, ok := m.(*tlv.HandleResolutionResponse); !ok || len(r.PEs) != 1 || r.PEs[0].ID != 7 {
		t.Fatalf("resolution answer %#v", m)
	}

	// Keep-alive at the interval, removal at its timeout.
	var kinds []string
	for i := 0; i < 2; i++ {
		now = c.NextDeadline()
		c.HandleTimeout(now)
		for _, o := range c.Outbox() {
			switch o := o.(type) {
			case enrp.SendASAP:
				if _, ok := o.Msg.(*tlv.EndpointKeepAlive); ok {
					kinds = append(kinds, "keep-alive")
				}
			case enrp.PEEvent:
				if o.Kind == enrp.EventRemoved && o.Reason == enrp.RemovedKeepAliveTimeout {
					kinds = append(kinds, "removed")
				}
			case enrp.CloseAssoc:
				if o.Assoc == 1 && o.Abort && o.Reason == enrp.CloseKeepAlive {
					kinds = append(kinds, "abort")
				}
			}
		}
	}
	if want := "[keep-alive removed abort]"; fmt.Sprint(kinds) != want {
		t.Fatalf("timeouts gave %v, want %s", kinds, want)
	}
	if c.Owned() != 0 || c.Associations() != 0 {
		t.Fatalf("after removal: %d owned, %d associations", c.Owned(), c.Associations())
	}
}
