// Package cookie seals and opens the state cookies a pool element hands its
// pool users (ASAP_COOKIE, RFC 5352 §3.9) and gets back after a failover
// (ASAP_COOKIE_ECHO, §3.10). The pool user treats a cookie as opaque bytes
// (RFC 5352 §3.9); so anyone on the path, or the pool user itself, could
// change it or make one up. RFC 5355 §3 lists cookie tampering and replay
// among the threats to RSerPool: a pool element must not trust a cookie it
// cannot authenticate. A [Sealer] holds keys shared by the pool's elements
// (the PE that sealed a cookie is usually not the one that opens it) and
//
//   - authenticates every cookie with HMAC-SHA-256 (RFC 2104, FIPS 180-4)
//     over its header and body, checked in constant time before anything
//     else in the cookie is used;
//   - optionally encrypts the state with AES-256-GCM (Config.Encrypt), for
//     state the pool user must not read;
//   - names the key in the cookie (a key ID), so keys can be rotated: the
//     newest key seals, older keys still open until they are removed;
//   - writes the time the cookie was sealed and, with Config.MaxAge,
//     refuses old cookies.
//
// What a Sealer does not do: bind a cookie to a session or a pool user.
// A cookie that opens is valid in any pool user's session, for as long as
// its key is held when MaxAge is zero (the default: no age limit). So a
// cookie captured from one pool user, or an old one a pool user kept,
// can be replayed. Set MaxAge (examples/demo uses one minute) to bound
// how long; to bind a cookie to its pool user, seal the pool user's
// authenticated name into the state (asap.PESession.PeerIdentity, over
// SCTP over DTLS) and compare it with the echoing session's; to refuse an
// old state, let the state carry a sequence number the service checks.
//
// Failures are the sentinels [ErrInvalid] (malformed), [ErrTampered]
// (authentication failed), [ErrUnknownKey], [ErrExpired] and
// [ErrTooLarge], wrapped with detail; test them with errors.Is.
//
// # Format
//
// Version 1, all integers big-endian:
//
//	offset  size  field
//	0       1     version (1)
//	1       1     flags: 0x01 encrypted; other bits must be 0
//	2       4     key ID
//	6       8     sealed at, Unix milliseconds (signed)
//	14      n     body: the state (plain), or a 12-byte nonce and the
//	              AES-256-GCM ciphertext with its 16-byte tag (encrypted;
//	              the header bytes 0-13 are the associated data)
//	14+n    32    HMAC-SHA-256 over Config.Context's length (4 bytes),
//	              Config.Context, and bytes 0 to 14+n
//
// Encrypted cookies are thus encrypt-then-MAC with a standard AEAD inside:
// the outer HMAC is what every cookie, plain or encrypted, is checked
// against first, and the GCM tag is checked after it. From each key's
// secret, HKDF-SHA-256 (RFC 5869) derives one key for the HMAC and another
// for AES, so the same secret is never used for two purposes. A plain
// cookie costs [Overhead] bytes over its state, an encrypted one
// [OverheadEncrypted]. Open accepts both forms whatever Config.Encrypt
// says (the flag is covered by the HMAC, so it cannot be flipped): pool
// elements can switch to encryption one at a time.
package cookie

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"
)

// Errors of Seal and Open, wrapped with detail; test them with errors.Is.
var (
	// ErrInvalid: the input is not a sealed cookie of this package: too
	// short or too long, an unknown version, or unknown flags.
	ErrInvalid = errors.New("cookie: invalid")
	// ErrTampered: the cookie's HMAC (or, when encrypted, its GCM tag)
	// does not match: it was changed, made up, or sealed with another
	// key or Config.Context than the one its key ID names here.
	ErrTampered = errors.New("cookie: authentication failed")
	// ErrUnknownKey: the cookie names a key ID this Sealer does not hold:
	// a foreign cookie, or one sealed with a key that was removed.
	ErrUnknownKey = errors.New("cookie: unknown key")
	// ErrExpired: the cookie is authentic but older than Config.MaxAge, or
	// sealed further in the future than Config.ClockSkew allows.
	ErrExpired = errors.New("cookie: expired")
	// ErrTooLarge: Seal was given more state than one ASAP_COOKIE can
	// carry (see MaxSealedLen).
	ErrTooLarge = errors.New("cookie: too large")
	// ErrKey: a key is unusable (secret shorter than MinSecretLen, an ID
	// held twice) or an operation names a key this Sealer does not hold.
	ErrKey = errors.New("cookie: bad key")
)

