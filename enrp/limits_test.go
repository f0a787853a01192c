package enrp

import (
	"testing"
	"testing/synctest"
	"time"

	"github.com/go-rserpool/rserpool/tlv"
	"github.com/go-rserpool/rserpool/transport"
	"github.com/go-rserpool/rserpool/transport/memnet"
)

// Issue 9, finding 5, end to end: a PE registered with 64 KiB of unknown
// "skip" parameters (RFC 5354 §2) does not silence its pool. Before, the
// registrar stored and echoed them, every resolution of the pool was over
// 65,535 bytes and was dropped with a log line; now the parameters are
// skipped and an honest pool user is answered with the honest PEs.
func TestRegistrarOversizePEDoesNotSilencePool(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := t.Context()
		net := memnet.New(1)
		defer net.Close()
		regNode := net.NewNode()
		ln, err := regNode.Listen(regNode.Addr(transport.PortASAP))
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		r, err := New(Config{Listener: ln, Logger: testLogger(t)})
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- r.Run(ctx) }()
		defer func() {
			r.Close()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		}()

		pe := dial(t, ctx, net.NewNode(), r.Addr())
		for id := uint32(1); id <= 2; id++ {
			pe.send(ctx, pe.registration("echo", id, time.Minute))
			if rr := recvAs[*tlv.RegistrationResponse](pe, ctx); rr.Reject {
				t.Fatalf("honest PE %d refused: %v", id, rr.Error)
			}
		}
		atk := dial(t, ctx, net.NewNode(), r.Addr())
		m := atk.registration("echo", 3, time.Minute)
		m.PE.Unknown = []tlv.RawParam{{Type: 0x8abc, Index: 9}}
		m.PE.Unknown[0].Value = make([]byte, tlv.MaxMessageLen-3-m.Len())
		atk.send(ctx, m)
		recvAs[*tlv.RegistrationResponse](atk, ctx) // accepted or not, the pool must keep working

		pu := dial(t, ctx, net.NewNode(), r.Addr())
		pu.send(ctx, &tlv.HandleResolution{PoolHandle: tlv.PoolHandle("echo"), HasItems: true, Items: tlv.HROPTAsManyAsPossible})
		got, err := pu.recvWithin(ctx, 10*time.Second)
		if err != nil {
			t.Fatalf("the honest PU got no answer within 10 s: %v", err)
		}
		hr, ok := got.(*tlv.HandleResolutionResponse)
		if !ok {
			t.Fatalf("got %T", got)
		}
		ids := map[uint32]bool{}
		for _, p := range hr.PEs {
			ids[p.ID] = true
		}
		if hr.Error != nil || !ids[1] || !ids[2] {
			t.Errorf("resolution: PEs %v, error %v; want the honest PEs 1 and 2", ids, hr.Error)
		}
	})
}
