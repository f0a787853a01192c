package multicast

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/go-rserpool/rserpool/transport"
)

// waitLimit bounds every wait for a datagram on lo, so that a broken
// machine fails or skips instead of hanging. It is a safety net, not a
// timing assertion: on lo a datagram arrives in microseconds.
const waitLimit = 10 * time.Second

// Groups used by the tests. Each Listen binds a free port (port 0), so
// tests never touch 3863 or 9901.
var (
	group4  = netip.MustParseAddr("239.255.42.1")
	group4b = netip.MustParseAddr("239.255.42.2")
	group6  = netip.MustParseAddr("ff02::4242:1") // link-local scope
	group6s = netip.MustParseAddr("ff05::4242:1") // site-local scope
)

// serverAnnounce builds an ASAP_SERVER_ANNOUNCE without transport
// parameters (RFC 5352 §2.2.10): type 0x0a, flags 0, length 8, Server ID.
func serverAnnounce(id uint32) []byte {
	b := []byte{0x0a, 0, 0, 8, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(b[4:], id)
	return b
}

// loopback returns lo or skips the test.
func loopback(t *testing.T) *net.Interface {
	t.Helper()
	lo, err := LoopbackInterface()
	if err != nil {
		t.Skipf("no loopback interface: %v", err)
	}
	return lo
}

// listen opens an Announcer on lo, skipping the test when the machine
// cannot join the group on lo.
func listen(t *testing.T, group netip.AddrPort) *Announcer {
	t.Helper()
	lo := loopback(t)
	a, err := Listen(t.Context(), Config{Group: group, Interface: lo, TTL: 1, Loopback: true})
	if err != nil {
		t.Skipf("cannot do multicast on %s (flags %v): %v", lo.Name, lo.Flags, err)
	}
	t.Cleanup(func() { a.Close() })
	return a
}

// pair opens two Announcers on one group and a free port, and checks that
// the machine delivers multicast on lo: when it does not (IPv6 on Linux's
// lo, which has no IPv6 multicast route), the test skips with the reason.
func pair(t *testing.T, group netip.Addr) (a, b *Announcer) {
	t.Helper()
	a = listen(t, netip.AddrPortFrom(group, 0))
	b = listen(t, a.Group())
	lo := a.Interface()
	probe := []byte("probe")
	if err := a.Send(t.Context(), probe); err != nil {
		if errors.Is(err, syscall.ENETUNREACH) || errors.Is(err, syscall.EADDRNOTAVAIL) {
			t.Skipf("cannot send multicast to %v on %s (flags %v): %v", group, lo.Name, lo.Flags, err)
		}
		t.Fatalf("probe send: %v", err)
	}
	for _, x := range []*Announcer{a, b} {
		ctx, cancel := context.WithTimeout(t.Context(), waitLimit)
		got, _, err := x.Recv(ctx)
		cancel()
		if err != nil {
			if lo.Flags&net.FlagMulticast == 0 {
				t.Skipf("%s has no MULTICAST flag and delivers no multicast: %v", lo.Name, err)
			}
			t.Fatalf("probe not received: %v", err)
		}
		if !bytes.Equal(got, probe) {
			t.Fatalf("probe: got %q", got)
		}
	}
	return a, b
}

func recv(t *testing.T, a *Announcer) ([]byte, transport.Addr) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), waitLimit)
	defer cancel()
	b, from, err := a.Recv(ctx)
	if err != nil {
		t.Fatalf("Recv: %v", err)
	}
	return b, from
}

// noLeak fails the test if goroutines started during it outlive it.
func noLeak(t *testing.T) {
	t.Helper()
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(waitLimit)
		for runtime.NumGoroutine() > before {
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<16)
				t.Errorf("goroutines: %d before, %d after\n%s", before, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
				return
			}
			runtime.Gosched()
		}
	})
}

// TestExchange: registrars announce to a group that every endpoint on the
// link listens on (RFC 5352 §3.6, RFC 5353 §3.2); here two Announcers on lo
// exchange ASAP_SERVER_ANNOUNCE messages in both directions, and with
// loopback on each also hears itself.
func TestExchange(t *testing.T) {
	for _, tc := range []struct {
		name  string
		group netip.Addr
	}{
		{"ipv4", group4},
		{"ipv6-link-local", group6},
		{"ipv6-site-local", group6s},
	} {
		t.Run(tc.name, func(t *testing.T) {
			noLeak(t)
			a, b := pair(t, tc.group)
			if a.Group().Port() == 0 || a.Group() != b.Group() {
				t.Fatalf("groups %v and %v", a.Group(), b.Group())
			}
			for i, send := range []*Announcer{a, b} {
				msg := serverAnnounce(uint32(0x1000 + i))
				if err := send.Send(t.Context(), msg); err != nil {
					t.Fatalf("Send: %v", err)
				}
				for _, r := range []*Announcer{a, b} {
					got, from := recv(t, r)
					if !bytes.Equal(got, msg) {
						t.Fatalf("got % x, want % x", got, msg)
					}
					if !from.AddrPort.Addr().IsLoopback() && !from.AddrPort.Addr().IsLinkLocalUnicast() {
						t.Errorf("from %v: not an address of lo", from)
					}
					if from.AddrPort.Port() != a.Group().Port() {
						t.Errorf("from port %d, want the group port %d", from.AddrPort.Port(), a.Group().Port())
					}
				}
			}
		})
	}
}