// Sizes.
const (
	// MaxSealedLen is the largest sealed cookie: the largest Cookie
	// parameter value one ASAP_COOKIE or ASAP_COOKIE_ECHO can carry. The
	// message is at most 65535 bytes (its 16-bit Message Length, RFC 5352
	// §2.1); less the 4-byte message header and the 4-byte parameter
	// header, and rounded down to the parameter's 4-byte padding (RFC 5354
	// §2, §3.13), that leaves 65524.
	MaxSealedLen = 65524
	// MinSecretLen is the shortest key secret New and AddKey accept: the
	// SHA-256 output length, below which RFC 2104 §3 discourages HMAC keys.
	MinSecretLen = 32

	headerLen  = 14
	macLen     = sha256.Size
	nonceLen   = 12
	gcmTagLen  = 16
	version1   = 1
	flagCrypt  = 0x01
	knownFlags = flagCrypt

	// Overhead is what sealing adds to plain state: header and HMAC.
	Overhead = headerLen + macLen
	// OverheadEncrypted is what sealing adds to encrypted state: header,
	// nonce, GCM tag and HMAC.
	OverheadEncrypted = Overhead + nonceLen + gcmTagLen
	// MaxState is the most state a plain cookie holds.
	MaxState = MaxSealedLen - Overhead
	// MaxStateEncrypted is the most state an encrypted cookie holds.
	MaxStateEncrypted = MaxSealedLen - OverheadEncrypted
)

// DefaultClockSkew is how far in the future a cookie's seal time may lie
// when Config.MaxAge is set, for pool elements whose clocks differ: 30 s,
// this package's choice (pool elements are expected to keep their clocks
// within seconds of each other, e.g. by NTP).
const DefaultClockSkew = 30 * time.Second

// Key is one shared key: the ID written into the cookies it seals, and
// the secret (at least MinSecretLen bytes, e.g. 32 bytes from
// crypto/rand) every pool element of the pool holds under that ID.
type Key struct {
	ID     uint32
	Secret []byte
}

// Config configures a Sealer.
type Config struct {
	// Keys are the keys the Sealer holds (at least one). Keys[0] seals;
	// all of them open. Their IDs must differ.
	Keys []Key
	// Encrypt makes Seal encrypt the state with AES-256-GCM. The default
	// (false) only authenticates it: the pool user can read it but not
	// change it.
	Encrypt bool
	// MaxAge, when positive, makes Open refuse with ErrExpired a cookie
	// sealed more than MaxAge ago. Zero (the default) sets no age limit:
	// a cookie opens, and can be replayed, for as long as its key is
	// held. Set it: a session's PE sends a new cookie after each request,
	// so the bound is the longest a session may stay idle and still fail
	// over with its state.
	MaxAge time.Duration
	// ClockSkew is how far in the future a cookie's seal time may be when
	// MaxAge is set; zero means DefaultClockSkew, negative allows none.
	ClockSkew time.Duration
	// Context, when not empty, is bound into every cookie's HMAC: a cookie
	// sealed with one Context does not open with another (ErrTampered).
	// The pool handle is a good one: a cookie of one pool then never
	// opens in another pool that shares the key.
	Context []byte
	// Now is the clock (seal times and MaxAge); nil means time.Now.
	Now func() time.Time
	// Rand is the source of GCM nonces; nil means crypto/rand.
	Rand io.Reader
}

// key is a Key with its derived keys.
type key struct {
	id  uint32
	mac []byte
	aes cipher.AEAD
}

// Sealer seals and opens cookies. It is safe for concurrent use; AddKey,
// UseKey and RemoveKey rotate keys while other goroutines seal and open.
type Sealer struct {
	encrypt bool
	maxAge  time.Duration
	skew    time.Duration
	context []byte
	now     func() time.Time
	rand    io.Reader

	mu   sync.RWMutex
	keys []*key // keys[0] seals
}

