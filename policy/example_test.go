package policy_test

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"

	"github.com/go-rserpool/rserpool/policy"
)

// A registrar keeps each pool's members in a Selector and asks it which
// to hand out (RFC 5356 §4.2.1, Least Used: the least loaded first).
// Members are named by small slots that the caller maps to its PEs.
func Example() {
	names := []string{"pe-a", "pe-b", "pe-c"}
	loads := []float64{0.5, 0.1, 0.25}
	sel, err := policy.New(policy.LeastUsed, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	for slot, l := range loads {
		sel.Add(int32(slot), policy.Values{Load: policy.FromFraction(l)})
	}
	for _, slot := range sel.Select(2, nil) {
		fmt.Println(names[slot])
	}

	// pe-b is now busier than the others.
	sel.Update(1, policy.Values{Load: policy.FromFraction(0.9)})
	fmt.Println("then:", names[sel.Select(1, nil)[0]])
	// Output:
	// pe-b
	// pe-c
	// then: pe-c
}

// Round Robin (RFC 5356 §4.1.1): one selection moves the position by one,
// however many members it returns.
func Example_roundRobin() {
	sel, _ := policy.New(policy.RoundRobin, nil)
	for slot := range int32(3) {
		sel.Add(slot, policy.Values{})
	}
	for range 4 {
		fmt.Println(sel.Select(2, nil))
	}
	// Output:
	// [0 1]
	// [1 2]
	// [2 0]
	// [0 1]
}

// Randomized policies draw from the source they are given; a seeded one
// makes the draws reproducible (Weighted Random, RFC 5356 §4.1.4).
func Example_weightedRandom() {
	sel, _ := policy.New(policy.WeightedRandom, rand.NewPCG(1, 2))
	sel.Add(0, policy.Values{Weight: 1})
	sel.Add(1, policy.Values{Weight: 3})
	count := make([]int, 2)
	for range 1000 {
		count[sel.Select(1, nil)[0]]++
	}
	fmt.Println(count[1] > 2*count[0])
	// Output:
	// true
}

// Policy types and values marshal by name and as fractions.
func ExampleValues_MarshalJSON() {
	b, _ := json.Marshal(struct {
		Policy policy.Type
		Values policy.Values
	}{policy.LeastUsedDegradation, policy.Values{Load: 0x40000000, LoadDegradation: policy.FromFraction(0.05)}})
	fmt.Println(string(b))
	// Output:
	// {"Policy":"LeastUsedDegradation","Values":{"Load":0.25,"LoadDegradation":0.05}}
}
