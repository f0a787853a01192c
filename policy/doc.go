// Package policy implements the RSerPool pool member selection policies of
// RFC 5356 and the extended policies of RSPLIB: which pool elements (PEs) a
// registrar returns for a handle resolution (RFC 5352) and which one a pool
// user picks from its cache.
//
// # Usage
//
// Decode a PE's Pool Member Selection Policy parameter with [Decode], keep one
// [Selector] per pool (made by [New] for the pool's [Type]) and feed it the
// pool's members, each under a small integer slot chosen by the caller:
//
//	t, v, err := policy.Decode(pe.Policy) // *Error with the RFC cause if bad
//	sel, err := policy.New(t, rand.NewPCG(seed1, seed2))
//	sel.Add(slot, v)             // registration
//	sel.Update(slot, newValues)  // re-registration with new values
//	slots = sel.Select(3, slots[:0])
//	sel.Remove(slot)
//
// The policy parameter of a handle resolution response is [Encode](t, v) with
// the pool's type and, as RSPLIB does, the first selected PE's values.
//
// # Semantics
//
// Sorted policies (round robin, weighted round robin, priority, least used and
// variants) return the first n members in their sort order; only the first
// [Options.MaxIncrement] of them (default 1) get a new sequence number and the
// policy's update (WRR counters, degradation), so one resolution moves the
// round robin position by one whatever n is. Randomized policies draw n
// members without repeats, each with probability weight/Σweight, from the
// injected math/rand/v2 source. Degradation grows after each selection and is
// reset by Update.
//
// Every operation is O(log n) in the pool size (removal finds the member's
// leaf of the tree from its slot, without a search); memory is about 24 to
// 32 bytes per member for the sorted policies whose members keep their key
// (round robin, priority, least used, priority least used, least used with
// DPF: 24 when members join in order, 32 with scattered keys), 30 to 37 for
// the others (weighted round robin, the degradation policies) and 5 to 17
// for the randomized ones. A sorted selector's table of leaves does not
// shrink with its pool: after the pool shrinks it keeps about 12 bytes per
// leaf of its largest size (under half a byte per member it once had)
// until Clear.
//
// # Text and JSON
//
// A [Type] marshals as its name ("LeastUsed"; "0x" and 8 hex digits for a
// code this package does not know) and reads back from either. [Values]
// marshal as their non-zero fields, with Load, Load Degradation, Load DPF
// and Weight DPF as the fractions they stand for on the wire (x of
// 0xffffffff, RFC 5356 §4.2): {"Load":0.25}. [Fraction] and [FromFraction]
// convert. Linking this package also gives tlv.Policy (inside every
// tlv.PoolElement) the named form {"Type":"LeastUsed","Load":0.25}.
package policy