// New returns a Sealer for cfg. It fails with ErrKey when cfg has no key,
// a secret is shorter than MinSecretLen or two keys share an ID.
func New(cfg Config) (*Sealer, error) {
	if len(cfg.Keys) == 0 {
		return nil, fmt.Errorf("%w: Config.Keys is empty", ErrKey)
	}
	s := &Sealer{
		encrypt: cfg.Encrypt, maxAge: cfg.MaxAge, skew: cfg.ClockSkew,
		context: slices.Clone(cfg.Context), now: cfg.Now, rand: cfg.Rand,
	}
	if s.skew == 0 {
		s.skew = DefaultClockSkew
	} else if s.skew < 0 {
		s.skew = 0
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.rand == nil {
		s.rand = rand.Reader
	}
	for _, k := range cfg.Keys {
		if err := s.AddKey(k); err != nil {
			return nil, err
		}
	}
	return s, nil
}

func deriveKey(k Key) (*key, error) {
	if len(k.Secret) < MinSecretLen {
		return nil, fmt.Errorf("%w: key %d: secret of %d bytes, want at least %d", ErrKey, k.ID, len(k.Secret), MinSecretLen)
	}
	mac, err := hkdf.Key(sha256.New, k.Secret, nil, "go-rserpool cookie v1 hmac-sha256", macLen)
	if err != nil {
		return nil, fmt.Errorf("%w: key %d: %v", ErrKey, k.ID, err)
	}
	ek, err := hkdf.Key(sha256.New, k.Secret, nil, "go-rserpool cookie v1 aes-256-gcm", 32)
	if err != nil {
		return nil, fmt.Errorf("%w: key %d: %v", ErrKey, k.ID, err)
	}
	blk, err := aes.NewCipher(ek)
	if err != nil {
		return nil, fmt.Errorf("%w: key %d: %v", ErrKey, k.ID, err)
	}
	g, err := cipher.NewGCM(blk)
	if err != nil {
		return nil, fmt.Errorf("%w: key %d: %v", ErrKey, k.ID, err)
	}
	return &key{id: k.ID, mac: mac, aes: g}, nil
}

// AddKey adds a key that opens cookies; it seals only once UseKey names
// it (or when it is the first key). Rotation across a pool: give every
// pool element the new key with AddKey, then make it the sealing key with
// UseKey on each, then, once cookies sealed with the old key are no longer
// wanted (older than MaxAge, say), RemoveKey the old one. It fails with
// ErrKey when the secret is too short or the ID is held already.
func (s *Sealer) AddKey(k Key) error {
	d, err := deriveKey(k)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.find(k.ID) != nil {
		return fmt.Errorf("%w: key ID %d is held already", ErrKey, k.ID)
	}
	s.keys = append(s.keys, d)
	return nil
}

// UseKey makes the held key id the one Seal uses; the others still open.
// It fails with ErrKey when the Sealer does not hold id.
func (s *Sealer) UseKey(id uint32) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	i := slices.IndexFunc(s.keys, func(k *key) bool { return k.id == id })
	if i < 0 {
		return fmt.Errorf("%w: key ID %d is not held", ErrKey, id)
	}
	s.keys[0], s.keys[i] = s.keys[i], s.keys[0]
	return nil
}

// Rotate adds k and makes it the sealing key (AddKey, then UseKey).
func (s *Sealer) Rotate(k Key) error {
	if err := s.AddKey(k); err != nil {
		return err
	}
	return s.UseKey(k.ID)
}

// RemoveKey drops the key id: cookies sealed with it no longer open
// (ErrUnknownKey). It fails with ErrKey when id is not held or is the
// sealing key (UseKey another first).
func (s *Sealer) RemoveKey(id uint32) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	i := slices.IndexFunc(s.keys, func(k *key) bool { return k.id == id })
	switch {
	case i < 0:
		return fmt.Errorf("%w: key ID %d is not held", ErrKey, id)
	case i == 0:
		return fmt.Errorf("%w: key ID %d seals; UseKey another before removing it", ErrKey, id)
	}
	s.keys = slices.Delete(s.keys, i, i+1)
	return nil
}

// KeyIDs returns the IDs of the held keys, the sealing key first.
func (s *Sealer) KeyIDs() []uint32 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	ids := make([]uint32, len(s.keys))
	for i, k := range s.keys {
		ids[i] = k.id
	}
	return ids
}

func (s *Sealer) find(id uint32) *key {
	for _, k := range s.keys {
		if k.id == id {
			return k
		}
	}
	return nil
}

// mac computes the cookie's HMAC over the context and msg (header and
// body) and appends it to dst.
func (s *Sealer) mac(dst []byte, k *key, msg []byte) []byte {
	h := hmac.New(sha256.New, k.mac)
	var n [4]byte
	binary.BigEndian.PutUint32(n[:], uint32(len(s.context)))
	h.Write(n[:])
	h.Write(s.context)
	h.Write(msg)
	return h.Sum(dst)
}

// Seal returns state sealed with the sealing key: authenticated, and
// encrypted when Config.Encrypt is set. It fails with ErrTooLarge when
// the cookie would exceed MaxSealedLen (state over MaxState, or
// MaxStateEncrypted when encrypting), and with the error of Config.Rand.
func (s *Sealer) Seal(state []byte) ([]byte, error) {
	over, max := Overhead, MaxState
	if s.encrypt {
		over, max = OverheadEncrypted, MaxStateEncrypted
	}
	if len(state) > max {
		return nil, fmt.Errorf("%w: %d bytes of state, at most %d fit in one ASAP_COOKIE", ErrTooLarge, len(state), max)
	}
	s.mu.RLock()
	k := s.keys[0]
	s.mu.RUnlock()
	out := make([]byte, headerLen, len(state)+over)
	out[0] = version1
	binary.BigEndian.PutUint32(out[2:6], k.id)
	binary.BigEndian.PutUint64(out[6:14], uint64(s.now().UnixMilli()))
	if s.encrypt {
		out[1] = flagCrypt
		out = out[:headerLen+nonceLen]
		if _, err := io.ReadFull(s.rand, out[headerLen:]); err != nil {
			return nil, fmt.Errorf("cookie: nonce: %w", err)
		}
		out = k.aes.Seal(out, out[headerLen:headerLen+nonceLen], state, out[:headerLen])
	} else {
		out = append(out, state...)
	}
	return s.mac(out, k, out), nil
}

