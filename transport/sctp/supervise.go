package sctp

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-rserpool/rserpool/transport"
)

// Path supervision defaults: the values RFC 9260 §16 suggests.
const (
	DefaultHeartbeatInterval     = 30 * time.Second // HB.interval
	DefaultRTOInitial            = 1 * time.Second  // RTO.Initial
	DefaultRTOMin                = 1 * time.Second  // RTO.Min
	DefaultRTOMax                = 60 * time.Second // RTO.Max
	DefaultAssociationMaxRetrans = 10               // Association.Max.Retrans
	DefaultPathMaxRetrans        = 5                // Path.Max.Retrans
)

// Supervision configures how an association watches its peer: the path
// heartbeat and failure detection of RFC 9260 §8.1-8.3, which pion/sctp
// v1.12.1 leaves out (it sends no HEARTBEAT on an idle association and
// retransmits DATA without limit). Its zero value is RFC 9260's defaults;
// [LANSupervision] is a profile for peers on one LAN.
//
// # What is counted
//
// The association keeps the error counter of RFC 9260 §8.1 and §8.2 (one
// counter: the association is single-homed, so its one path and the
// association fail together). The proof that the peer is alive is any
// packet received from it that carries the association's verification tag:
// a HEARTBEAT ACK, a SACK, DATA, anything. pion's own heartbeat and
// retransmission timers are not observed; the wrapper sees the packets.
//
//   - When nothing has arrived from the peer for HeartbeatInterval + RTO
//     (jittered by ±50% of RTO), and no HEARTBEAT was sent in that time,
//     the association sends a HEARTBEAT (RFC 9260 §8.3). It does so whether
//     or not DATA is outstanding: a live peer with DATA outstanding answers
//     with SACKs within its delayed-ack time, so the HEARTBEAT goes only to
//     a peer that has stopped answering, where RFC 9260 would count T3-rtx
//     expiries instead.
//   - A HEARTBEAT that nothing answers within one RTO increments the error
//     counter and doubles the RTO, up to RTOMax (RFC 9260 §6.3.3 E2, §8.3).
//   - Any packet from the peer clears the counter and the back-off (a
//     HEARTBEAT ACK or SACK, RFC 9260 §8.1, §8.3).
//   - When the counter exceeds min(AssociationMaxRetrans, PathMaxRetrans),
//     the association fails: it is aborted (an ABORT is sent, RFC 9260
//     §8.1) and its resources released, and Recv and Send fail with an
//     error that wraps [transport.ErrAssociationLost] and says the peer
//     stopped answering. Path.Max.Retrans takes part because with one
//     path, that path becoming inactive (§8.2) leaves nothing to send on;
//     RFC 9260 §8.2 also advises Association.Max.Retrans to be no larger
//     than the sum of Path.Max.Retrans over the peer's addresses.
//
// The RTO of a HEARTBEAT is computed from pion's smoothed round-trip time
// (which pion measures with the HEARTBEAT ACKs): 3·SRTT, which is SRTT +
// 4·RTTVAR with RTTVAR = SRTT/2 as for a first measurement (RFC 9260
// §6.3.1 C1), bounded by RTOMin and RTOMax; RTOInitial before any
// measurement. RTOMax also caps pion's own retransmission back-off.
//
// With the defaults and a round-trip time below 333 ms, a peer that
// vanishes silently is detected 275 s after its last packet without
// jitter: HEARTBEATs at 31, 63, 97, 135, 181 and 243 s, the sixth
// unanswered one timing out at 275 s; 306.5 s at most with jitter. With
// [LANSupervision] it is 7.4 s (HEARTBEATs at 1.2, 2.6, 4.4 and 6.4 s),
// 8.6 s at most. [Supervision.DetectionBound] computes the bound.
//
// The cost per association is one time.Timer, firing every
// HeartbeatInterval + RTO on an idle association; no goroutine waits on it.
// An off-path attacker who can send packets with the peer's address, both
// SCTP ports and the verification tag can keep a dead association alive,
// as it can for any SCTP implementation.
type Supervision struct {
	// HeartbeatInterval is HB.interval (RFC 9260 §8.3): how long the
	// association may go without hearing from the peer before it sends a
	// HEARTBEAT, plus one RTO. If zero, DefaultHeartbeatInterval (30 s,
	// RFC 9260 §16). Negative turns path supervision off: no HEARTBEAT is
	// sent and the association never fails for lack of answers (pion's
	// behaviour, leaving dead peers to the application's keep-alives).
	HeartbeatInterval time.Duration
	// RTOInitial is the RTO of HEARTBEATs before pion has measured a round
	// trip (RFC 9260 §6.3.1). If zero, DefaultRTOInitial (1 s, RFC 9260
	// §16). pion's own RTO.Initial is fixed at 1 s.
	RTOInitial time.Duration
	// RTOMin bounds the RTO of HEARTBEATs from below. If zero,
	// DefaultRTOMin (1 s, RFC 9260 §16). pion's own RTO.Min is fixed at
	// 1 s.
	RTOMin time.Duration
	// RTOMax bounds the RTO and its back-off from above, for HEARTBEATs and
	// for pion's retransmissions (DATA, INIT, COOKIE ECHO, SHUTDOWN). If
	// zero, DefaultRTOMax (60 s, RFC 9260 §16). An RTOMax below RTOMin is
	// taken as RTOMin.
	RTOMax time.Duration
	// AssociationMaxRetrans is Association.Max.Retrans (RFC 9260 §8.1). If
	// zero, DefaultAssociationMaxRetrans (10, RFC 9260 §16).
	AssociationMaxRetrans int
	// PathMaxRetrans is Path.Max.Retrans (RFC 9260 §8.2). If zero,
	// DefaultPathMaxRetrans (5, RFC 9260 §16).
	PathMaxRetrans int
}

