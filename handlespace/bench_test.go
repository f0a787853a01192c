package handlespace

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/go-rserpool/rserpool/policy"
	"github.com/go-rserpool/rserpool/tlv"
)

// The inputs follow the C reference harness (rsplib-hsbench): one pool,
// scattered PE IDs, owner 0x01020304, SCTP user and ASAP transports with one
// IPv4 address each, load = level*(0xffffffff/100), weight 1 + i%100.

var benchSizes = []int{1000, 100000, 1000000}

const benchHome = 0x01020304

var benchHandle = tlv.PoolHandle("hsbench-pool")

func benchID(i int) uint32 { return uint32(uint64(i+1) * 2654435761) }

type benchInput struct {
	pe    tlv.PoolElement
	uaddr [1]netip.Addr
	aaddr [1]netip.Addr
	val   [16]byte
}

// make fills in the inputs of PE i into reusable storage, as a registrar
// does after parsing a message: the fields that are the same for every PE
// once, the others (identifier, ports, addresses, policy) for each PE.
func (in *benchInput) make(pt policy.Type, i int, variant int) *tlv.PoolElement {
	h := uint32(uint64(i+1) * 3266489917)
	if variant != 0 {
		h = uint32(uint64(i+1) * 2246822519)
	}
	load := ((h >> 8) % 101) * (0xffffffff / 100)
	weight := uint32(1 + (i+7*variant)%100)
	a := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
	in.uaddr[0], in.aaddr[0] = a, a
	pe := &in.pe
	if pe.UserTransport.Addrs == nil {
		*pe = tlv.PoolElement{
			HomeServerID: benchHome, RegistrationLife: 15000,
			UserTransport: tlv.Transport{Type: tlv.ParamSCTPTransport, Addrs: in.uaddr[:]},
			ASAPTransport: tlv.Transport{Type: tlv.ParamSCTPTransport, Addrs: in.aaddr[:]},
		}
	}
	pe.ID = benchID(i)
	pe.UserTransport.Port = uint16(10000 + i%50000)
	pe.ASAPTransport.Port = uint16(20000 + i%40000)
	v := policy.Values{Load: load, Weight: weight, Priority: weight, LoadDegradation: 0xffffffff / 100,
		LoadDPF: 0xffffffff / 1000, WeightDPF: 0xffffffff / 1000, Distance: uint32(i % 200)}
	pe.Policy = tlv.Policy{Type: uint32(pt), Value: policy.AppendValue(in.val[:0], pt, v)}
	return pe
}

var benchBase = time.Unix(1_000_000, 0)

func benchStore(b *testing.B) *Store {
	s, err := New(Config{Rand: rand.NewPCG(1, 2)})
	if err != nil {
		b.Fatal(err)
	}
	return s
}

func fill(b *testing.B, s *Store, pt policy.Type, n int, variant int, in *benchInput) {
	fillPools(b, s, pt, n, benchOnePool, variant, in)
}

var benchOnePool = []tlv.PoolHandle{benchHandle}

// benchPools is the number of pools of the pools=1000 variants: PE i goes
// to pool i%benchPools, as the C harness's -p option does.
const benchPools = 1000

// benchPoolHandles returns the handles of the pools=1000 variants (the C
// harness's names).
func benchPoolHandles() []tlv.PoolHandle {
	hs := make([]tlv.PoolHandle, benchPools)
	for i := range hs {
		hs[i] = tlv.PoolHandle(fmt.Sprintf("hsbench-pool-%06d", i))
	}
	return hs
}

// fillPools registers PEs 0..n-1, PE i in pool handles[i%len(handles)].
func fillPools(b *testing.B, s *Store, pt policy.Type, n int, handles []tlv.PoolHandle, variant int, in *benchInput) {
	for i := range n {
		if _, err := s.Register(benchBase, handles[i%len(handles)], in.make(pt, i, variant), benchBase.Add(time.Duration(i)*time.Microsecond)); err != nil {
			b.Fatal(err)
		}
	}
}

