package enrp

import (
	"testing"
	"testing/synctest"
	"time"

	"github.com/go-rserpool/rserpool/policy"
	"github.com/go-rserpool/rserpool/tlv"
)

// Tests of the registrar's defences, end to end over memnet in virtual
// time (RFC 5355 §3; issue findings 3 and 4).

// answer acks every keep-alive the PE's association brings until it ends;
// the returned channel is closed then.
func answer(c *client) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			m, err := c.recvWithin(c.t.Context(), time.Hour)
			if err != nil {
				return
			}
			if ka, ok := m.(*tlv.EndpointKeepAlive); ok {
				c.send(c.t.Context(), &tlv.EndpointKeepAliveAck{PoolHandle: ka.PoolHandle, PEID: ka.PEID})
			}
		}
	}()
	return done
}

// aborted reports whether c's association ends within a second once the
// keep-alives still queued on it are read.
func aborted(c *client) bool {
	for range 16 {
		m, err := c.recvWithin(c.t.Context(), time.Second)
		if err != nil {
			return true
		}
		if _, ok := m.(*tlv.EndpointKeepAlive); !ok {
			return false
		}
	}
	return false
}

// Issue finding 4: false ASAP_ENDPOINT_UNREACHABLE reports, three from one
// association and one from each of three more, do not remove an honest PE
// that answers its keep-alives; pool users keep resolving it. On the old
// code the PE was removed by the third report, at once (virtual time 0 s;
// 62 ms over loopback SCTP).
func TestRegistrarFalseReportsKeepHonestPE(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := newEventRig(t, 64, 0, nil) // default keep-alive timers
		ctx := t.Context()
		pe := dial(t, ctx, g.net.NewNode(), g.r.Addr())
		g.register(pe, "echo", 7, time.Hour, 7000)
		want(t, g.next(), EventRegistered, "echo", 7, 0)
		acked := answer(pe)

		start := time.Now()
		attacker := dial(t, ctx, g.net.NewNode(), g.r.Addr())
		for range 3 {
			attacker.send(ctx, &tlv.EndpointUnreachable{PoolHandle: tlv.PoolHandle("echo"), PEID: 7})
		}
		// The registrar takes the three before the other reporters come:
		// otherwise the check could clear the reports between them and a
		// repeat would count as a first report.
		synctest.Wait()
		for range 3 {
			a := dial(t, ctx, g.net.NewNode(), g.r.Addr())
			a.send(ctx, &tlv.EndpointUnreachable{PoolHandle: tlv.PoolHandle("echo"), PEID: 7})
		}
		// A minute of virtual time: the check and several keep-alive
		// rounds, all answered.
		for range 60 {
			time.Sleep(time.Second) // virtual time (synctest bubble)
			synctest.Wait()
			select {
			case ev := <-g.events:
				t.Fatalf("honest PE: %v, %v after the first false report", ev, ev.Time.Sub(start))
			default:
			}
		}
		s := g.r.Stats()
		if s.PEs != 1 || s.ASAP.UnreachableChecks != 1 || s.ASAP.UnreachableCleared != 1 || s.ASAP.UnreachableRepeated != 2 {
			t.Errorf("Stats: %+v", s)
		}
		pu := dial(t, ctx, g.net.NewNode(), g.r.Addr())
		pu.send(ctx, &tlv.HandleResolution{PoolHandle: tlv.PoolHandle("echo")})
		if hr := recvAs[*tlv.HandleResolutionResponse](pu, ctx); hr.Error != nil || len(hr.PEs) != 1 || hr.PEs[0].ID != 7 {
			t.Errorf("resolution after the attack: %+v", hr)
		}
		pe.c.Close()
		<-acked
	})
}