// LANSupervision returns a path supervision profile for peers on one LAN
// (round trips well below 100 ms): HB.interval 1 s, RTO.Initial and
// RTO.Min 200 ms, RTO.Max 1 s, Association.Max.Retrans and
// Path.Max.Retrans 3. A peer that vanishes silently is detected 7.4 s after
// its last packet without jitter, 8.6 s at most with it
// ([Supervision.DetectionBound]), at the cost of one HEARTBEAT per second
// and direction on an idle association. Like any short RTO.Min it fails
// associations over paths with round trips or losses that need more time.
func LANSupervision() Supervision {
	return Supervision{
		HeartbeatInterval:     1 * time.Second,
		RTOInitial:            200 * time.Millisecond,
		RTOMin:                200 * time.Millisecond,
		RTOMax:                1 * time.Second,
		AssociationMaxRetrans: 3,
		PathMaxRetrans:        3,
	}
}

// Enabled reports whether s supervises the path at all.
func (s Supervision) Enabled() bool { return s.HeartbeatInterval >= 0 }

func (s Supervision) withDefaults() Supervision {
	if s.HeartbeatInterval == 0 {
		s.HeartbeatInterval = DefaultHeartbeatInterval
	}
	if s.RTOInitial <= 0 {
		s.RTOInitial = DefaultRTOInitial
	}
	if s.RTOMin <= 0 {
		s.RTOMin = DefaultRTOMin
	}
	if s.RTOMax <= 0 {
		s.RTOMax = DefaultRTOMax
	}
	if s.RTOMax < s.RTOMin {
		s.RTOMax = s.RTOMin
	}
	if s.AssociationMaxRetrans <= 0 {
		s.AssociationMaxRetrans = DefaultAssociationMaxRetrans
	}
	if s.PathMaxRetrans <= 0 {
		s.PathMaxRetrans = DefaultPathMaxRetrans
	}
	return s
}

// maxRetrans is the error count the association may reach without failing.
func (s Supervision) maxRetrans() int { return min(s.AssociationMaxRetrans, s.PathMaxRetrans) }

// DetectionBound returns the longest time from the last packet of a peer
// that then vanished silently until the association fails, with the worst
// jitter and a round-trip time small enough that the RTO is RTOInitial
// and RTOMin (true on a LAN for the defaults and for [LANSupervision]). It
// returns 0 when supervision is off.
func (s Supervision) DetectionBound() time.Duration {
	return s.detectionTime(func() float64 { return 0.5 })
}