// TestIPv4SourceIsLoopback: on lo, IPv4 announcements leave from 127.0.0.1
// (the interface's address), not from an address of another interface.
func TestIPv4SourceIsLoopback(t *testing.T) {
	a, b := pair(t, group4)
	if err := a.Send(t.Context(), serverAnnounce(7)); err != nil {
		t.Fatal(err)
	}
	_, from := recv(t, b)
	if want := netip.AddrFrom4([4]byte{127, 0, 0, 1}); from.AddrPort.Addr() != want {
		t.Errorf("source %v, want %v", from.AddrPort.Addr(), want)
	}
}

// TestOnlyTheGroup: an Announcer returns only datagrams sent to its group,
// although the socket shares the port with other groups and with unicast.
// Order on lo is kept, so a marker sent last must be the first datagram.
func TestOnlyTheGroup(t *testing.T) {
	a, b := pair(t, group4)
	other := listen(t, netip.AddrPortFrom(group4b, a.Group().Port()))
	if err := other.Send(t.Context(), []byte("other group")); err != nil {
		t.Fatal(err)
	}
	u, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), a.Group().Port())))
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	if _, err := u.Write([]byte("unicast")); err != nil {
		t.Fatal(err)
	}
	marker := serverAnnounce(42)
	if err := a.Send(t.Context(), marker); err != nil {
		t.Fatal(err)
	}
	for _, r := range []*Announcer{a, b} {
		if got, _ := recv(t, r); !bytes.Equal(got, marker) {
			t.Errorf("got %q before the marker", got)
		}
	}
	if got, _ := recv(t, other); string(got) != "other group" {
		t.Errorf("other group got %q", got)
	}
}

// TestMaxDatagramSize: the limit is enforced on Send and a datagram of
// exactly the limit arrives whole.
func TestMaxDatagramSize(t *testing.T) {
	a, b := pair(t, group4)
	err := a.Send(t.Context(), make([]byte, MaxDatagramSize+1))
	if !errors.Is(err, transport.ErrMessageTooLarge) {
		t.Fatalf("oversized Send: %v, want ErrMessageTooLarge", err)
	}
	big := make([]byte, MaxDatagramSize)
	for i := range big {
		big[i] = byte(i * 7)
	}
	if err := a.Send(t.Context(), big); err != nil {
		t.Fatalf("Send of %d bytes: %v", len(big), err)
	}
	if got, _ := recv(t, b); !bytes.Equal(got, big) {
		t.Fatalf("got %d bytes, want %d intact", len(got), len(big))
	}
}

// blocked waits until a Recv holds the reader slot, i.e. is past the queue
// and about to read or reading.
func blocked(t *testing.T, a *Announcer) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for len(a.rsem) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("Recv never started reading")
		}
		runtime.Gosched()
	}
}

type result struct {
	b   []byte
	err error
}

func goRecv(ctx context.Context, a *Announcer) <-chan result {
	ch := make(chan result, 1)
	go func() {
		b, _, err := a.Recv(ctx)
		ch <- result{b, err}
	}()
	return ch
}

func await(t *testing.T, ch <-chan result) result {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(waitLimit):
		t.Fatal("Recv did not return")
		return result{}
	}
}