// benchPoolSizes are the sizes of the pools=1000 variants (100 and 1,000
// PEs per pool).
var benchPoolSizes = []int{100000, 1000000}

// forSizes runs fn as sub-benchmarks pes=N; fn does N operations per
// iteration and ns/op is reported per PE.
func forSizes(b *testing.B, fn func(b *testing.B, n int)) {
	for _, n := range benchSizes {
		b.Run(fmt.Sprintf("pes=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			fn(b, n)
		})
	}
}

// perPE turns the per-iteration time into time per PE operation.
func perPE(b *testing.B, n int, ops int) {
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(ops), "ns/PE")
}

// BenchmarkRegister: time per registration while filling an empty store.
// The pools=1000 variant puts PE i in pool i%1000.
func BenchmarkRegister(b *testing.B) {
	forSizes(b, func(b *testing.B, n int) {
		// The store is emptied (untimed) after each fill and reused, like
		// the C harness does between its repetitions.
		var in benchInput
		s := benchStore(b)
		ops := 0
		for b.Loop() {
			fill(b, s, policy.LeastUsed, n, 0, &in)
			ops += n
			b.StopTimer()
			s.PopExpired(benchBase.Add(time.Hour), nil)
			b.StartTimer()
		}
		perPE(b, n, ops)
	})
	handles := benchPoolHandles()
	b.Run(fmt.Sprintf("pools=%d", benchPools), func(b *testing.B) {
		for _, n := range benchPoolSizes {
			b.Run(fmt.Sprintf("pes=%d", n), func(b *testing.B) {
				b.ReportAllocs()
				var in benchInput
				s := benchStore(b)
				ops := 0
				for b.Loop() {
					fillPools(b, s, policy.LeastUsed, n, handles, 0, &in)
					ops += n
					b.StopTimer()
					s.PopExpired(benchBase.Add(time.Hour), nil)
					b.StartTimer()
				}
				perPE(b, n, ops)
			})
		}
	})
}

// BenchmarkReregister: update each of N stored PEs with a new load/weight.
func BenchmarkReregister(b *testing.B) {
	forSizes(b, func(b *testing.B, n int) {
		var in benchInput
		s := benchStore(b)
		fill(b, s, policy.LeastUsed, n, 0, &in)
		ops, v := 0, 1
		for b.Loop() {
			fill(b, s, policy.LeastUsed, n, v, &in)
			v ^= 1
			ops += n
		}
		perPE(b, n, ops)
	})
}

// BenchmarkDeregister: remove all N.
func BenchmarkDeregister(b *testing.B) {
	forSizes(b, func(b *testing.B, n int) {
		var in benchInput
		s := benchStore(b)
		ops := 0
		for b.Loop() {
			b.StopTimer()
			fill(b, s, policy.LeastUsed, n, 0, &in)
			b.StartTimer()
			for i := range n {
				if _, ok := s.Deregister(benchBase, benchHandle, benchID(i)); !ok {
					b.Fatal("missing PE")
				}
			}
			ops += n
		}
		perPE(b, n, ops)
	})
}

// BenchmarkExpire: one PopExpired call that expires all N, per PE.
func BenchmarkExpire(b *testing.B) {
	forSizes(b, func(b *testing.B, n int) {
		var in benchInput
		s := benchStore(b)
		ops := 0
		for b.Loop() {
			b.StopTimer()
			fill(b, s, policy.LeastUsed, n, 0, &in)
			b.StartTimer()
			if got := s.PopExpired(benchBase.Add(time.Hour), nil); got != n {
				b.Fatalf("expired %d of %d", got, n)
			}
			ops += n
		}
		perPE(b, n, ops)
	})
}

// BenchmarkChecksum: the owner's PE checksum (kept incrementally).
func BenchmarkChecksum(b *testing.B) {
	forSizes(b, func(b *testing.B, n int) {
		var in benchInput
		s := benchStore(b)
		fill(b, s, policy.LeastUsed, n, 0, &in)
		var sink uint16
		for b.Loop() {
			sink += s.Checksum(benchHome)
		}
		_ = sink
	})
}

