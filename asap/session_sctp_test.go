package asap

import (
	"context"
	"testing"
	"time"

	"github.com/go-rserpool/rserpool/internal/leakcheck"
	"github.com/go-rserpool/rserpool/transport/sctp"
)

// lanRequestTimeout is the request deadline of the LAN-tuned runs: a few
// times a loaded LAN's round trip, as sctp.LANSupervision's RTO.Min.
const lanRequestTimeout = 200 * time.Millisecond

// Failover over loopback SCTP (RFC 5352 §3.5, §3.10) with a real crash (the
// PE's associations aborted, its port closed) and a hang (the PE reads and
// never answers), with default timers (RFC 9260 §16 path supervision,
// DefaultRequestTimeout) and LAN-tuned ones (sctp.LANSupervision, a 200 ms
// request deadline). Each run asserts that the request in flight is
// answered by the other PE, which saw ASAP_COOKIE_ECHO first and carried
// the counter on; it logs the failover time, from the PE's death to that
// answer, and never asserts on it. The default hang waits the full 5 s
// deadline and is skipped with -short.
func TestSessionFailoverTimeSCTP(t *testing.T) {
	for _, tc := range []struct {
		name    string
		hang    bool
		sup     sctp.Supervision
		timeout time.Duration
	}{
		{"crash/timers=default", false, sctp.Supervision{}, 0},
		{"crash/timers=lan", false, sctp.LANSupervision(), lanRequestTimeout},
		{"hang/timers=default", true, sctp.Supervision{}, 0},
		{"hang/timers=lan", true, sctp.LANSupervision(), lanRequestTimeout},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.hang && tc.timeout == 0 && testing.Short() {
				t.Skip("waits DefaultRequestTimeout")
			}
			leakcheck.Check(t)
			env := sctpSessEnv(t, 2, tc.sup)
			defer env.close()
			pu := env.newPU(t)
			defer pu.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			events := make(chan SessionEvent, 16)
			s, err := pu.Connect(ctx, []byte("echo"), SessionConfig{Events: events, RequestTimeout: tc.timeout})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			first, _ := s.PE()
			for seq := 1; seq <= 3; seq++ {
				if n, _, err := inc(ctx, s, seq); err != nil || n != seq {
					t.Fatalf("request %d: %d, %v", seq, n, err)
				}
			}
			dead := env.byID(first.ID)
			start := time.Now()
			if tc.hang {
				dead.hang()
			} else {
				dead.crash()
			}
			n, pe, err := inc(ctx, s, 4)
			took := time.Since(start)
			if err != nil || n != 4 || pe == first.ID {
				t.Fatalf("after the %s: n=%d from PE %d, %v; want 4 from the other PE", tc.name, n, pe, err)
			}
			var fe FailoverEvent
			for e := range events {
				if f, ok := e.(FailoverEvent); ok {
					fe = f
					break
				}
			}
			want := ReasonAssociationLost
			if tc.hang {
				want = ReasonRequestTimeout
			}
			if (fe.Reason != want && !(want == ReasonAssociationLost && fe.Reason == ReasonSendFailed)) || !fe.CookieEchoed || fe.New.ID != pe {
				t.Fatalf("failover event %+v", fe)
			}
			if f := env.byID(pe).firstMessages(); len(f) == 0 || f[len(f)-1] != "echo:3 3" {
				t.Fatalf("the new PE's first messages %v", f)
			}
			t.Logf("failover %s: PE death to first answer on the new PE %v (detection to new association %v, reason %v)",
				tc.name, took.Round(10*time.Microsecond), fe.Duration.Round(10*time.Microsecond), fe.Reason)
		})
	}
}
