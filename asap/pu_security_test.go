package asap

import (
	"errors"
	"testing"
	"time"

	"github.com/go-rserpool/rserpool/tlv"
)

// RFC 5352 §3.5 with a registrar that authorises pool users (RFC 5355,
// RFC 5352 §6): a Handle Resolution Response carrying Rejected due to
// security considerations (0xa) ends the resolution at once with a final
// *RejectError of that cause, drops the pool's cache entry, and leaves
// nothing to retry: no resend at T1, no server hunt, the home kept.
func TestPUResolutionRejectedSecurity(t *testing.T) {
	c := newPU(t, nil)
	c.Resolve(t0, []byte("echo"))
	home, _ := connectPU(t, c, t0)
	c.Handle(t0, home, wire(t, rrResponse("echo", 1)))
	c.Outbox()
	if c.Cached([]byte("echo")) == nil {
		t.Fatal("first answer not cached")
	}

	t1 := t0.Add(DefaultStaleCacheValue + 1)
	req := c.Resolve(t1, []byte("echo")) // stale: asks again
	if hrs, _ := sent[*tlv.HandleResolution](t, c.Outbox()); len(hrs) != 1 {
		t.Fatalf("no request for the stale pool: %v", hrs)
	}
	c.Handle(t1, home, wire(t, &tlv.HandleResolutionResponse{
		PoolHandle: []byte("echo"),
		Error:      tlv.NewOperationError(tlv.CauseRejectedSecurity, nil),
	}))
	d := only[ResolutionDone](c.Outbox())
	var re *RejectError
	if len(d) != 1 || d[0].Req != req || !errors.As(d[0].Err, &re) {
		t.Fatalf("done %+v, want one *RejectError", d)
	}
	if re.Op != tlv.ASAPHandleResolution || re.Code() != tlv.CauseRejectedSecurity || re.Transient() || len(d[0].PEs) != 0 {
		t.Fatalf("refusal %+v (transient %v), want a final 0xa refusal of the resolution", re, re.Transient())
	}
	if c.Cached([]byte("echo")) != nil {
		t.Fatal("the refused pool's cache entry kept")
	}
	// Nothing is left to retry.
	for i := 1; i <= 4; i++ {
		c.HandleTimeout(t1.Add(time.Duration(i) * DefaultT1ENRPRequest))
		for _, o := range c.Outbox() {
			switch o := o.(type) {
			case Send:
				if _, ok := o.Msg.(*tlv.HandleResolution); ok {
					t.Fatalf("resolution resent after the refusal: %+v", o)
				}
			case Connect, Close, ResolutionDone:
				t.Fatalf("%T after the refusal: %+v", o, o)
			}
		}
	}
	if h, _ := c.Home(); h != home {
		t.Fatalf("home %v, want %v kept", h, home)
	}
}