// BenchmarkSelect: handle resolution of k items from a pool of N PEs. The
// pools=1000 variants (LeastUsed, RoundRobin and WeightedRandom, the
// policies the C harness measures) spread the N PEs over 1000 pools and
// resolve the pools in turn.
func BenchmarkSelect(b *testing.B) {
	handles := benchPoolHandles()
	for _, pt := range policy.Types() {
		b.Run("policy="+pt.String(), func(b *testing.B) {
			for _, k := range []int{1, 3, 16} {
				b.Run(fmt.Sprintf("items=%d", k), func(b *testing.B) {
					for _, n := range benchSizes {
						b.Run(fmt.Sprintf("pes=%d", n), func(b *testing.B) {
							benchSelect(b, pt, k, n, benchOnePool)
						})
					}
					if pt != policy.LeastUsed && pt != policy.RoundRobin && pt != policy.WeightedRandom {
						return
					}
					b.Run(fmt.Sprintf("pools=%d", benchPools), func(b *testing.B) {
						for _, n := range benchPoolSizes {
							b.Run(fmt.Sprintf("pes=%d", n), func(b *testing.B) {
								benchSelect(b, pt, k, n, handles)
							})
						}
					})
					// out=encoded is the like-for-like comparison with the C
					// harness's resolve_k: C hands back pointers to its
					// stored PEs, SelectEncoded hands back slices of the
					// stored encodings (what the registrar's resolution
					// path uses), neither copies a PE.
					b.Run("out=encoded", func(b *testing.B) {
						for _, n := range benchSizes {
							b.Run(fmt.Sprintf("pes=%d", n), func(b *testing.B) {
								benchSelectRefs(b, pt, k, n)
							})
						}
					})
				})
			}
		})
	}
}

func benchSelect(b *testing.B, pt policy.Type, k, n int, handles []tlv.PoolHandle) {
	b.ReportAllocs()
	var in benchInput
	s := benchStore(b)
	fillPools(b, s, pt, n, handles, 0, &in)
	buf := make([]tlv.PoolElement, 0, k)
	i := 0
	for b.Loop() {
		var err error
		buf, _, err = s.Select(handles[i], k, buf)
		if err != nil || len(buf) != k {
			b.Fatal(err, len(buf))
		}
		if i++; i == len(handles) {
			i = 0
		}
	}
}

func benchSelectRefs(b *testing.B, pt policy.Type, k, n int) {
	b.ReportAllocs()
	var in benchInput
	s := benchStore(b)
	fill(b, s, pt, n, 0, &in)
	buf := make([][]byte, 0, k)
	for b.Loop() {
		var err error
		buf, _, err = s.SelectEncoded(benchHandle, k, buf)
		if err != nil || len(buf) != k {
			b.Fatal(err, len(buf))
		}
	}
}

// BenchmarkMemory reports heap bytes per stored PE.
func BenchmarkMemory(b *testing.B) {
	for _, n := range []int{1000000} {
		b.Run(fmt.Sprintf("pes=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			var in benchInput
			var perPE float64
			for b.Loop() {
				b.StopTimer()
				var m0, m1 runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&m0)
				b.StartTimer()
				s := benchStore(b)
				fill(b, s, policy.LeastUsed, n, 0, &in)
				b.StopTimer()
				runtime.GC()
				runtime.ReadMemStats(&m1)
				perPE = float64(m1.HeapAlloc-m0.HeapAlloc) / float64(n)
				runtime.KeepAlive(s)
				b.StartTimer()
			}
			b.ReportMetric(perPE, "B/PE")
		})
	}
}

