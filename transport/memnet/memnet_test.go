package memnet_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/go-rserpool/rserpool/internal/leakcheck"
	"github.com/go-rserpool/rserpool/transport"
	"github.com/go-rserpool/rserpool/transport/memnet"
)

var group = netip.MustParseAddrPort("239.0.0.50:3863")

// cancelled is a context that has ended: Recv with it only looks at what
// has arrived.
var cancelled = func() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}()

type world struct {
	net       *memnet.Network
	reg       *memnet.Node
	l         transport.Listener
	pes       []*memnet.Node
	cs, ss    []transport.Conn // client and server ends, per PE
	anns      []transport.Announcer
	trace     []string
	regAnnRcv transport.Announcer
}

// newWorld builds a registrar and n PEs in step mode: each PE has one
// association to the registrar and every node joins the announce group.
func newWorld(t *testing.T, seed int64, n int, link memnet.Link, opts ...memnet.Option) *world {
	t.Helper()
	w := &world{}
	opts = append([]memnet.Option{memnet.StepMode(), memnet.WithLink(link), memnet.WithRTO(10 * time.Millisecond),
		memnet.WithTrace(func(e memnet.TraceEvent) { w.trace = append(w.trace, e.String()) })}, opts...)
	w.net = memnet.New(seed, opts...)
	t.Cleanup(func() { w.net.Close() })
	w.reg = w.net.NewNode()
	var err error
	if w.l, err = w.reg.Listen(w.reg.Addr(transport.PortASAP)); err != nil {
		t.Fatal(err)
	}
	if w.regAnnRcv, err = w.net.JoinGroup(w.reg, group); err != nil {
		t.Fatal(err)
	}
	for range n {
		pe := w.net.NewNode()
		c, err := pe.Dial(context.Background(), w.l.Addr())
		if err != nil {
			t.Fatal(err)
		}
		s, err := w.l.Accept(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		a, err := w.net.JoinGroup(pe, group)
		if err != nil {
			t.Fatal(err)
		}
		w.pes, w.cs, w.ss, w.anns = append(w.pes, pe), append(w.cs, c), append(w.ss, s), append(w.anns, a)
	}
	return w
}

func msg(pe, stream, seq int) transport.Message {
	return transport.Message{PPID: transport.PPIDASAP, Stream: uint16(stream), Data: []byte(fmt.Sprintf("%d/%d/%d", pe, stream, seq))}
}

// drain receives everything that has arrived on c.
func drain(c transport.Conn) (msgs []transport.Message, err error) {
	for {
		m, err := c.Recv(cancelled)
		if err != nil {
			if errors.Is(err, context.Canceled) {
				err = nil
			}
			return msgs, err
		}
		msgs = append(msgs, m)
	}
}

// checkInOrder asserts that got holds, for each stream, exactly the
// messages msg(pe, stream, 0..perStream-1) in order (RFC 9260 §6.6).
func checkInOrder(t *testing.T, pe int, got []transport.Message, streams, perStream int) {
	t.Helper()
	next := make([]int, streams)
	for _, m := range got {
		want := msg(pe, int(m.Stream), next[m.Stream])
		if string(m.Data) != string(want.Data) {
			t.Fatalf("PE %d stream %d: got %q, want %q", pe, m.Stream, m.Data, want.Data)
		}
		next[m.Stream]++
	}
	for s, k := range next {
		if k != perStream {
			t.Fatalf("PE %d stream %d: %d messages arrived, want %d", pe, s, k, perStream)
		}
	}
}

// scenario runs a fixed workload over lossy, jittery links and returns the
// delivery trace.
func scenario(t *testing.T, seed int64) []string {
	w := newWorld(t, seed, 3, memnet.Link{Loss: 0.3, Delay: time.Millisecond, Jitter: 5 * time.Millisecond})
	const streams, perStream = 3, 20
	for i := range perStream {
		for pe, c := range w.cs {
			for s := range streams {
				if err := c.Send(context.Background(), msg(pe, s, i)); err != nil {
					t.Fatal(err)
				}
			}
			if err := w.anns[pe].Send(context.Background(), []byte{byte(pe), byte(i)}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if w.net.StepAll() == 0 {
		t.Fatal("StepAll delivered nothing")
	}
	for pe, s := range w.ss {
		got, err := drain(s)
		if err != nil {
			t.Fatal(err)
		}
		checkInOrder(t, pe, got, streams, perStream)
	}
	return w.trace
}

// Same seed, same calls: the same trace, event by event. Another seed
// gives another trace, so the comparison can tell.
func TestDeterministicTrace(t *testing.T) {
	leakcheck.Check(t)
	a, b := scenario(t, 7), scenario(t, 7)
	if !slices.Equal(a, b) {
		for i := range min(len(a), len(b)) {
			if a[i] != b[i] {
				t.Fatalf("traces differ at event %d:\n%s\n%s", i, a[i], b[i])
			}
		}
		t.Fatalf("traces differ in length: %d and %d", len(a), len(b))
	}
	if c := scenario(t, 8); slices.Equal(a, c) {
		t.Fatal("seeds 7 and 8 gave the same trace: the seed does not reach the random choices")
	}
}

// Step mode delivers nothing by itself; Step delivers one event.
func TestStepMode(t *testing.T) {
	leakcheck.Check(t)
	w := newWorld(t, 1, 1, memnet.Link{})
	if err := w.cs[0].Send(context.Background(), msg(0, 0, 0)); err != nil {
		t.Fatal(err)
	}
	if got, _ := drain(w.ss[0]); len(got) != 0 {
		t.Fatalf("delivered before Step: %d messages", len(got))
	}
	if n := w.net.Pending(); n != 1 {
		t.Fatalf("Pending = %d, want 1", n)
	}
	if !w.net.Step() {
		t.Fatal("Step found nothing to deliver")
	}
	if got, _ := drain(w.ss[0]); len(got) != 1 {
		t.Fatalf("after Step got %d messages, want 1", len(got))
	}
	if w.net.Step() {
		t.Fatal("Step delivered something from an empty queue")
	}
}

// RFC 9260 §6.3: SCTP retransmits lost DATA, so loss on an association
// shows up as delay, never as a missing or reordered message.
func TestAssociationLossIsDelay(t *testing.T) {
	leakcheck.Check(t)
	w := newWorld(t, 3, 1, memnet.Link{Loss: 0.5, Delay: time.Millisecond})
	start := w.net.Now()
	const perStream = 100
	for i := range perStream {
		if err := w.cs[0].Send(context.Background(), msg(0, 0, i)); err != nil {
			t.Fatal(err)
		}
	}
	w.net.StepAll()
	got, err := drain(w.ss[0])
	if err != nil {
		t.Fatal(err)
	}
	checkInOrder(t, 0, got, 1, perStream)
	// With half the packets lost some were retransmitted: the last one
	// arrived at least one RTO (10ms) after the 1ms link delay.
	if d := w.net.Now().Sub(start); d < 11*time.Millisecond {
		t.Fatalf("all delivered after %v: loss did not delay anything", d)
	}
}

// A link that loses everything exhausts retransmissions: the association
// fails on both ends (RFC 9260 §8.1).
func TestTotalLossLosesAssociation(t *testing.T) {
	leakcheck.Check(t)
	w := newWorld(t, 3, 1, memnet.Link{}, memnet.WithAssociationTimeout(time.Second))
	w.net.SetLink(w.pes[0], w.reg, memnet.Link{Loss: 1})
	if err := w.cs[0].Send(context.Background(), msg(0, 0, 0)); err != nil {
		t.Fatal(err)
	}
	w.net.StepAll()
	for i, c := range []transport.Conn{w.cs[0], w.ss[0]} {
		if _, err := c.Recv(cancelled); !errors.Is(err, transport.ErrAssociationLost) {
			t.Errorf("end %d: Recv = %v, want ErrAssociationLost", i, err)
		}
		if err := c.Send(context.Background(), msg(0, 0, 1)); !errors.Is(err, transport.ErrAssociationLost) {
			t.Errorf("end %d: Send = %v, want ErrAssociationLost", i, err)
		}
	}
}

// Announces are plain UDP (RFC 5352 §3.6): loss drops them.
func TestAnnounceLoss(t *testing.T) {
	leakcheck.Check(t)
	for _, tc := range []struct {
		loss     float64
		min, max int
	}{{0, 200, 200}, {0.5, 1, 199}, {1, 0, 0}} {
		w := newWorld(t, 5, 1, memnet.Link{Loss: tc.loss, Jitter: time.Millisecond})
		for i := range 200 {
			if err := w.anns[0].Send(context.Background(), []byte{byte(i)}); err != nil {
				t.Fatal(err)
			}
		}
		w.net.StepAll()
		got := 0
		for {
			b, from, err := w.regAnnRcv.Recv(cancelled)
			if err != nil {
				break
			}
			if len(b) != 1 || from.AddrPort != netip.AddrPortFrom(w.pes[0].IP(), group.Port()) {
				t.Fatalf("got %x from %v", b, from)
			}
			got++
		}
		if got < tc.min || got > tc.max {
			t.Errorf("loss %v: %d of 200 announces arrived, want %d to %d", tc.loss, got, tc.min, tc.max)
		}
		// The sender does not hear itself.
		if _, _, err := w.anns[0].Recv(cancelled); !errors.Is(err, context.Canceled) {
			t.Errorf("sender received its own announce: %v", err)
		}
	}
}

// A partition holds association messages and drops announces; a heal
// within the association timeout delivers the held messages in order.
func TestPartitionHeal(t *testing.T) {
	leakcheck.Check(t)
	w := newWorld(t, 1, 2, memnet.Link{Delay: time.Millisecond}, memnet.WithAssociationTimeout(time.Second))
	w.net.Partition([]*memnet.Node{w.reg}, w.pes[:1])
	for i := range 10 {
		for pe, c := range w.cs {
			if err := c.Send(context.Background(), msg(pe, i%2, i/2)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := w.anns[0].Send(context.Background(), []byte("cut off")); err != nil {
		t.Fatal(err)
	}
	w.net.Advance(500 * time.Millisecond) // half the association timeout
	if got, err := drain(w.ss[0]); len(got) != 0 || err != nil {
		t.Fatalf("across the partition got %d messages, err %v", len(got), err)
	}
	got, err := drain(w.ss[1]) // not partitioned
	if err != nil {
		t.Fatal(err)
	}
	checkInOrder(t, 1, got, 2, 5)
	if b, _, err := w.regAnnRcv.Recv(cancelled); err == nil {
		t.Fatalf("announce %q crossed the partition", b)
	}
	w.net.Heal()
	w.net.StepAll() // also runs past the (cancelled) association timeout
	got, err = drain(w.ss[0])
	if err != nil {
		t.Fatalf("after Heal: %v", err)
	}
	checkInOrder(t, 0, got, 2, 5)
	if err := w.cs[0].Send(context.Background(), msg(0, 0, 5)); err != nil {
		t.Fatalf("association did not survive the healed partition: %v", err)
	}
}

// RFC 9260 §8.1/§8.2: an association whose peer stays unreachable fails;
// here after the association timeout, on both ends, even when idle.
func TestPartitionLosesAssociation(t *testing.T) {
	leakcheck.Check(t)
	w := newWorld(t, 1, 2, memnet.Link{}, memnet.WithAssociationTimeout(3*time.Second))
	start := w.net.Now()
	w.net.Isolate(w.pes[0])
	w.net.StepAll()
	if d := w.net.Now().Sub(start); d != 3*time.Second {
		t.Errorf("association failed after %v, want the 3s association timeout", d)
	}
	for i, c := range []transport.Conn{w.cs[0], w.ss[0]} {
		if _, err := c.Recv(cancelled); !errors.Is(err, transport.ErrAssociationLost) {
			t.Errorf("end %d: Recv = %v, want ErrAssociationLost", i, err)
		}
	}
	// The other PE's association is untouched.
	if err := w.cs[1].Send(context.Background(), msg(1, 0, 0)); err != nil {
		t.Fatal(err)
	}
	w.net.StepAll()
	if got, err := drain(w.ss[1]); len(got) != 1 || err != nil {
		t.Fatalf("other association: got %d messages, err %v", len(got), err)
	}
	// Dialing across the partition fails at once in step mode.
	if _, err := w.pes[0].Dial(context.Background(), w.l.Addr()); !errors.Is(err, memnet.ErrUnreachable) {
		t.Errorf("Dial across the partition = %v, want ErrUnreachable", err)
	}
}

func TestDialErrors(t *testing.T) {
	leakcheck.Check(t)
	n := memnet.New(1)
	defer n.Close()
	a, b := n.NewNode(), n.NewNode()
	ctx := context.Background()
	if _, err := a.Dial(ctx, transport.Addr{Kind: transport.KindMem, AddrPort: netip.MustParseAddrPort("192.0.2.1:1")}); !errors.Is(err, memnet.ErrUnreachable) {
		t.Errorf("Dial to no node = %v, want ErrUnreachable", err)
	}
	if _, err := a.Dial(ctx, b.Addr(9)); !errors.Is(err, memnet.ErrRefused) {
		t.Errorf("Dial to no listener = %v, want ErrRefused", err)
	}
	if _, err := a.Dial(ctx, transport.Addr{Kind: transport.KindSCTPUDP, AddrPort: b.Addr(9).AddrPort}); err == nil {
		t.Error("Dial to a non-memnet address succeeded")
	}
	l, err := b.Listen(b.Addr(9))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Listen(b.Addr(9)); !errors.Is(err, memnet.ErrAddrInUse) {
		t.Errorf("second Listen on a port = %v, want ErrAddrInUse", err)
	}
	// An association nobody accepted is aborted when the listener closes.
	c, err := a.Dial(ctx, l.Addr())
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
	if _, err := c.Recv(cancelled); !errors.Is(err, transport.ErrAssociationLost) {
		t.Errorf("Recv on an association the listener dropped = %v, want ErrAssociationLost", err)
	}
}

// With the default clock inside a synctest bubble, delays and timeouts run
// on virtual time.
func TestSynctestClock(t *testing.T) {
	leakcheck.Check(t)
	synctest.Test(t, func(t *testing.T) {
		n := memnet.New(1, memnet.WithLink(memnet.Link{Delay: 30 * time.Millisecond}),
			memnet.WithAssociationTimeout(5*time.Second))
		defer n.Close()
		a, b := n.NewNode(), n.NewNode()
		c, s := openPair(t, a, b)
		ctx := context.Background()
		start := time.Now()
		if err := c.Send(ctx, msg(0, 0, 0)); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Recv(ctx); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d != 30*time.Millisecond {
			t.Errorf("message took %v of virtual time, want the 30ms link delay", d)
		}

		// A partition fails the association after the timeout, and a
		// dial across it gives up after the same time.
		start = time.Now()
		n.Partition([]*memnet.Node{a}, []*memnet.Node{b})
		if _, err := s.Recv(ctx); !errors.Is(err, transport.ErrAssociationLost) {
			t.Errorf("Recv across a partition = %v, want ErrAssociationLost", err)
		}
		if d := time.Since(start); d != 5*time.Second {
			t.Errorf("association lost after %v, want 5s", d)
		}
		if _, err := a.Dial(ctx, b.Addr(transport.PortASAP)); !errors.Is(err, memnet.ErrUnreachable) {
			t.Errorf("Dial across a partition = %v, want ErrUnreachable", err)
		}
		// A dial waiting across a partition goes through on Heal.
		done := make(chan error, 1)
		go func() {
			c, err := a.Dial(ctx, b.Addr(transport.PortASAP))
			if err == nil {
				c.Close()
			}
			done <- err
		}()
		synctest.Wait()
		n.Heal()
		if err := <-done; err != nil {
			t.Errorf("Dial waiting for Heal = %v", err)
		}
		c.Close()
		s.Close()
	})
}