// Issue finding 4, the chained takeover: the attacker cannot register the
// identifier of a PE removed on reports (it did not answer in time), nor
// re-create its pool with another policy, while the honest PE, back on a
// new association from its address, registers again.
func TestRegistrarGraceRefusesTakeover(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := newEventRig(t, 64, time.Minute, nil)
		ctx := t.Context()
		peNode := g.net.NewNode()
		pe := dial(t, ctx, peNode, g.r.Addr())
		g.register(pe, "echo", 7, time.Hour, 7000)
		want(t, g.next(), EventRegistered, "echo", 7, 0)
		attNode := g.net.NewNode()
		var att []*client
		for range 3 {
			a := dial(t, ctx, attNode, g.r.Addr())
			a.send(ctx, &tlv.EndpointUnreachable{PoolHandle: tlv.PoolHandle("echo"), PEID: 7})
			att = append(att, a)
		}
		// The PE is stuck and misses the check: removed, association
		// aborted.
		want(t, g.next(), EventRemoved, "echo", 7, RemovedUnreachable)
		if !aborted(pe) {
			t.Fatal("the PE's association was not aborted")
		}
		m := att[0].registration("echo", 7, time.Hour)
		att[0].send(ctx, m)
		if r := recvAs[*tlv.RegistrationResponse](att[0], ctx); !r.Reject || r.Error.First() != tlv.CauseNonUniquePEIdentifier {
			t.Fatalf("takeover of the identifier: %+v", r)
		}
		m = att[1].registration("echo", 8, time.Hour)
		m.PE.Policy = policy.Encode(policy.LeastUsed, policy.Values{})
		att[1].send(ctx, m)
		if r := recvAs[*tlv.RegistrationResponse](att[1], ctx); !r.Reject || r.Error.First() != tlv.CauseInconsistentPoolingPolicy {
			t.Fatalf("re-creation of the pool: %+v", r)
		}
		g.none()
		pe2 := dial(t, ctx, peNode, g.r.Addr())
		g.register(pe2, "echo", 7, time.Hour, 7000)
		want(t, g.next(), EventRegistered, "echo", 7, 0)
		if s := g.r.Stats(); s.ASAP.GraceRefused != 2 || s.PEs != 1 {
			t.Errorf("Stats: %+v", s)
		}
	})
}

// Issue finding 3: an association without PEs that sends nothing for
// IdleTimeout is aborted; a PE's association that answers keep-alives is
// not; a PE that stops answering is removed and its association aborted.
// On the old code all three stayed open.
func TestRegistrarAbortsIdleAndDeadAssociations(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const idle = 10 * time.Second
		g := newEventRig(t, 64, 2*time.Second, func(c *Config) { c.ASAP.IdleTimeout = idle })
		ctx := t.Context()
		pu := dial(t, ctx, g.net.NewNode(), g.r.Addr())
		honest := dial(t, ctx, g.net.NewNode(), g.r.Addr())
		g.register(honest, "echo", 1, time.Hour, 7000)
		want(t, g.next(), EventRegistered, "echo", 1, 0)
		acked := answer(honest)
		dead := dial(t, ctx, g.net.NewNode(), g.r.Addr())
		g.register(dead, "echo", 2, time.Hour, 7000)
		want(t, g.next(), EventRegistered, "echo", 2, 0)
		synctest.Wait()
		if s := g.r.Stats(); s.Associations != 3 {
			t.Fatalf("Stats: %+v", s)
		}
		start := time.Now()

		// The dead PE misses its first keep-alive (2 s + 2 s).
		ev := g.next()
		want(t, ev, EventRemoved, "echo", 2, RemovedKeepAliveTimeout)
		if !aborted(dead) {
			t.Fatal("dead PE's association not aborted")
		}
		// The silent pool user goes at IdleTimeout.
		if _, err := pu.recvWithin(ctx, time.Hour); err == nil {
			t.Fatal("idle association delivered a message")
		}
		if d := time.Since(start); d != idle {
			t.Errorf("idle association aborted after %v, want %v", d, idle)
		}
		time.Sleep(time.Minute) // virtual time (synctest bubble)
		synctest.Wait()
		s := g.r.Stats()
		if s.Associations != 1 || s.PEs != 1 || s.ASAP.IdleAborted != 1 || s.ASAP.KeepAliveAborted != 1 {
			t.Errorf("Stats: %+v", s)
		}
		honest.c.Close()
		<-acked
	})
}