// TestCloseUnblocksRecv: Close ends a blocked Recv with ErrClosed; after
// Close, Send and Recv fail with ErrClosed and Close again returns nil.
func TestCloseUnblocksRecv(t *testing.T) {
	noLeak(t)
	a, _ := pair(t, group4)
	ch := goRecv(t.Context(), a)
	blocked(t, a)
	if err := a.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if r := await(t, ch); !errors.Is(r.err, transport.ErrClosed) {
		t.Fatalf("blocked Recv: %v, want ErrClosed", r.err)
	}
	if _, _, err := a.Recv(t.Context()); !errors.Is(err, transport.ErrClosed) {
		t.Errorf("Recv after Close: %v", err)
	}
	if err := a.Send(t.Context(), []byte("x")); !errors.Is(err, transport.ErrClosed) {
		t.Errorf("Send after Close: %v", err)
	}
	if err := a.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// TestRecvContext: cancelling or timing out the context ends a blocked
// Recv with the context's error, a Recv waiting behind another leaves the
// queue on cancel, and the Announcer still receives afterwards.
func TestRecvContext(t *testing.T) {
	noLeak(t)
	a, b := pair(t, group4)

	ctx, cancel := context.WithCancel(t.Context())
	ch := goRecv(ctx, b)
	blocked(t, b)
	cancel()
	if r := await(t, ch); !errors.Is(r.err, context.Canceled) {
		t.Fatalf("cancelled Recv: %v, want context.Canceled", r.err)
	}

	ctx, cancel = context.WithTimeout(t.Context(), time.Millisecond)
	defer cancel()
	if _, _, err := b.Recv(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Recv past deadline: %v, want DeadlineExceeded", err)
	}

	// One Recv reads, a second waits in the queue and is cancelled.
	first := goRecv(t.Context(), b)
	blocked(t, b)
	ctx2, cancel2 := context.WithCancel(t.Context())
	second := goRecv(ctx2, b)
	cancel2()
	if r := await(t, second); !errors.Is(r.err, context.Canceled) {
		t.Fatalf("queued Recv: %v, want context.Canceled", r.err)
	}
	msg := serverAnnounce(99)
	if err := a.Send(t.Context(), msg); err != nil {
		t.Fatal(err)
	}
	if r := await(t, first); r.err != nil || !bytes.Equal(r.b, msg) {
		t.Fatalf("first Recv after cancellations: %q, %v", r.b, r.err)
	}
}

// TestSendContext: a Send with a done context sends nothing.
func TestSendContext(t *testing.T) {
	a, b := pair(t, group4)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := a.Send(ctx, []byte("never")); !errors.Is(err, context.Canceled) {
		t.Fatalf("Send with cancelled ctx: %v", err)
	}
	marker := serverAnnounce(5)
	if err := a.Send(t.Context(), marker); err != nil {
		t.Fatal(err)
	}
	if got, _ := recv(t, b); !bytes.Equal(got, marker) {
		t.Fatalf("got %q, want the marker", got)
	}
}

// TestListenConfig: Listen applies the configuration and rejects a missing
// interface and non-multicast groups.
func TestListenConfig(t *testing.T) {
	lo := loopback(t)
	if _, err := Listen(t.Context(), Config{Group: netip.AddrPortFrom(group4, 0)}); !errors.Is(err, ErrNoInterface) {
		t.Errorf("no interface: %v, want ErrNoInterface", err)
	}
	for _, g := range []string{"127.0.0.1", "192.0.2.1", "::1", "0.0.0.0"} {
		_, err := Listen(t.Context(), Config{Group: netip.AddrPortFrom(netip.MustParseAddr(g), 0), Interface: lo})
		if !errors.Is(err, ErrNotMulticast) {
			t.Errorf("group %s: %v, want ErrNotMulticast", g, err)
		}
	}
	if _, err := Listen(t.Context(), Config{Group: netip.AddrPortFrom(group4, 0), Interface: lo, TTL: 256}); err == nil {
		t.Error("TTL 256 accepted")
	}

	a := listen(t, netip.AddrPortFrom(group4, 0))
	if ttl, err := a.p4.MulticastTTL(); err != nil || ttl != 1 {
		t.Errorf("TTL %d, %v; want 1", ttl, err)
	}
	if on, err := a.p4.MulticastLoopback(); err != nil || !on {
		t.Errorf("loopback %v, %v; want on", on, err)
	}
	c, err := Listen(t.Context(), Config{Group: netip.AddrPortFrom(group4, 0), Interface: lo, TTL: 5})
	if err != nil {
		t.Skipf("cannot join on %s: %v", lo.Name, err)
	}
	defer c.Close()
	if ttl, err := c.p4.MulticastTTL(); err != nil || ttl != 5 {
		t.Errorf("TTL %d, %v; want 5", ttl, err)
	}
	if on, err := c.p4.MulticastLoopback(); err != nil || on {
		t.Errorf("loopback %v, %v; want off", on, err)
	}
}

func TestDefaults(t *testing.T) {
	for _, g := range []netip.AddrPort{DefaultASAPGroup, DefaultENRPGroup} {
		if !g.Addr().IsMulticast() {
			t.Errorf("%v is not multicast", g)
		}
	}
	if DefaultASAPGroup.Port() != transport.PortASAP || DefaultENRPGroup.Port() != transport.PortENRP {
		t.Errorf("ports %d, %d", DefaultASAPGroup.Port(), DefaultENRPGroup.Port())
	}
}

func TestLoopbackInterface(t *testing.T) {
	lo, err := LoopbackInterface()
	if err != nil {
		t.Skipf("no loopback interface: %v", err)
	}
	if lo.Flags&net.FlagLoopback == 0 || lo.Flags&net.FlagUp == 0 {
		t.Errorf("%s flags %v", lo.Name, lo.Flags)
	}
}
