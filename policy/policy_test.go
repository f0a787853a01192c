package policy

import (
	"bytes"
	"encoding/hex"
	"errors"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/go-rserpool/rserpool/tlv"
)

func mustNew(t *testing.T, typ Type) Selector {
	t.Helper()
	s, err := New(typ, rand.NewPCG(11, 12))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func selectMany(s Selector, rounds, n int) [][]int32 {
	var out [][]int32
	for range rounds {
		out = append(out, s.Select(n, nil))
	}
	return out
}

// RFC 5356 §4.1 (Round Robin): members are used in turn; as in RSPLIB, one
// resolution advances the position by one even when it returns several.
func TestRoundRobinRotates(t *testing.T) {
	s := mustNew(t, RoundRobin)
	for i := range int32(4) {
		s.Add(i, Values{})
	}
	got := selectMany(s, 5, 1)
	want := [][]int32{{0}, {1}, {2}, {3}, {0}}
	if !slices.EqualFunc(got, want, slices.Equal) {
		t.Fatalf("k=1: %v, want %v", got, want)
	}
	got = selectMany(s, 3, 3)
	want = [][]int32{{1, 2, 3}, {2, 3, 0}, {3, 0, 1}}
	if !slices.EqualFunc(got, want, slices.Equal) {
		t.Fatalf("k=3: %v, want %v", got, want)
	}
	if got := s.Select(10, nil); len(got) != 4 {
		t.Fatalf("Select(10) of 4 members returned %v", got)
	}
	// A removed member is skipped, a new one joins at the end.
	s.Remove(1)
	s.Add(9, Values{})
	if got := slices.Concat(selectMany(s, 4, 1)...); !slices.Equal(got, []int32{2, 3, 0, 9}) {
		t.Fatalf("after remove/add: %v", got)
	}
}

// RFC 5356 §4.2 (Weighted Round Robin): a member with weight w is picked w
// times per round.
func TestWeightedRoundRobinWeights(t *testing.T) {
	s := mustNew(t, WeightedRoundRobin)
	s.Add(0, Values{Weight: 1})
	s.Add(1, Values{Weight: 3})
	s.Add(2, Values{Weight: 2})
	for round := range 5 {
		count := map[int32]int{}
		for _, r := range selectMany(s, 6, 1) {
			count[r[0]]++
		}
		if count[0] != 1 || count[1] != 3 || count[2] != 2 {
			t.Fatalf("round %d: counts %v, want 1/3/2", round, count)
		}
	}
}

// RFC 5356 §4.5 (Priority): highest priority
// first; equal priorities served round robin.
func TestPriorityHighestFirst(t *testing.T) {
	s := mustNew(t, Priority)
	s.Add(0, Values{Priority: 1})
	s.Add(1, Values{Priority: 7})
	s.Add(2, Values{Priority: 7})
	s.Add(3, Values{Priority: 3})
	if got := s.Select(4, nil); !slices.Equal(got, []int32{1, 2, 3, 0}) {
		t.Fatalf("order %v", got)
	}
	if got := s.Select(1, nil); !slices.Equal(got, []int32{2}) {
		t.Fatalf("tie not served round robin: %v", got)
	}
}

// RFC 5356 §5.1 (Least Used): lowest load first, ties
// round robin; a load change through Update reorders.
func TestLeastUsedTies(t *testing.T) {
	s := mustNew(t, LeastUsed)
	s.Add(0, Values{Load: 100})
	s.Add(1, Values{Load: 10})
	s.Add(2, Values{Load: 10})
	s.Add(3, Values{Load: 50})
	got := slices.Concat(selectMany(s, 4, 1)...)
	if !slices.Equal(got, []int32{1, 2, 1, 2}) {
		t.Fatalf("ties: %v", got)
	}
	s.Update(0, Values{Load: 0})
	if got := s.Select(2, nil); !slices.Equal(got, []int32{0, 1}) {
		t.Fatalf("after update: %v", got)
	}
}

// RFC 5356 §5.2 (Least Used with Degradation): the
// degradation is added after selection and reset when the PE updates.
func TestLeastUsedDegradation(t *testing.T) {
	s := mustNew(t, LeastUsedDegradation)
	s.Add(0, Values{Load: 0, LoadDegradation: 30})
	s.Add(1, Values{Load: 50, LoadDegradation: 1000})
	// 0 is picked (0), degraded to 30, picked (30), degraded to 60; now 1 (50).
	got := slices.Concat(selectMany(s, 3, 1)...)
	if !slices.Equal(got, []int32{0, 0, 1}) {
		t.Fatalf("degradation order: %v", got)
	}
	// Degradation applies after selection: the first of a multi-item answer
	// is degraded, so the next answer starts elsewhere. Now 0 at 60, 1 at 1050.
	if got := s.Select(2, nil); !slices.Equal(got, []int32{0, 1}) {
		t.Fatalf("k=2: %v", got)
	}
	// 0 at 90, 1 at 1050. Update resets 1 to 50 + 0.
	s.Update(1, Values{Load: 50, LoadDegradation: 1000})
	if got := s.Select(1, nil); !slices.Equal(got, []int32{1}) {
		t.Fatalf("after update: %v", got)
	}
	// Saturation: a PE at maximum load stays there.
	s2 := mustNew(t, LeastUsedDegradation)
	s2.Add(0, Values{Load: MaxLoad - 1, LoadDegradation: MaxLoad})
	s2.Add(1, Values{Load: MaxLoad, LoadDegradation: 0})
	got = slices.Concat(selectMany(s2, 4, 1)...)
	if !slices.Equal(got, []int32{0, 1, 0, 1}) {
		t.Fatalf("saturation: %v", got)
	}
}

// RFC 5356 §5.3 (Priority Least Used): Load plus Load
// Degradation decides.
func TestPriorityLeastUsed(t *testing.T) {
	s := mustNew(t, PriorityLeastUsed)
	s.Add(0, Values{Load: 10, LoadDegradation: 100})
	s.Add(1, Values{Load: 50, LoadDegradation: 10})
	if got := s.Select(2, nil); !slices.Equal(got, []int32{1, 0}) {
		t.Fatalf("%v", got)
	}
}

// RFC 5356 §4.4 (Weighted Random): weight 0 is never drawn; draws follow
// weight/Σweight; no repeats inside one answer.
func TestWeightedRandomDistribution(t *testing.T) {
	s := mustNew(t, WeightedRandom)
	weights := []uint32{0, 1, 2, 7}
	for i, w := range weights {
		s.Add(int32(i), Values{Weight: w})
	}
	const n = 100000
	count := make([]int, len(weights))
	for range n {
		count[s.Select(1, nil)[0]]++
	}
	if count[0] != 0 {
		t.Fatalf("weight 0 drawn %d times", count[0])
	}
	for i, w := range weights[1:] {
		want := float64(n) * float64(w) / 10
		if got := float64(count[i+1]); got < want*0.95 || got > want*1.05 {
			t.Fatalf("slot %d: %v draws, want about %v", i+1, got, want)
		}
	}
	for range 100 {
		got := s.Select(5, nil)
		if len(got) != 3 || slices.Contains(got, 0) {
			t.Fatalf("Select(5) = %v: want the 3 members of positive weight once each", got)
		}
		slices.Sort(got)
		if !slices.Equal(got, []int32{1, 2, 3}) {
			t.Fatalf("repeat in %v", got)
		}
	}
}

// RFC 5356 §4.3 (Random) and §5.4 (Randomized Least
// Used: draw weight 0xffffffff - Load).
func TestRandomAndRandomizedLeastUsedDistribution(t *testing.T) {
	r := mustNew(t, Random)
	rlu := mustNew(t, RandomizedLeastUsed)
	for i := range int32(4) {
		r.Add(i, Values{})
	}
	rlu.Add(0, Values{Load: MaxLoad / 4 * 3}) // weight 1/4
	rlu.Add(1, Values{Load: MaxLoad / 4})     // weight 3/4
	rlu.Add(2, Values{Load: MaxLoad})         // weight 1: practically never
	const n = 80000
	cr, cl := make([]int, 4), make([]int, 3)
	for range n {
		cr[r.Select(1, nil)[0]]++
		cl[rlu.Select(1, nil)[0]]++
	}
	for i, c := range cr {
		if c < n/4*95/100 || c > n/4*105/100 {
			t.Fatalf("Random slot %d: %d of %d", i, c, n)
		}
	}
	if cl[0] < n/4*95/100 || cl[0] > n/4*105/100 || cl[2] > 5 {
		t.Fatalf("RLU counts %v", cl)
	}
}

// RSPLIB: RLUD degrades the drawn PE's weight, Update resets.
func TestRandomizedDegradation(t *testing.T) {
	s, _ := New(RandomizedLeastUsedDegradation, rand.NewPCG(1, 1))
	s.Add(0, Values{Load: 0, LoadDegradation: MaxLoad})
	s.Add(1, Values{Load: MaxLoad / 2})
	rs := s.(*randomSelector)
	for range 20 {
		s.Select(1, nil)
	}
	if rs.w[0] != 1 {
		t.Fatalf("slot 0 weight %d after full degradation, want 1", rs.w[0])
	}
	s.Update(0, Values{Load: 0, LoadDegradation: MaxLoad})
	if rs.w[0] != MaxLoad {
		t.Fatalf("Update did not reset degradation: weight %d", rs.w[0])
	}
}

func TestDeterministic(t *testing.T) {
	for _, typ := range Types() {
		a, _ := New(typ, rand.NewPCG(5, 5))
		b, _ := New(typ, rand.NewPCG(5, 5))
		for i := range int32(50) {
			v := Values{Weight: uint32(i%7 + 1), Load: uint32(i) << 24, Priority: uint32(i % 3)}
			a.Add(i, v)
			b.Add(i, v)
		}
		for range 50 {
			if x, y := a.Select(3, nil), b.Select(3, nil); !slices.Equal(x, y) {
				t.Fatalf("%v: same seed, different selections %v %v", typ, x, y)
			}
		}
	}
}

func TestUnknownPolicy(t *testing.T) {
	_, err := New(0x12345678, nil)
	var pe *Error
	if !errors.Is(err, ErrUnknownPolicy) || !errors.As(err, &pe) || pe.Cause != tlv.CauseInvalidValues {
		t.Fatalf("New(unknown) = %v", err)
	}
	_, _, err = Decode(tlv.Policy{Type: 0xb0002004})
	if !errors.Is(err, ErrUnknownPolicy) {
		t.Fatalf("Decode(PLU-DPF) = %v", err)
	}
	if Type(0).Known() || !LeastUsed.Known() || Type(7).String() != "Type(0x00000007)" || LeastUsed.String() != "LeastUsed" {
		t.Fatal("Known/String")
	}
}

// Golden layouts of the policy parameters (RFC 5356 parameter sections, RSPLIB for the
// extensions): the u32 fields after the Policy Type, in order.
func TestCodecGolden(t *testing.T) {
	v := Values{Weight: 0x11111111, Priority: 0x22222222, Load: 0x33333333, LoadDegradation: 0x44444444,
		LoadDPF: 0x55555555, WeightDPF: 0x66666666, Distance: 0x77777777}
	golden := map[Type]string{
		RoundRobin:                             "",
		WeightedRoundRobin:                     "11111111",
		Random:                                 "",
		WeightedRandom:                         "11111111",
		Priority:                               "22222222",
		LeastUsed:                              "33333333",
		LeastUsedDegradation:                   "3333333344444444",
		PriorityLeastUsed:                      "3333333344444444",
		RandomizedLeastUsed:                    "33333333",
		RandomizedPriorityLeastUsed:            "3333333344444444",
		RandomizedLeastUsedDegradation:         "3333333344444444",
		PriorityLeastUsedDegradation:           "3333333344444444",
		RandomizedPriorityLeastUsedDegradation: "3333333344444444",
		WeightedRandomDPF:                      "111111116666666677777777",
		LeastUsedDPF:                           "333333335555555577777777",
		LeastUsedDegradationDPF:                "33333333444444445555555577777777",
	}
	if len(golden) != len(Types()) {
		t.Fatalf("golden table misses types")
	}
	for typ, hx := range golden {
		want, _ := hex.DecodeString(hx)
		p := Encode(typ, v)
		if p.Type != uint32(typ) || !bytes.Equal(p.Value, want) {
			t.Errorf("Encode(%v) = %x, want %x", typ, p.Value, want)
		}
		gt, gv, err := Decode(tlv.Policy{Type: uint32(typ), Value: want})
		if err != nil || gt != typ || gv != typ.Mask(v) {
			t.Errorf("Decode(%v) = %v %+v %v", typ, gt, gv, err)
		}
		if _, _, err := Decode(tlv.Policy{Type: uint32(typ), Value: append(want, 0, 0, 0, 0)}); !errors.Is(err, ErrBadLength) {
			t.Errorf("%v with extra field: %v", typ, err)
		}
		if len(want) > 0 {
			if _, _, err := Decode(tlv.Policy{Type: uint32(typ), Value: want[:len(want)-1]}); !errors.Is(err, ErrBadLength) {
				t.Errorf("%v truncated: %v", typ, err)
			}
		}
		if pt, ok := ParseType(typ.String()); !ok || pt != typ {
			t.Errorf("ParseType(%q)", typ.String())
		}
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(uint32(LeastUsedDegradation), []byte{0, 0, 0, 1, 0, 0, 0, 2})
	f.Add(uint32(WeightedRandomDPF), []byte{0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3})
	f.Add(uint32(0xffffffff), []byte{1})
	f.Fuzz(func(t *testing.T, typ uint32, value []byte) {
		gt, v, err := Decode(tlv.Policy{Type: typ, Value: value})
		if err != nil {
			var pe *Error
			if !errors.As(err, &pe) || pe.Cause != tlv.CauseInvalidValues {
				t.Fatalf("error without cause: %v", err)
			}
			return
		}
		p := Encode(gt, v)
		if p.Type != typ || !bytes.Equal(p.Value, value) {
			t.Fatalf("round trip: %x -> %x", value, p.Value)
		}
		// A decoded PE must be usable by a selector without panicking.
		s, err := New(gt, rand.NewPCG(1, 2))
		if err != nil {
			t.Fatal(err)
		}
		s.Add(0, v)
		s.Add(1, v)
		if got := s.Select(3, nil); len(got) > 2 {
			t.Fatalf("Select returned %v", got)
		}
	})
}