// Meta is what a sealed cookie says about itself, returned by OpenMeta.
type Meta struct {
	KeyID     uint32    // the key that sealed it
	Sealed    time.Time // when it was sealed, to the millisecond, by the sealer's clock
	Encrypted bool
}

// Open checks sealed and returns the state in it. It refuses input that
// is not a cookie of this package (ErrInvalid: also anything longer than
// MaxSealedLen, before any cryptography), names a key it does not hold
// (ErrUnknownKey), fails authentication (ErrTampered) or, with MaxAge, is
// too old or too far in the future (ErrExpired). The checks run in that
// order, and nothing in the cookie is trusted before its HMAC matched,
// compared in constant time. The returned state is a new slice.
func (s *Sealer) Open(sealed []byte) ([]byte, error) {
	st, _, err := s.OpenMeta(sealed)
	return st, err
}

// OpenMeta is Open that also returns the cookie's Meta (valid when err is
// nil, and for ErrExpired).
func (s *Sealer) OpenMeta(sealed []byte) ([]byte, Meta, error) {
	var m Meta
	if len(sealed) > MaxSealedLen {
		return nil, m, fmt.Errorf("%w: %d bytes, more than the %d one ASAP_COOKIE_ECHO carries", ErrInvalid, len(sealed), MaxSealedLen)
	}
	if len(sealed) < Overhead {
		return nil, m, fmt.Errorf("%w: %d bytes, shorter than the %d-byte header and HMAC", ErrInvalid, len(sealed), Overhead)
	}
	if sealed[0] != version1 {
		return nil, m, fmt.Errorf("%w: version %d, want %d", ErrInvalid, sealed[0], version1)
	}
	flags := sealed[1]
	if flags&^knownFlags != 0 {
		return nil, m, fmt.Errorf("%w: unknown flags %#02x", ErrInvalid, flags)
	}
	m.Encrypted = flags&flagCrypt != 0
	if m.Encrypted && len(sealed) < OverheadEncrypted {
		return nil, m, fmt.Errorf("%w: %d bytes, shorter than an encrypted cookie's %d", ErrInvalid, len(sealed), OverheadEncrypted)
	}
	m.KeyID = binary.BigEndian.Uint32(sealed[2:6])
	s.mu.RLock()
	k := s.find(m.KeyID)
	s.mu.RUnlock()
	if k == nil {
		return nil, m, fmt.Errorf("%w: key ID %d", ErrUnknownKey, m.KeyID)
	}
	body, tag := sealed[:len(sealed)-macLen], sealed[len(sealed)-macLen:]
	var buf [macLen]byte
	if !hmac.Equal(s.mac(buf[:0], k, body), tag) {
		return nil, m, fmt.Errorf("%w: HMAC-SHA-256 under key ID %d does not match", ErrTampered, m.KeyID)
	}
	m.Sealed = time.UnixMilli(int64(binary.BigEndian.Uint64(sealed[6:14])))
	var state []byte
	if m.Encrypted {
		nonce, ct := body[headerLen:headerLen+nonceLen], body[headerLen+nonceLen:]
		var err error
		state, err = k.aes.Open(nil, nonce, ct, body[:headerLen])
		if err != nil {
			return nil, m, fmt.Errorf("%w: AES-GCM under key ID %d: %v", ErrTampered, m.KeyID, err)
		}
	} else {
		state = slices.Clone(body[headerLen:])
	}
	if state == nil {
		state = []byte{}
	}
	if s.maxAge > 0 {
		now := s.now()
		if age := now.Sub(m.Sealed); age > s.maxAge {
			return nil, m, fmt.Errorf("%w: sealed %v ago, MaxAge is %v", ErrExpired, age.Truncate(time.Millisecond), s.maxAge)
		} else if -age > s.skew {
			return nil, m, fmt.Errorf("%w: sealed %v in the future, ClockSkew is %v", ErrExpired, (-age).Truncate(time.Millisecond), s.skew)
		}
	}
	return state, m, nil
}
