package sctp

import (
	"context"
	"errors"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-rserpool/rserpool/internal/leakcheck"
	"github.com/go-rserpool/rserpool/transport"
)

var loopback = transport.Addr{Kind: transport.KindSCTPUDP, AddrPort: netip.MustParseAddrPort("127.0.0.1:0")}

// vanishedDialers is how many associations TestSuperviseReapsVanishedDialers
// opens: as many as the SIGKILLed host of issue 9 had.
const vanishedDialers = 200

// A host with 200 associations to a registrar is SIGKILLed: its kernel
// closes the UDP sockets, nothing sends an ABORT, and the registrar's
// packets to the closed ports vanish (an unconnected UDP socket does not
// report ICMP errors). Over loopback UDP, with the LAN profile on the
// listener's side, every one of the 200 accepted associations fails with
// "peer stopped answering" within the profile's bound (8.6 s; the context
// of 3 bounds is a safety net, not the assertion), and their goroutines
// end without anybody calling Close. Before path supervision they all
// stayed open: 1,409 goroutines still running 60 s later.
func TestSuperviseReapsVanishedDialers(t *testing.T) {
	leakcheck.Check(t)
	sup := LANSupervision()
	server := New(Config{Supervision: sup})
	client := New(Config{Supervision: Supervision{HeartbeatInterval: -1}})
	baseline := runtime.NumGoroutine()
	ln, err := server.Listen(loopback)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	accepted := make(chan transport.Conn, vanishedDialers)
	go func() {
		for range vanishedDialers {
			c, err := ln.Accept(ctx)
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	dialed := make([]*Conn, vanishedDialers)
	var wg sync.WaitGroup
	for i := range dialed {
		wg.Go(func() {
			c, err := client.Dial(ctx, ln.Addr())
			if err != nil {
				t.Errorf("dial %d: %v", i, err)
				return
			}
			dialed[i] = c.(*Conn)
		})
	}
	wg.Wait()
	if t.Failed() {
		for _, c := range dialed {
			if c != nil {
				c.Abort()
			}
		}
		t.FailNow()
	}
	servers := make([]transport.Conn, 0, vanishedDialers)
	for range vanishedDialers {
		select {
		case c := <-accepted:
			servers = append(servers, c)
		case <-ctx.Done():
			t.Fatalf("accepted %d of %d associations", len(servers), vanishedDialers)
		}
	}
	defer func() {
		for _, s := range servers {
			s.Abort()
		}
	}()
	open := runtime.NumGoroutine()

	// SIGKILL: the sockets close under the dialers, nothing is sent.
	for _, c := range dialed {
		_ = c.wire.(*dialConn).Conn.Close()
	}
	killed := time.Now()
	for _, c := range dialed {
		<-c.assocDone // the dead process's side ends on the closed socket
	}
	afterKill := runtime.NumGoroutine()

	bound := sup.DetectionBound()
	rctx, rcancel := context.WithTimeout(ctx, 3*bound)
	defer rcancel()
	type result struct {
		err  error
		took time.Duration
	}
	results := make(chan result, len(servers))
	for _, s := range servers {
		go func() {
			_, err := s.Recv(rctx)
			results <- result{err, time.Since(killed)}
		}()
	}
	var slowest time.Duration
	lost := 0
	for range servers {
		r := <-results
		if errors.Is(r.err, transport.ErrAssociationLost) && strings.Contains(r.err.Error(), "peer stopped answering") {
			lost++
		} else {
			t.Errorf("Recv on an association to a killed host = %v, want ErrAssociationLost: peer stopped answering", r.err)
		}
		slowest = max(slowest, r.took)
	}
	reaped := runtime.NumGoroutine()
	t.Logf("%d associations: %d goroutines before, %d open, %d after the kill (listener side only), %d once reaped",
		vanishedDialers, baseline, open, afterKill, reaped)
	t.Logf("%d of %d reaped; the last %v after the kill (bound %v)", lost, len(servers), slowest.Round(time.Millisecond), bound)
	// Goroutines that may remain: the listener's socket reader, and
	// leakcheck's grace covers pion goroutines still returning.
	if reaped > baseline+10 {
		t.Errorf("%d goroutines after every association failed, baseline %d", reaped, baseline)
	}
	for _, c := range dialed {
		c.Abort()
	}
}

// The registrar's host is killed, and its listener restarted on the same
// port (or not). A dialer with the LAN profile sends a HEARTBEAT once the
// association has been idle for HB.interval + RTO: the new listener
// answers it with an ABORT (RFC 9260 §8.4, the out-of-the-blue rule), and
// with no listener at all the kernel answers with an ICMP port
// unreachable, which the connected socket reports. Either way the dialer's
// Recv fails within about 1.2 s. Before path supervision the dialer sent
// nothing and Recv waited for ever (here: until its 3-bound context).
func TestSuperviseRestartedListener(t *testing.T) {
	for _, restart := range []bool{true, false} {
		name := map[bool]string{true: "restarted", false: "gone"}[restart]
		t.Run(name, func(t *testing.T) {
			leakcheck.Check(t)
			sup := LANSupervision()
			tr := New(Config{Supervision: sup})
			ln, err := tr.Listen(loopback)
			if err != nil {
				t.Fatal(err)
			}
			l := ln.(*Listener)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			ach := make(chan transport.Conn, 1)
			go func() {
				s, err := l.Accept(ctx)
				if err != nil {
					t.Error(err)
				}
				ach <- s
			}()
			c, err := tr.Dial(ctx, l.Addr())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Abort()
			s := <-ach
			if s == nil {
				t.FailNow()
			}
			// Kill the registrar: its socket closes, its associations
			// say nothing.
			s.(*Conn).sup.stop()
			_ = l.pc.Close()
			killed := time.Now()
			if restart {
				l2, err := tr.Listen(l.Addr())
				if err != nil {
					t.Fatalf("restart on %v: %v", l.Addr(), err)
				}
				defer l2.Close()
			}
			rctx, rcancel := context.WithTimeout(ctx, 3*sup.DetectionBound())
			defer rcancel()
			_, err = c.Recv(rctx)
			took := time.Since(killed)
			t.Logf("%s: dialer's Recv = %v after %v", name, err, took.Round(time.Millisecond))
			if !errors.Is(err, transport.ErrAssociationLost) {
				t.Errorf("Recv = %v, want ErrAssociationLost", err)
			}
			if restart && (err == nil || !strings.Contains(err.Error(), "ABORT")) {
				t.Errorf("Recv = %v, want the restarted listener's ABORT", err)
			}
			s.Abort()
			_ = l.Close()
		})
	}
}
