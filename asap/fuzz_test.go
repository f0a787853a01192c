package asap

import (
	"testing"
	"time"

	"github.com/go-rserpool/rserpool/tlv"
)

func fuzzSeeds(f *testing.F) {
	for _, m := range []tlv.ASAPMessage{
		&tlv.RegistrationResponse{PoolHandle: []byte("echo"), PEID: 1},
		&tlv.RegistrationResponse{Reject: true, PoolHandle: []byte("echo"), PEID: 1, Error: &tlv.OperationError{Causes: []tlv.Cause{{Code: tlv.CauseInvalidValues}}}},
		&tlv.DeregistrationResponse{PoolHandle: []byte("echo"), PEID: 1},
		&tlv.EndpointKeepAlive{Home: true, ServerID: 5, PoolHandle: []byte("echo")},
		&tlv.ServerAnnounce{ServerID: 3},
		rrResponse("echo", 1, 2, 3),
		&tlv.HandleResolutionResponse{PoolHandle: []byte("echo"), Error: &tlv.OperationError{Causes: []tlv.Cause{{Code: tlv.CauseUnknownPoolHandle}}}},
		&tlv.ASAPError{Error: tlv.OperationError{Causes: []tlv.Cause{{Code: tlv.CauseUnrecognizedMessage, Info: []byte{5, 0, 0, 4}}}}},
	} {
		b, err := tlv.Marshal(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
}

// checkOutputs requires every message a core emits to encode.
func checkOutputs(t *testing.T, outs []Output) {
	for _, s := range only[Send](outs) {
		if _, err := tlv.Marshal(s.Msg); err != nil {
			t.Fatalf("core emitted unencodable %T: %v", s.Msg, err)
		}
	}
}

// FuzzPoolElementCore feeds random bytes through tlv.ParseASAP into a
// registered pool element (and one still registering): nothing panics and
// every output encodes.
func FuzzPoolElementCore(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := tlv.ParseASAP(b)
		if err != nil {
			return
		}
		c, _ := NewPoolElementCore(PEConfig{PoolHandle: []byte("echo"), UserTransport: peTr, PEID: 1, Registrars: peRegs, Rand: seeded()})
		c.Register(t0)
		conn := only[Connect](c.Outbox())[0]
		c.HandleConnected(t0, conn.Assoc)
		c.Handle(t0, conn.Assoc, m) // registering
		checkOutputs(t, c.Outbox())
		c.Handle(t0, conn.Assoc, &tlv.RegistrationResponse{PoolHandle: []byte("echo"), PEID: 1})
		c.Handle(t0, conn.Assoc, m) // registered
		c.HandleAnnounce(t0, regB, &tlv.ServerAnnounce{ServerID: 4})
		if sa, ok := m.(*tlv.ServerAnnounce); ok {
			c.HandleAnnounce(t0, regB, sa)
		}
		now := t0
		for range 5 {
			d := c.NextDeadline()
			if d.IsZero() {
				break
			}
			if d.Before(now) {
				t.Fatalf("deadline %v before now %v", d, now)
			}
			now = d
			c.HandleTimeout(now)
			checkOutputs(t, c.Outbox())
		}
	})
}

// FuzzPoolUserCore feeds random bytes through tlv.ParseASAP into a pool
// user with resolutions outstanding: nothing panics, outputs encode and
// Select never returns a PE that is not cached.
func FuzzPoolUserCore(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := tlv.ParseASAP(b)
		if err != nil {
			return
		}
		c, _ := NewPoolUserCore(PUConfig{Registrars: peRegs, Rand: seeded(), Items: 3})
		c.Resolve(t0, []byte("echo"))
		conn := only[Connect](c.Outbox())[0]
		c.HandleConnected(t0, conn.Assoc)
		c.Handle(t0, conn.Assoc, m)
		checkOutputs(t, c.Outbox())
		if hr, ok := m.(*tlv.HandleResolutionResponse); ok {
			h := hr.PoolHandle
			c.Resolve(t0, h)
			c.Handle(t0, conn.Assoc, m)
			for range 3 {
				pe, err := c.Select(t0, h)
				if err != nil {
					break
				}
				found := false
				for _, x := range c.Cached(h) {
					found = found || x.ID == pe.ID
				}
				if !found {
					t.Fatalf("selected PE %d not in cache", pe.ID)
				}
				c.ReportUnreachable(t0, h, pe.ID)
			}
			checkOutputs(t, c.Outbox())
		}
		now := t0
		for range 5 {
			d := c.NextDeadline()
			if d.IsZero() {
				break
			}
			now = d
			c.HandleTimeout(now)
			checkOutputs(t, c.Outbox())
		}
		_ = now.Add(time.Second)
	})
}