// detectionTime runs probeState against a peer that never answers.
func (s Supervision) detectionTime(jitter func() float64) time.Duration {
	if !s.Enabled() {
		return 0
	}
	var t0 time.Time
	st := newProbeState(s, t0, jitter)
	now := t0
	for {
		act, next := st.timeout(now)
		if act == probeFail {
			return now.Sub(t0)
		}
		now = next
	}
}

// probeState is the sans-I/O core of path supervision (RFC 9260 §8.1-8.3)
// for one single-homed association. Its inputs are the time the latest
// packet from the peer was received, pion's smoothed RTT, and the timer's
// expiries, each with an explicit now; its outputs are "send a HEARTBEAT"
// and "the association failed", and the time of the next expiry.
type probeState struct {
	p      Supervision    // with defaults
	jitter func() float64 // in [-0.5, 0.5]; nil means none

	lastRecv  time.Time     // latest packet from the peer
	lastProbe time.Time     // latest HEARTBEAT sent; zero before the first
	probeRTO  time.Duration // RTO of the outstanding HEARTBEAT; 0 if none
	srtt      time.Duration // pion's smoothed RTT; 0 before a measurement
	errors    int           // RFC 9260 §8.1 error counter
	jit       float64       // jitter of the next HEARTBEAT, in RTOs
	failedAt  time.Time     // when timeout returned probeFail
}

type probeAction uint8

const (
	probeNone      probeAction = iota
	probeHeartbeat             // send a HEARTBEAT now
	probeFail                  // the peer stopped answering: fail the association
)

// newProbeState starts supervision of an association established at now.
// jitter returns a uniformly random number in [-0.5, 0.5], the jitter of
// a HEARTBEAT in RTOs; nil means none.
func newProbeState(p Supervision, now time.Time, jitter func() float64) *probeState {
	s := &probeState{p: p.withDefaults(), jitter: jitter, lastRecv: now}
	s.drawJitter()
	return s
}

func (s *probeState) drawJitter() {
	s.jit = 0
	if s.jitter != nil {
		s.jit = s.jitter()
	}
}

// received notes a packet from the peer received at at.
func (s *probeState) received(at time.Time) {
	if at.After(s.lastRecv) {
		s.lastRecv = at
	}
}

// setSRTT notes pion's smoothed round-trip time; 0 means not measured.
func (s *probeState) setSRTT(d time.Duration) { s.srtt = d }

// rto is the current RTO: the base from the RTT, backed off once per
// unanswered HEARTBEAT.
func (s *probeState) rto() time.Duration {
	base := s.p.RTOInitial
	if s.srtt > 0 {
		base = 3 * s.srtt
	}
	rto := min(max(base, s.p.RTOMin), s.p.RTOMax)
	for range s.errors {
		if rto >= s.p.RTOMax {
			break
		}
		rto *= 2
	}
	return min(rto, s.p.RTOMax)
}

// timeout runs the timer's expiry at now and returns what to do and when
// to call timeout next.
func (s *probeState) timeout(now time.Time) (probeAction, time.Time) {
	if s.probeRTO > 0 {
		switch {
		case !s.lastRecv.Before(s.lastProbe):
			s.probeRTO = 0 // answered
		case now.Before(s.lastProbe.Add(s.probeRTO)):
			return probeNone, s.lastProbe.Add(s.probeRTO)
		default:
			s.probeRTO = 0
			s.errors++
			if s.errors > s.p.maxRetrans() {
				s.failedAt = now
				return probeFail, time.Time{}
			}
		}
	}
	if s.errors > 0 && !s.lastRecv.Before(s.lastProbe) {
		s.errors = 0 // heard from the peer since the last HEARTBEAT
	}
	idle := s.lastRecv
	if s.lastProbe.After(idle) {
		idle = s.lastProbe
	}
	rto := s.rto()
	due := idle.Add(s.p.HeartbeatInterval + rto + time.Duration(s.jit*float64(rto)))
	if now.Before(due) {
		return probeNone, due
	}
	s.lastProbe, s.probeRTO = now, rto
	s.drawJitter()
	return probeHeartbeat, now.Add(rto)
}

// failure describes why the association failed.
func (s *probeState) failure() error {
	return fmt.Errorf("%w: peer stopped answering: %d HEARTBEATs unanswered, nothing received from it for %v (RFC 9260 §8.1)",
		transport.ErrAssociationLost, s.errors, s.failedAt.Sub(s.lastRecv).Round(time.Millisecond))
}

