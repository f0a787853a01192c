// Package handlespace is the handlespace of an RSerPool registrar: the store
// of pools and pool elements that ASAP fills (RFC 5352 §3.2-3.5) and that
// ENRP keeps in sync between registrars (RFC 5353 §3.5-3.10).
//
// A [Store] holds pools keyed by pool handle. Each pool holds PEs keyed by
// PE identifier with their transports, policy values and the registrar's
// local data (last update, expiry deadline, unreachable reports, audit
// mark). It is socket-free and reads no clock: every mutator takes the
// caller's now, and deadlines are plain time.Time values compared against
// it.
//
// # Usage
//
// The registrar's event loop owns one Store:
//
//	s, err := handlespace.New(handlespace.Config{})             // zero Config: defaults
//	created, err := s.Register(now, handle, &pe, now.Add(life)) // ASAP_REGISTRATION
//	pes, pol, err := s.Select(handle, 3, buf)                   // ASAP_HANDLE_RESOLUTION
//	encs, pol, err := s.SelectEncoded(handle, 3, ebuf)          // the same, as wire bytes
//	s.PopExpired(now, sendDelPE)                                // lifetime expiry
//	sum := s.Checksum(ownID)                                    // ENRP_PRESENCE
//	entries, cur, more := s.Page(cur, 128, 0)                   // ENRP_HANDLE_TABLE_RESPONSE
//
// Register enforces the pool's consistency rules and the Config limits and
// returns an [*Error] whose Cause is the RFC 5354 error cause to answer
// with. Selection is delegated to package policy, one Selector per pool.
//
// # Complexity and memory
//
// PEs live in a chunked slab of compact records named by int32 indexes (no
// per-PE pointers). A record keeps the PE's wire encoding as a handle
// resolution carries it (see [Store.SelectEncoded]), from which the
// PoolElement is read back, and the ASAP transport beside it: 88 bytes for
// a PE with one address and a policy value of up to 8 bytes. A pool maps PE
// identifiers to records (4 bytes a slot); the selectors of the sorted
// policies name their members by record index in one shared slot space;
// deadlines sit in an indexed 8-ary heap, in which a removed PE leaves a
// tombstone (swept when tombstones are half the heap, popped when they
// come to the top); each owner (home registrar) has an intrusive list and
// a running checksum sum.
// Register, Deregister, Lookup, SetExpiry and PopExpired per PE are
// O(log n) (Deregister's heap removal is O(1) amortized, unless the
// removed deadline was the earliest: the next NextExpiry sifts it out);
// Checksum is O(1);
// Select costs what the pool's policy costs.
//
// # Concurrency
//
// A Store is not safe for concurrent use: call it from one goroutine (the
// registrar loop). PoolElements handed out by Select, Deregister and the
// iteration callbacks alias store memory and are valid only until the next
// Store call; see [Store] and [ClonePoolElement].
package handlespace
