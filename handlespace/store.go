package handlespace

import (
	"errors"
	"math/rand/v2"
	"net/netip"
	"time"

	"github.com/go-rserpool/rserpool/policy"
	"github.com/go-rserpool/rserpool/tlv"
)

// Defaults for a zero Config field. RFC 5352 and RFC 5353 set no size
// limits (RFC 5355 §3 asks for bounds without values); the counts are this
// package's choices, and each is a Config field.
const (
	// DefaultMaxPools bounds the number of pools: 65,536.
	DefaultMaxPools = 1 << 16
	// DefaultMaxPEsPerPool bounds the PEs of one pool: 4,194,304, the
	// same as DefaultMaxPEs (one pool may hold them all).
	DefaultMaxPEsPerPool = 1 << 22
	// DefaultMaxPEs bounds the PEs of the whole store: 4,194,304.
	DefaultMaxPEs = 1 << 22
	// DefaultMaxPoolHandleSize bounds a pool handle in bytes. RFC 5354 sets
	// no limit; RSPLIB 3.4.4 caps handles at 32 bytes.
	DefaultMaxPoolHandleSize = 32

	// maxLimit keeps every index inside an int32.
	maxLimit = 1 << 30
)

// Config configures a Store. The zero value works: every zero field takes
// the default named in its comment.
type Config struct {
	MaxPools          int // default DefaultMaxPools
	MaxPEsPerPool     int // default DefaultMaxPEsPerPool
	MaxPEs            int // default DefaultMaxPEs
	MaxPoolHandleSize int // default DefaultMaxPoolHandleSize

	// Rand feeds the random policies (RFC 5356 §2.3, §2.4 ...). Default: a
	// PCG seeded from the runtime's random source. Tests pass a fixed seed.
	Rand rand.Source
}

// Info is the registrar-local data kept with a PE (RFC 5352 §3.2, §3.5).
type Info struct {
	LastUpdate         time.Time // when the PE was last registered or updated
	Expiry             time.Time // registration deadline; zero: no deadline
	UnreachableReports int       // ENDPOINT_UNREACHABLE reports since the last registration
	Marked             bool      // audit mark (Mark/Sweep)
}

// Store is the handlespace of one registrar: pools keyed by pool handle, each
// holding pool elements (RFC 5353 §1.1, RFC 5352 §3.2).
//
// # Concurrency
//
// A Store is not safe for concurrent use. It is meant to be owned by the
// registrar's single event-loop goroutine, which calls every method; any
// other goroutine must hand its request to that loop.
//
// # Time
//
// A Store reads no clock. Every method that changes it takes the caller's
// now as its first argument, so that one registrar loop with one clock
// (real, or virtual in tests) drives it: Register stamps Info.LastUpdate
// with it and PopExpired compares the deadlines with it; the other
// mutators take it for the same contract and do not keep it.
//
// # Returned values
//
// PoolElements returned by Select and Deregister, and those passed to the
// callbacks of PopExpired, ForEachOwnedBy, ForEachPE and Sweep, alias memory
// owned by the Store: they are read-only and valid only until the next call
// of any Store method (for callbacks: until the callback returns). Use
// ClonePoolElement to keep one. Pool handles passed to callbacks are
// read-only too. Lookup and Page return independent copies.
type Store struct {
	cfg Config
	rnd rand.Source

	// PE records live in a chunked slab and are named by int32 indexes.
	chunks   [][]rec
	free     int32 // head of the free-record list, -1 if none
	nrec     int32 // records ever allocated
	pes      int
	ext      map[int32]*extData // PEs whose data does not fit a rec
	reports  map[int32]uint32   // unreachable reports, of the records with flagReports
	heap     expiryHeap
	lazy     int // records with flagLazyExp
	owners   map[uint32]*owner
	pools    []*pool
	freePool []int32
	byName   map[string]int32
	order    seqList[uint64] // pools in creation order, for Page
	poolSeq  uint64

	// Scratch memory for returned PoolElements (see "Returned values").
	scrAddrs []netip.Addr
	scrVal   []byte
	scrSlots []int32
	scrDue   []dueEnt

	seed uint32 // hash seed of the PE-ID tables

	slots policy.SlotSpace // per-PE data of the sorted policies' selectors, by record

	noBulk bool // tests: PopExpired pops one by one

	lastPool  int32  // the pool findPool found last, -1 if none
	lastOwner *owner // the owner ownerOf found last, nil if none
	lastHome  uint32 // its home
}

// New returns an empty Store. It fails with an error naming the field when
// a limit in cfg is negative or too large.
func New(cfg Config) (*Store, error) {
	lim := []struct {
		name string
		v    *int
		def  int
	}{
		{"MaxPools", &cfg.MaxPools, DefaultMaxPools},
		{"MaxPEsPerPool", &cfg.MaxPEsPerPool, DefaultMaxPEsPerPool},
		{"MaxPEs", &cfg.MaxPEs, DefaultMaxPEs},
		{"MaxPoolHandleSize", &cfg.MaxPoolHandleSize, DefaultMaxPoolHandleSize},
	}
	for _, l := range lim {
		switch {
		case *l.v == 0:
			*l.v = l.def
		case *l.v < 0 || *l.v > maxLimit:
			return nil, errors.New("handlespace: Config." + l.name + " out of range")
		}
	}
	if cfg.MaxPoolHandleSize > 0xffff-4 {
		return nil, errors.New("handlespace: Config.MaxPoolHandleSize out of range")
	}
	s := &Store{cfg: cfg, free: -1, rnd: cfg.Rand, lastPool: -1}
	if s.rnd == nil {
		s.rnd = rand.NewPCG(rand.Uint64(), rand.Uint64())
	}
	s.seed = uint32(rand.Uint64())
	s.ext = make(map[int32]*extData)
	s.reports = make(map[int32]uint32)
	s.owners = make(map[uint32]*owner)
	s.byName = make(map[string]int32)
	return s, nil
}

// Pools is the number of pools (pools with at least one PE).
func (s *Store) Pools() int { return len(s.byName) }

// PEs is the number of stored PEs.
func (s *Store) PEs() int { return s.pes }

func (s *Store) findPool(handle tlv.PoolHandle) (*pool, int32) {
	// One pool is looked up again and again (a registrar's busiest pool,
	// and every PE of a registration burst): check it before the map.
	if s.lastPool >= 0 {
		if p := s.pools[s.lastPool]; p.handle == string(handle) {
			return p, s.lastPool
		}
	}
	pi, ok := s.byName[string(handle)]
	if !ok {
		return nil, -1
	}
	s.lastPool = pi
	return s.pools[pi], pi
}

func (s *Store) find(handle tlv.PoolHandle, id uint32) (*pool, int32) {
	p, _ := s.findPool(handle)
	if p == nil {
		return nil, -1
	}
	ri := p.ids.get(id, s)
	if ri < 0 {
		return nil, -1
	}
	return p, ri
}
