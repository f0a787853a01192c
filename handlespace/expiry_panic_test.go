package handlespace

import (
	"testing"
	"time"

	"github.com/go-rserpool/rserpool/tlv"
)

// A PopExpired callback that panics (and a host that recovers) leaves the
// Store consistent on both paths, one by one and in one pass: every PE
// still expires later, and no stale heap position or per-pool count
// breaks a later registration or drops PEs that are not due.
func TestPopExpiredCallbackPanic(t *testing.T) {
	for _, noBulk := range []bool{true, false} {
		name := map[bool]string{true: "one-by-one", false: "bulk"}[noBulk]
		t.Run(name+"/expire-later", func(t *testing.T) {
			s := newTestStore(t, Config{})
			s.noBulk = noBulk
			for i := uint32(1); i <= 100; i++ {
				mustRegister(t, s, "p", testPE(i, 1), t0.Add(time.Duration(i)*time.Millisecond))
			}
			calls := 0
			func() {
				defer func() { _ = recover() }()
				s.PopExpired(t0.Add(time.Second), func(tlv.PoolHandle, tlv.PoolElement) {
					if calls++; calls == 3 {
						panic("callback")
					}
				})
			}()
			s.PopExpired(t0.Add(time.Second), nil)
			if s.PEs() != 0 {
				_, ok := s.NextExpiry()
				t.Errorf("after a panicking callback %d PEs left (NextExpiry set: %v), want none", s.PEs(), ok)
			}
		})
		t.Run(name+"/register-after", func(t *testing.T) {
			s := newTestStore(t, Config{})
			s.noBulk = noBulk
			for i := uint32(1); i <= 100; i++ {
				mustRegister(t, s, "p", testPE(i, 1), t0.Add(time.Duration(i)*time.Millisecond))
			}
			func() {
				defer func() { _ = recover() }()
				s.PopExpired(t0.Add(time.Second), func(tlv.PoolHandle, tlv.PoolElement) { panic("callback") })
			}()
			for i := uint32(1); i <= 150; i++ { // 50 due at 2 s, 100 at 10 s
				d := 10 * time.Second
				if i <= 50 {
					d = 2 * time.Second
				}
				mustRegister(t, s, "p", testPE(i, 1), t0.Add(d))
			}
			if n := s.PopExpired(t0.Add(2*time.Second), nil); n != 50 || s.PEs() != 100 {
				t.Fatalf("at 2 s removed %d, %d PEs left; want 50 removed, 100 left", n, s.PEs())
			}
		})
	}
}
