package policy

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"
)

var benchSizes = []int{1000, 100000, 1000000}

func benchValues(rng *rand.Rand) Values {
	return Values{
		Weight:          1 + rng.Uint32N(100),
		Priority:        rng.Uint32N(8),
		Load:            rng.Uint32(),
		LoadDegradation: rng.Uint32N(0x01000000),
		LoadDPF:         rng.Uint32N(0x00100000),
		WeightDPF:       rng.Uint32N(0x00100000),
		Distance:        rng.Uint32N(200),
	}
}

func benchFill(b *testing.B, typ Type, n int) Selector {
	sel, err := New(typ, rand.NewPCG(1, 2))
	if err != nil {
		b.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range n {
		sel.Add(int32(i), benchValues(rng))
	}
	return sel
}

// BenchmarkSelect: one handle resolution of k items from a pool of N.
func BenchmarkSelect(b *testing.B) {
	for _, typ := range Types() {
		b.Run("policy="+typ.String(), func(b *testing.B) {
			for _, k := range []int{1, 3, 16} {
				b.Run(fmt.Sprintf("items=%d", k), func(b *testing.B) {
					for _, n := range benchSizes {
						b.Run(fmt.Sprintf("pes=%d", n), func(b *testing.B) {
							sel := benchFill(b, typ, n)
							dst := make([]int32, 0, k)
							b.ReportAllocs()
							for b.Loop() {
								dst = sel.Select(k, dst[:0])
							}
						})
					}
				})
			}
		})
	}
}

var benchPolicies = []Type{RoundRobin, LeastUsed, LeastUsedDegradation, WeightedRandom}

// BenchmarkAdd: time per Add while filling an empty selector with N members.
func BenchmarkAdd(b *testing.B) {
	for _, typ := range benchPolicies {
		for _, n := range benchSizes {
			b.Run(fmt.Sprintf("policy=%v/pes=%d", typ, n), func(b *testing.B) {
				rng := rand.New(rand.NewPCG(3, 4))
				vals := make([]Values, n)
				for i := range vals {
					vals[i] = benchValues(rng)
				}
				b.ReportAllocs()
				for b.Loop() {
					sel, _ := New(typ, rand.NewPCG(1, 2))
					for i := range n {
						sel.Add(int32(i), vals[i])
					}
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/add")
			})
		}
	}
}

// BenchmarkUpdate: new values for a random member of a pool of N.
func BenchmarkUpdate(b *testing.B) {
	for _, typ := range benchPolicies {
		for _, n := range benchSizes {
			b.Run(fmt.Sprintf("policy=%v/pes=%d", typ, n), func(b *testing.B) {
				sel := benchFill(b, typ, n)
				rng := rand.New(rand.NewPCG(5, 6))
				b.ReportAllocs()
				for b.Loop() {
					sel.Update(rng.Int32N(int32(n)), benchValues(rng))
				}
			})
		}
	}
}

// BenchmarkRemove: time per Remove while emptying a pool of N in random order.
func BenchmarkRemove(b *testing.B) {
	for _, typ := range benchPolicies {
		for _, n := range benchSizes {
			b.Run(fmt.Sprintf("policy=%v/pes=%d", typ, n), func(b *testing.B) {
				order := rand.New(rand.NewPCG(7, 8)).Perm(n)
				b.ReportAllocs()
				for b.Loop() {
					b.StopTimer()
					sel := benchFill(b, typ, n)
					b.StartTimer()
					for _, i := range order {
						sel.Remove(int32(i))
					}
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/remove")
			})
		}
	}
}

// BenchmarkMemory reports heap bytes per member of a selector with N members.
func BenchmarkMemory(b *testing.B) {
	for _, typ := range Types() {
		b.Run(fmt.Sprintf("policy=%v/pes=%d", typ, 1000000), func(b *testing.B) {
			var perMember float64
			for b.Loop() {
				var before, after runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&before)
				sel := benchFill(b, typ, 1000000)
				runtime.GC()
				runtime.ReadMemStats(&after)
				perMember = float64(after.HeapAlloc-before.HeapAlloc) / 1e6
				runtime.KeepAlive(sel)
			}
			b.ReportMetric(perMember, "B/member")
		})
	}
}
