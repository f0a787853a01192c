package sctp

import (
	"context"
	"encoding/binary"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/go-rserpool/rserpool/transport"
)

// silentTimeline drives a probeState against a peer that never answers,
// starting at its last packet, and returns when each HEARTBEAT went out
// and when the association failed, as offsets from that packet.
func silentTimeline(t *testing.T, p Supervision, jitter func() float64) (beats []time.Duration, failed time.Duration, st *probeState) {
	t.Helper()
	var t0 time.Time
	st = newProbeState(p, t0, jitter)
	now := t0
	for range 100 {
		act, next := st.timeout(now)
		switch act {
		case probeHeartbeat:
			beats = append(beats, now.Sub(t0))
		case probeFail:
			return beats, now.Sub(t0), st
		}
		if !next.After(now) {
			t.Fatalf("timeout at %v asked to be called again at %v", now.Sub(t0), next.Sub(t0))
		}
		now = next
	}
	t.Fatal("no failure after 100 expiries")
	return nil, 0, nil
}

func secs(ds ...float64) []time.Duration {
	out := make([]time.Duration, len(ds))
	for i, d := range ds {
		out[i] = time.Duration(d * float64(time.Second))
	}
	return out
}

func equalDurations(a, b []time.Duration) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// RFC 9260 §8.3: on an idle path a HEARTBEAT goes out every RTO +
// HB.interval, the RTO doubling (up to RTO.Max) after each unanswered one;
// §8.1/§8.2: the association fails when the error counter exceeds the
// limit, here min(Association.Max.Retrans, Path.Max.Retrans) = 5 with the
// defaults of RFC 9260 §16. No jitter: the timeline is exact.
func TestProbeStateSilentPeerDefaults(t *testing.T) {
	beats, failed, st := silentTimeline(t, Supervision{}, nil)
	if want := secs(31, 63, 97, 135, 181, 243); !equalDurations(beats, want) {
		t.Errorf("HEARTBEATs at %v, want %v", beats, want)
	}
	if want := 275 * time.Second; failed != want {
		t.Errorf("failed %v after the last packet, want %v", failed, want)
	}
	if st.errors != 6 {
		t.Errorf("error counter %d at failure, want 6 (> Path.Max.Retrans 5)", st.errors)
	}
	err := st.failure()
	if !errors.Is(err, transport.ErrAssociationLost) || !strings.Contains(err.Error(), "peer stopped answering") {
		t.Errorf("failure() = %v, want ErrAssociationLost saying the peer stopped answering", err)
	}
	if got, want := (Supervision{}).DetectionBound(), 306500*time.Millisecond; got != want {
		t.Errorf("DetectionBound() = %v, want %v", got, want)
	}
}

func TestProbeStateSilentPeerLAN(t *testing.T) {
	beats, failed, st := silentTimeline(t, LANSupervision(), nil)
	if want := secs(1.2, 2.6, 4.4, 6.4); !equalDurations(beats, want) {
		t.Errorf("HEARTBEATs at %v, want %v", beats, want)
	}
	if want := 7400 * time.Millisecond; failed != want {
		t.Errorf("failed %v after the last packet, want %v", failed, want)
	}
	if st.errors != 4 {
		t.Errorf("error counter %d at failure, want 4 (> Max.Retrans 3)", st.errors)
	}
	if got, want := LANSupervision().DetectionBound(), 8600*time.Millisecond; got != want {
		t.Errorf("DetectionBound() = %v, want %v", got, want)
	}
	// The worst jitter gives the bound; the best gives less than no jitter.
	if _, worst, _ := silentTimeline(t, LANSupervision(), func() float64 { return 0.5 }); worst != LANSupervision().DetectionBound() {
		t.Errorf("worst jitter fails at %v, DetectionBound says %v", worst, LANSupervision().DetectionBound())
	}
	if _, best, _ := silentTimeline(t, LANSupervision(), func() float64 { return -0.5 }); best >= failed {
		t.Errorf("best jitter fails at %v, not before %v", best, failed)
	}
}

// Association.Max.Retrans below Path.Max.Retrans is the limit then.
func TestProbeStateAssociationLimit(t *testing.T) {
	p := LANSupervision()
	p.AssociationMaxRetrans, p.PathMaxRetrans = 1, 7
	beats, _, st := silentTimeline(t, p, nil)
	if len(beats) != 2 || st.errors != 2 {
		t.Errorf("%d HEARTBEATs, error counter %d at failure; want 2 and 2", len(beats), st.errors)
	}
}