// BenchmarkSelectEncode: a handle resolution of k items from a pool of N
// PEs, Least Used, up to the response's wire form: path=pes selects
// PoolElements and encodes them (ASAP transports cleared, RFC 5354 §3.10),
// path=encoded copies the encodings the store keeps (SelectEncoded).
// Compare with the C harness's resolve_k, which does not encode.
func BenchmarkSelectEncode(b *testing.B) {
	for _, path := range []string{"pes", "encoded"} {
		b.Run("path="+path, func(b *testing.B) {
			for _, k := range []int{1, 3, 16} {
				b.Run(fmt.Sprintf("items=%d", k), func(b *testing.B) {
					for _, n := range benchSizes {
						b.Run(fmt.Sprintf("pes=%d", n), func(b *testing.B) {
							benchSelectEncode(b, path == "encoded", k, n)
						})
					}
				})
			}
		})
	}
}

func benchSelectEncode(b *testing.B, encoded bool, k, n int) {
	b.ReportAllocs()
	var in benchInput
	s := benchStore(b)
	fill(b, s, policy.LeastUsed, n, 0, &in)
	var (
		pes  []tlv.PoolElement
		encs [][]byte
		out  []byte
		pol  tlv.Policy
		err  error
	)
	for b.Loop() {
		if encoded {
			encs, pol, err = s.SelectEncoded(benchHandle, k, encs)
			m := tlv.EncodedResolutionResponse{PoolHandle: benchHandle, Policy: &pol, PEs: encs}
			out = m.AppendTo(out[:0])
		} else {
			pes, pol, err = s.Select(benchHandle, k, pes)
			for i := range pes {
				pes[i].ASAPTransport = tlv.Transport{}
			}
			m := tlv.HandleResolutionResponse{PoolHandle: benchHandle, Policy: &pol, PEs: pes}
			out = m.AppendTo(out[:0])
		}
		if err != nil || len(out) < 44*k {
			b.Fatal(err, len(out))
		}
	}
}

// BenchmarkLookup: look each PE up by pool handle and PE identifier (the C
// harness's find), per PE.
func BenchmarkLookup(b *testing.B) {
	benchEachPE(b, func(b *testing.B, s *Store, _, i int) {
		if _, _, ok := s.Lookup(benchHandle, benchID(i)); !ok {
			b.Fatal("missing PE")
		}
	})
}

// BenchmarkView: Lookup without the copy (View), per PE: like the C
// harness's find, which returns the stored PE.
func BenchmarkView(b *testing.B) {
	benchEachPE(b, func(b *testing.B, s *Store, _, i int) {
		if _, _, ok := s.View(benchHandle, benchID(i)); !ok {
			b.Fatal("missing PE")
		}
	})
}

// BenchmarkSetExpiry: move every PE's deadline (the C harness's
// timer_restart), per PE; each round moves them a second later.
func BenchmarkSetExpiry(b *testing.B) {
	benchEachPE(b, func(_ *testing.B, s *Store, round, i int) {
		d := time.Hour + time.Duration(round)*time.Second + time.Duration(i)*time.Microsecond
		s.SetExpiry(benchBase, benchHandle, benchID(i), benchBase.Add(d))
	})
}

// benchEachPE fills a Least-Used pool of each size and times op on every
// PE of it, round after round, reporting the time per PE.
func benchEachPE(b *testing.B, op func(b *testing.B, s *Store, round, i int)) {
	forSizes(b, func(b *testing.B, n int) {
		var in benchInput
		s := benchStore(b)
		fill(b, s, policy.LeastUsed, n, 0, &in)
		ops := 0
		for round := 0; b.Loop(); round++ {
			for i := range n {
				op(b, s, round, i)
			}
			ops += n
		}
		perPE(b, n, ops)
	})
}

// BenchmarkNextExpiry: the earliest deadline (the C harness's next_timer)
// and a PopExpired with nothing due (purge_none).
func BenchmarkNextExpiry(b *testing.B) {
	forSizes(b, func(b *testing.B, n int) {
		var in benchInput
		s := benchStore(b)
		fill(b, s, policy.LeastUsed, n, 0, &in)
		var sink int64
		for b.Loop() {
			t, _ := s.NextExpiry()
			sink += t.UnixNano()
			sink += int64(s.PopExpired(benchBase, nil))
		}
		_ = sink
	})
}
