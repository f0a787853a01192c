package enrp_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/go-rserpool/rserpool/enrp"
	"github.com/go-rserpool/rserpool/policy"
	"github.com/go-rserpool/rserpool/tlv"
	"github.com/go-rserpool/rserpool/transport"
)

// Benchmarks of ENRP (RFC 5353) between registrars of this package: the
// handle table a new registrar takes from its mentor (§3.4-3.5), and the
// handle updates (§3.6) one registrar sends to its peers. Run with
// -benchtime 1x..3x: each iteration moves tens of thousands of PEs.

// syncBound bounds one wait of these benchmarks for a registrar to hold
// what it should: far above what a sync or a fan-out takes, so that only
// a broken one hits it.
const syncBound = 20 * time.Second

// fillN registers n PEs in pool "bench" at r over assocs associations,
// each sending its registrations back to back while a reader takes the
// responses (so that the registrar's send queue never fills).
func fillN(b *testing.B, r *enrp.Registrar, client func() transport.Transport, n, assocs, base int) {
	b.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, 2*assocs)
	for a := range assocs {
		lo, hi := a*n/assocs, (a+1)*n/assocs
		bc := benchDial(b, client(), r.Addr())
		ip := bc.c.LocalAddr().AddrPort.Addr()
		wg.Go(func() {
			for i := lo; i < hi; i++ {
				if err := bc.send(registration("bench", uint32(base+i+1), ip, policy.RoundRobin, 0)); err != nil {
					errs <- err
					return
				}
			}
		})
		wg.Go(func() {
			for range hi - lo {
				m, err := bc.recvType(tlv.ASAPRegistrationResponse)
				if err != nil {
					errs <- err
					return
				}
				if m[1]&tlv.FlagRegistrationReject != 0 {
					errs <- errors.New("registration refused")
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		b.Fatal(err)
	}
}

// noLimits lifts the per-association and per-source limits (every PE of
// the benchmark comes from 127.0.0.1 or one memnet node, and none is an
// attacker), the store's bound and the send queue's.
func noLimits(c *enrp.Config) {
	c.ASAP.AssocRate = enrp.Unlimited
	c.Handlespace.MaxPEs = 1 << 22
	c.SendQueue = 1 << 16 // the fill's responses come in bursts
}

// waitPEs polls r's Stats until its store holds n PEs.
func waitPEs(b *testing.B, r *enrp.Registrar, n int, from *enrp.Registrar) {
	b.Helper()
	end := time.Now().Add(syncBound)
	for r.Stats().PEs < n {
		if time.Now().After(end) {
			s := r.Stats()
			b.Fatalf("registrar %08x holds %d PEs after %v, want %d (ENRP %+v; at %08x: %+v)", r.ServerID(), s.PEs, syncBound, n, s.ENRP, from.ServerID(), from.Stats().ENRP)
		}
		time.Sleep(time.Millisecond) // polling interval, not synchronisation
	}
}

// BenchmarkHandleTableSync measures a new registrar joining a mentor that
// holds N PEs (RFC 5353 §3.4: LIST_REQUEST and HANDLE_TABLE_REQUEST, the
// table paged by M=1, §3.5) until its store holds all N, with the default
// page size (DefaultPageSize, RSPLIB's 128 PEs). It reports the PEs taken
// in per second and the round trips (pages) the table took.
func BenchmarkHandleTableSync(b *testing.B) {
	for _, n := range []int{10000, 100000} {
		for _, bn := range benchNets {
			b.Run(fmt.Sprintf("pes=%d/transport=%s", n, bn.name), func(b *testing.B) {
				benchTableSync(b, bn, n, 0)
			})
		}
	}
}

// BenchmarkHandleTableSyncPage is BenchmarkHandleTableSync with larger
// pages between our registrars: page=max asks for pages of as many PEs as
// fit the 64 KiB Message Length (Peers.PageSize far above it), which the
// core caps at what a receiver with the default tlv.Limits parses.
func BenchmarkHandleTableSyncPage(b *testing.B) {
	const n = 100000
	for _, page := range []int{enrp.DefaultPageSize, 1 << 16} {
		name := fmt.Sprint(page)
		if page == 1<<16 {
			name = "max"
		}
		for _, bn := range benchNets {
			b.Run(fmt.Sprintf("pes=%d/transport=%s/page=%s", n, bn.name, name), func(b *testing.B) {
				benchTableSync(b, bn, n, page)
			})
		}
	}
}

func benchTableSync(b *testing.B, bn benchNet, n, page int) {
	tr, at, client := bn.setup(b)
	mentor := startRegistrar(b, tr, at, func(c *enrp.Config) {
		noLimits(c)
		c.Peers.PageSize = page
	})
	fillN(b, mentor, client, n, benchPEAssocs, 0)
	if got := mentor.Stats().PEs; got != n {
		b.Fatalf("mentor holds %d PEs, want %d", got, n)
	}
	var pages uint64
	b.ReportAllocs()
	for b.Loop() {
		// The joiner is the benchmark's own registrar on the client's
		// transport; it is torn down (not timed) after each iteration.
		b.StopTimer()
		jtr := client()
		jat := at
		if bn.name == "memnet" {
			jat = jtr.(interface{ Addr(uint16) transport.Addr }).Addr(transport.PortASAP)
		}
		b.StartTimer()
		j, stop := startJoiner(b, jtr, jat, func(c *enrp.Config) {
			noLimits(c)
			c.Peers.Static = []transport.Addr{mentor.Addr()}
			c.Peers.PageSize = page
		})
		waitPEs(b, j, n, mentor)
		b.StopTimer()
		pages += j.Stats().ENRP.TablePagesIn
		stop()
		b.StartTimer()
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "PEs/s")
	b.ReportMetric(float64(pages)/float64(b.N), "roundtrips")
}

// startJoiner is startRegistrar for a registrar the benchmark stops
// itself, within the iteration.
func startJoiner(b *testing.B, tr transport.Transport, at transport.Addr, mod func(*enrp.Config)) (*enrp.Registrar, func()) {
	cfg := enrp.Config{Transport: tr, ListenAddr: at, ASAP: enrp.ASAPConfig{
		KeepAliveInterval: time.Hour, MaxPEsPerAssoc: enrp.Unlimited, MaxPEsPerSource: enrp.Unlimited,
		MaxPoolsPerAssoc: enrp.Unlimited, MaxPoolsPerSource: enrp.Unlimited, MaxEURate: enrp.Unlimited,
	}}
	mod(&cfg)
	r, err := enrp.New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
	var once sync.Once
	stop := func() { once.Do(func() { cancel(); r.Close(); <-done }) }
	b.Cleanup(stop)
	return r, stop
}

// BenchmarkHandleUpdateFanout measures handle updates (RFC 5353 §3.6:
// ADD_PE) per second from one registrar to its peers: each iteration
// registers fanoutPEs new PEs at the registrar (over benchPEAssocs
// associations, back to back) and ends when every peer holds them all.
// Over loopback SCTP, with the peers' MaxENRPRate off.
func BenchmarkHandleUpdateFanout(b *testing.B) {
	const fanoutPEs = 10000
	b.Run("peers=4", func(b *testing.B) {
		bn := benchNets[1] // sctp
		tr, at, client := bn.setup(b)
		events := make(chan enrp.Event, 64)
		home := startRegistrar(b, tr, at, func(c *enrp.Config) {
			noLimits(c)
			c.Events = events
		})
		var peers []*enrp.Registrar
		for range 4 {
			peers = append(peers, startRegistrar(b, tr, at, func(c *enrp.Config) {
				noLimits(c)
				c.Peers.Static = []transport.Addr{home.Addr()}
				// The default MaxENRPRate (2,000 messages/s, burst 16)
				// drops most of a burst of updates; the next audit
				// (RFC 5353 §3.7) would bring them back, a heartbeat
				// cycle later.
				c.Peers.MaxENRPRate = enrp.Unlimited
			}))
		}
		// Every peer is up at the home registrar (RFC 5353 §3.2).
		up := map[uint32]bool{}
		timeout := time.After(syncBound)
		for len(up) < len(peers) {
			select {
			case ev := <-events:
				if ev.Kind == enrp.EventPeerUp {
					up[ev.ServerID] = true
				}
			case <-timeout:
				b.Fatalf("%d of %d peers up", len(up), len(peers))
			}
		}
		// Drain the PE events from here on: the home sends one per
		// registration.
		stopDrain := make(chan struct{})
		drained := make(chan struct{})
		go func() {
			defer close(drained)
			for {
				select {
				case <-events:
				case <-stopDrain:
					return
				}
			}
		}()
		defer func() { close(stopDrain); <-drained }()
		b.ReportAllocs()
		total := 0
		for b.Loop() {
			fillN(b, home, client, fanoutPEs, benchPEAssocs, total)
			total += fanoutPEs
			for _, p := range peers {
				waitPEs(b, p, total, home)
			}
		}
		b.ReportMetric(float64(fanoutPEs)*float64(b.N)/b.Elapsed().Seconds(), "updates/s")
		var refused uint64
		for _, p := range peers {
			refused += p.Stats().ENRP.UpdatesRefused + p.Stats().ENRP.Dropped
		}
		if refused != 0 {
			b.Errorf("%d updates refused or dropped at the peers", refused)
		}
	})
}