// RFC 9260 §8.1, §8.3: an answer clears the error counter and the RTO
// back-off; a peer that keeps sending is never probed.
func TestProbeStateAnswerClears(t *testing.T) {
	p := LANSupervision()
	var t0 time.Time
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	st := newProbeState(p, t0, nil)

	// Unanswered HEARTBEATs at 1.2 and 2.6 s.
	for _, step := range []struct {
		now  float64
		act  probeAction
		next float64
	}{
		{0, probeNone, 1.2},
		{1.2, probeHeartbeat, 1.4},
		{1.4, probeNone, 2.6}, // timed out: error 1, RTO 400 ms
		{2.6, probeHeartbeat, 3.0},
	} {
		act, next := st.timeout(at(step.now))
		if act != step.act || !next.Equal(at(step.next)) {
			t.Fatalf("timeout(%vs) = %d, next %v; want %d, next %vs", step.now, act, next.Sub(t0), step.act, step.next)
		}
	}
	if st.errors != 1 {
		t.Fatalf("error counter %d after one timed-out HEARTBEAT, want 1", st.errors)
	}
	// The peer answers the second HEARTBEAT.
	st.received(at(2.7))
	act, next := st.timeout(at(3.0))
	if act != probeNone || st.errors != 0 {
		t.Fatalf("after the answer: action %d, error counter %d; want none, 0", act, st.errors)
	}
	if want := at(2.7 + 1.2); !next.Equal(want) { // RTO back at 200 ms
		t.Errorf("next HEARTBEAT at %v, want %v (HB.interval + RTO.Min after the answer)", next.Sub(t0), want.Sub(t0))
	}
	// A peer that sends every 500 ms is never probed.
	for now := 3.0; now < 60; now += 0.5 {
		st.received(at(now))
		if act, _ := st.timeout(at(now)); act != probeNone {
			t.Fatalf("HEARTBEAT at %vs although the peer sent 0 s ago", now)
		}
	}
}

// The RTO follows pion's smoothed RTT (3·SRTT, RFC 9260 §6.3.1 C1) within
// RTO.Min and RTO.Max.
func TestProbeStateRTO(t *testing.T) {
	st := newProbeState(Supervision{}, time.Time{}, nil)
	for _, c := range []struct{ srtt, want time.Duration }{
		{0, DefaultRTOInitial},
		{10 * time.Millisecond, DefaultRTOMin},
		{2 * time.Second, 6 * time.Second},
		{time.Minute, DefaultRTOMax},
	} {
		st.setSRTT(c.srtt)
		if got := st.rto(); got != c.want {
			t.Errorf("SRTT %v: RTO %v, want %v", c.srtt, got, c.want)
		}
	}
}

func TestSupervisionOff(t *testing.T) {
	off := Supervision{HeartbeatInterval: -1}
	if off.Enabled() || off.DetectionBound() != 0 {
		t.Errorf("negative HeartbeatInterval: Enabled %v, DetectionBound %v; want off", off.Enabled(), off.DetectionBound())
	}
	cfg := New(Config{Supervision: off}).cfg
	if cfg.pionRTOMax() != 0 {
		t.Errorf("supervision off sets pion's RTO.Max to %v ms, want pion's default", cfg.pionRTOMax())
	}
	if got := New(Config{Supervision: LANSupervision()}).cfg.pionRTOMax(); got != 1000 {
		t.Errorf("LAN profile: pion RTO.Max %v ms, want 1000", got)
	}
}

// Only packets with the association's verification tag prove the peer
// alive; the tag is learnt from the handshake and again after an INIT.
func TestLiveness(t *testing.T) {
	pkt := func(tag uint32, chunk byte) []byte {
		b := make([]byte, commonHeaderSize+chunkHeaderSize)
		binary.BigEndian.PutUint32(b[4:], tag)
		b[commonHeaderSize] = chunk
		return b
	}
	var l liveness
	l.seen(pkt(0, chunkInit))
	if l.lastReceived() != 0 {
		t.Error("an INIT (tag 0) counted as proof of life")
	}
	l.seen(pkt(7, chunkCookieEcho))
	first := l.lastReceived()
	if first == 0 {
		t.Fatal("the first packet with a tag did not count")
	}
	l.last.Store(1)
	l.seen(pkt(8, 3))
	if l.lastReceived() != 1 {
		t.Error("a packet with another tag counted")
	}
	l.seen(pkt(7, 3))
	if l.lastReceived() == 1 {
		t.Error("a packet with the tag did not count")
	}
	l.seen(pkt(0, chunkInit)) // restart: a new tag follows
	l.last.Store(1)
	l.seen(pkt(9, chunkCookieEcho))
	if l.lastReceived() == 1 {
		t.Error("the new tag after an INIT was not learnt")
	}
	l.seen([]byte{1, 2, 3}) // too short: ignored, no panic
}

// cutConn drops every datagram written while cut is set, and counts the
// HEARTBEAT chunks (type 4) that start the datagrams it passes.
type cutConn struct {
	*memPacketConn
	cut   *atomic.Bool
	beats atomic.Int32
}

const chunkHeartbeat = 4

func (c *cutConn) Write(p []byte) (int, error) {
	if c.cut.Load() {
		return len(p), nil
	}
	if typ, ok := firstChunkType(p); ok && typ == chunkHeartbeat {
		c.beats.Add(1)
	}
	return c.memPacketConn.Write(p)
}