// monoEpoch is the origin of the monotonic timestamps that the net.Conns
// under associations record for every packet received.
var monoEpoch = time.Now()

func monoNow() int64 { return int64(time.Since(monoEpoch)) }

func monoTime(stamp int64) time.Time { return monoEpoch.Add(time.Duration(stamp)) }

// liveness is kept by the net.Conn under an association (dialConn,
// pktConn): when the latest packet from the peer that carried the
// association's verification tag arrived. The tag is learnt from the first
// packet that carries one (the INIT ACK or COOKIE ECHO of the handshake),
// and learnt again after an INIT (an association restart, RFC 9260 §5.2).
// Only the goroutine that reads the peer's packets calls seen.
type liveness struct {
	last atomic.Int64 // monoNow() of the latest packet; 0 before any
	vtag uint32       // the association's tag; 0 until learnt
}

// seen notes a packet received from the peer.
func (l *liveness) seen(pkt []byte) {
	if len(pkt) < commonHeaderSize+chunkHeaderSize {
		return
	}
	tag := binary.BigEndian.Uint32(pkt[4:])
	switch {
	case tag == 0:
		if pkt[commonHeaderSize] == chunkInit {
			l.vtag = 0
		}
		return
	case l.vtag == 0:
		l.vtag = tag
	case tag != l.vtag:
		return
	}
	l.last.Store(monoNow())
}

func (l *liveness) lastReceived() int64 { return l.last.Load() }

// supervisor drives one association's probeState with one time.Timer.
type supervisor struct {
	c *Conn

	mu      sync.Mutex
	st      *probeState
	timer   *time.Timer
	stopped bool
	failing chan struct{} // closed when the failure's abort is done; nil unless failing
}

// startSupervision starts path supervision of c, unless it is turned off.
func (c *Conn) startSupervision() {
	p := c.cfg.Supervision
	if !p.Enabled() {
		return
	}
	now := time.Now()
	s := &supervisor{c: c, st: newProbeState(p, now, randomJitter)}
	s.received()
	_, next := s.st.timeout(now)
	s.mu.Lock()
	s.timer = time.AfterFunc(next.Sub(now), s.fire)
	s.mu.Unlock()
	c.sup = s
}

func randomJitter() float64 { return rand.Float64() - 0.5 }

// received feeds the latest packet time and pion's SRTT to the state.
func (s *supervisor) received() {
	if stamp := s.c.wire.lastReceived(); stamp != 0 {
		s.st.received(monoTime(stamp))
	}
	s.st.setSRTT(time.Duration(s.c.assoc.SRTT() * float64(time.Millisecond)))
}

// fire is the timer's function.
func (s *supervisor) fire() {
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		return
	}
	s.received()
	now := time.Now()
	act, next := s.st.timeout(now)
	switch act {
	case probeHeartbeat:
		s.c.assoc.ActiveHeartbeat()
	case probeFail:
		s.stopped = true
		s.failing = make(chan struct{})
		err := s.st.failure()
		s.mu.Unlock()
		s.c.supervisionFailed(err)
		close(s.failing)
		return
	}
	s.timer.Reset(next.Sub(now))
	s.mu.Unlock()
}

// stop ends supervision; it does not wait for a failure being handled.
func (s *supervisor) stop() {
	if s == nil {
		return
	}
	s.mu.Lock()
	s.stopped = true
	s.timer.Stop()
	s.mu.Unlock()
}

// wait stops supervision and waits until a failure it found, if any, has
// been handled.
func (s *supervisor) wait() {
	if s == nil {
		return
	}
	s.stop()
	s.mu.Lock()
	failing := s.failing
	s.mu.Unlock()
	if failing != nil {
		<-failing
	}
}

// pionRTOMax is pion's RTO.Max in milliseconds: the supervision's RTOMax,
// or pion's default (60 s, RFC 9260 §16) when supervision is off.
func (c *Config) pionRTOMax() float64 {
	if !c.Supervision.Enabled() {
		return 0
	}
	return float64(c.Supervision.withDefaults().RTOMax) / float64(time.Millisecond)
}
