package enrp_test

import (
	"context"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/go-rserpool/rserpool/enrp"
	"github.com/go-rserpool/rserpool/tlv"
)

// BenchmarkResolveLatencyBusyHost measures the latency of handle
// resolutions (RFC 5352 §3.5) over memnet from one pool user, one request
// at a time, while the host keeps every core busy with two CPU-bound
// goroutines per core: how long the registrar's loop waits for a turn on a
// saturated host. It reports the median, the 99th percentile, the maximum
// and how many took over 5 ms. The loop stops yielding for a while after a
// slow yield (package internal/loop's Gate) and probes again after a pause
// of a second or more, so a run needs several seconds (-benchtime 5s) to
// see those probes.
func BenchmarkResolveLatencyBusyHost(b *testing.B) {
	bn := benchNets[0]
	tr, at, client := bn.setup(b)
	r := startRegistrar(b, tr, at, func(c *enrp.Config) { c.ASAP.AssocRate = enrp.Unlimited })
	fill(b, r, client)
	req, err := tlv.Marshal(&tlv.HandleResolution{PoolHandle: tlv.PoolHandle("bench")})
	if err != nil {
		b.Fatal(err)
	}
	bc := benchDial(b, client(), r.Addr())
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for range 2 * runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			x := 0
			for ctx.Err() == nil {
				for i := range 100000 {
					x += i * i
				}
			}
			_ = x
		})
	}
	defer func() { cancel(); wg.Wait() }()
	var lat []time.Duration
	for b.Loop() {
		t := time.Now()
		if err := bc.send(req); err != nil {
			b.Fatal(err)
		}
		if _, err := bc.c.Recv(bc.ctx); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t))
	}
	slices.Sort(lat)
	slow := 0
	for _, d := range lat {
		if d > 5*time.Millisecond {
			slow++
		}
	}
	us := func(d time.Duration) float64 { return float64(d) / 1e3 }
	b.ReportMetric(us(lat[len(lat)/2]), "p50-µs")
	b.ReportMetric(us(lat[len(lat)*99/100]), "p99-µs")
	b.ReportMetric(us(lat[len(lat)-1]), "max-µs")
	b.ReportMetric(float64(slow), "over-5ms")
}