// supervisedPair returns two established Conns over an in-memory pipe that
// cut silences in both directions, as if the peer's host vanished. Call it
// inside a synctest bubble.
func supervisedPair(t *testing.T, sup Supervision) (c, s *Conn, cw, sw *cutConn, cut *atomic.Bool) {
	t.Helper()
	a, b := memPacketPipe()
	cut = new(atomic.Bool)
	cw, sw = &cutConn{memPacketConn: a, cut: cut}, &cutConn{memPacketConn: b, cut: cut}
	c, s, _, _ = pairOver(t, Config{Supervision: sup}, cw, sw)
	return c, s, cw, sw, cut
}

// A peer that vanishes silently (its host killed or cut off: nothing
// answers, not even an ICMP error) is detected: Recv fails with
// ErrAssociationLost saying the peer stopped answering, within the
// profile's bound of fake time, and the association's goroutines end
// (synctest.Test fails if any is left). Before path supervision pion sent
// nothing on the idle association and the Conn stayed open for ever; the
// "off" case shows that behaviour, still open after an hour.
func TestSuperviseSilentPeer(t *testing.T) {
	for _, tc := range []struct {
		name string
		sup  Supervision
	}{
		{"defaults", Supervision{}},
		{"lan", LANSupervision()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				c, s, _, _, cut := supervisedPair(t, tc.sup)
				synctest.Wait()
				cut.Store(true)
				start := time.Now()
				_, err := c.Recv(context.Background())
				took := time.Since(start)
				t.Logf("%s: silent peer detected after %v of fake time (bound %v)", tc.name, took, tc.sup.DetectionBound())
				if !errors.Is(err, transport.ErrAssociationLost) || !strings.Contains(err.Error(), "peer stopped answering") {
					t.Errorf("Recv = %v, want ErrAssociationLost: peer stopped answering", err)
				}
				if took > tc.sup.DetectionBound() {
					t.Errorf("detected after %v, beyond the bound %v", took, tc.sup.DetectionBound())
				}
				if err := c.Send(context.Background(), transport.Message{PPID: 11, Data: []byte("x")}); !errors.Is(err, transport.ErrAssociationLost) {
					t.Errorf("Send after the failure = %v, want ErrAssociationLost", err)
				}
				// The other side lost its peer as well.
				if _, err := s.Recv(context.Background()); !errors.Is(err, transport.ErrAssociationLost) {
					t.Errorf("other side's Recv = %v, want ErrAssociationLost", err)
				}
				if err := c.Close(); err != nil {
					t.Errorf("Close after the failure: %v", err)
				}
				_ = s.Close()
			})
		})
	}
	t.Run("off", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			c, s, cw, _, cut := supervisedPair(t, Supervision{HeartbeatInterval: -1})
			synctest.Wait()
			cut.Store(true)
			ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
			defer cancel()
			if _, err := c.Recv(ctx); !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("supervision off: Recv = %v, want it still waiting after an hour", err)
			}
			if n := cw.beats.Load(); n != 0 {
				t.Errorf("supervision off: %d HEARTBEATs sent", n)
			}
			_ = c.Abort()
			_ = s.Abort()
		})
	})
}

// RFC 9260 §8.3: an idle association whose peer answers is probed every
// HB.interval + RTO and stays up; both sides probe (so a PU that only
// resolves, and a registrar with only idle PU associations, notice a dead
// peer too).
func TestSuperviseIdleAssociationStaysUp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, s, cw, sw, _ := supervisedPair(t, LANSupervision())
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if _, err := c.Recv(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("idle association with a live peer: Recv = %v, want it open after a minute", err)
		}
		// Each side probes about once per 1.2 s of silence; answers to
		// the other side's HEARTBEATs count as traffic, so fewer.
		if n, m := cw.beats.Load(), sw.beats.Load(); n+m < 20 || n+m > 100 {
			t.Errorf("HEARTBEATs in a minute: %d and %d, want about one per 1.2 s between them", n, m)
		}
		if err := c.Send(context.Background(), transport.Message{PPID: 11, Data: []byte("still here")}); err != nil {
			t.Fatal(err)
		}
		if m, err := s.Recv(context.Background()); err != nil || string(m.Data) != "still here" {
			t.Fatalf("Recv after a minute idle = %q, %v", m.Data, err)
		}
		if err := c.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		_ = s.Close()
	})
}

// A peer that stops answering while DATA is outstanding: pion retransmits
// without limit, supervision fails the association; Send, blocked on a
// full send buffer, returns.
func TestSuperviseSilentPeerWithDataOutstanding(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, s, _, _, cut := supervisedPair(t, LANSupervision())
		synctest.Wait()
		cut.Store(true)
		start := time.Now()
		data := make([]byte, 60000)
		var err error
		for i := 0; i < 100 && err == nil; i++ {
			err = c.Send(context.Background(), transport.Message{PPID: 11, Data: data})
		}
		if !errors.Is(err, transport.ErrAssociationLost) {
			t.Errorf("Send to a vanished peer = %v, want ErrAssociationLost", err)
		}
		if took := time.Since(start); took > LANSupervision().DetectionBound() {
			t.Errorf("failed after %v, beyond the bound %v", took, LANSupervision().DetectionBound())
		}
		_ = c.Close()
		_ = s.Close()
	})
}
