package cookie

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

func secret(b byte) []byte { return bytes.Repeat([]byte{b}, MinSecretLen) }

// clock is an injected clock for MaxAge tests.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

// zeros is a fixed nonce source, for reproducible seeds only.
type zeros struct{}

func (zeros) Read(b []byte) (int, error) { clear(b); return len(b), nil }

func newSealer(t testing.TB, cfg Config) *Sealer {
	t.Helper()
	if cfg.Keys == nil {
		cfg.Keys = []Key{{ID: 1, Secret: secret(1)}}
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// refused reports whether err is one of Open's refusals.
func refused(err error) bool {
	return errors.Is(err, ErrInvalid) || errors.Is(err, ErrTampered) ||
		errors.Is(err, ErrUnknownKey) || errors.Is(err, ErrExpired)
}

func TestRoundTrip(t *testing.T) {
	for _, enc := range []bool{false, true} {
		s := newSealer(t, Config{Encrypt: enc, Context: []byte("kv")})
		for _, n := range []int{0, 1, 17, 1000} {
			state := bytes.Repeat([]byte{'x'}, n)
			c, err := s.Seal(state)
			if err != nil {
				t.Fatalf("encrypt=%v n=%d: Seal: %v", enc, n, err)
			}
			want := n + Overhead
			if enc {
				want = n + OverheadEncrypted
			}
			if len(c) != want {
				t.Errorf("encrypt=%v n=%d: sealed %d bytes, want %d", enc, n, len(c), want)
			}
			if n >= 8 && enc && bytes.Contains(c, state) {
				t.Errorf("encrypt=%v n=%d: the state is readable in the sealed cookie", enc, n)
			}
			got, m, err := s.OpenMeta(c)
			if err != nil {
				t.Fatalf("encrypt=%v n=%d: Open: %v", enc, n, err)
			}
			if !bytes.Equal(got, state) || m.KeyID != 1 || m.Encrypted != enc {
				t.Errorf("encrypt=%v n=%d: Open = %q, %+v", enc, n, got, m)
			}
		}
	}
}

// Every byte changed, the cookie is refused (RFC 5355 §3: cookie
// tampering); so is every truncation and an appended byte.
func TestTamperEveryByte(t *testing.T) {
	for _, enc := range []bool{false, true} {
		s := newSealer(t, Config{Encrypt: enc})
		c, err := s.Seal([]byte("counter=41"))
		if err != nil {
			t.Fatal(err)
		}
		for i := range c {
			for _, x := range []byte{0x01, 0x80, 0xff} {
				bad := bytes.Clone(c)
				bad[i] ^= x
				if st, err := s.Open(bad); !refused(err) {
					t.Fatalf("encrypt=%v: byte %d ^ %#x: Open = %q, %v; want a refusal", enc, i, x, st, err)
				}
			}
		}
		for n := range len(c) {
			if _, err := s.Open(c[:n]); !refused(err) {
				t.Fatalf("encrypt=%v: truncated to %d: %v", enc, n, err)
			}
		}
		if _, err := s.Open(append(bytes.Clone(c), 0)); !errors.Is(err, ErrTampered) {
			t.Fatalf("encrypt=%v: appended byte: %v, want ErrTampered", enc, err)
		}
		// The plain body is what the HMAC covers: change the state only.
		if !enc {
			bad := bytes.Clone(c)
			copy(bad[headerLen:], "counter=99")
			if _, err := s.Open(bad); !errors.Is(err, ErrTampered) {
				t.Fatalf("state rewritten: %v, want ErrTampered", err)
			}
		}
	}
}

// A cookie sealed with another pool's secret under the same key ID, or
// with another Context, is tampered; one naming a key ID this Sealer does
// not hold is unknown.
func TestForeignKey(t *testing.T) {
	mine := newSealer(t, Config{})
	sameID := newSealer(t, Config{Keys: []Key{{ID: 1, Secret: secret(2)}}})
	otherID := newSealer(t, Config{Keys: []Key{{ID: 7, Secret: secret(1)}}})
	otherCtx := newSealer(t, Config{Context: []byte("other pool")})
	for name, tc := range map[string]struct {
		s    *Sealer
		want error
	}{
		"other secret":  {sameID, ErrTampered},
		"other key ID":  {otherID, ErrUnknownKey},
		"other context": {otherCtx, ErrTampered},
	} {
		c, err := tc.s.Seal([]byte("state"))
		if err != nil {
			t.Fatal(err)
		}
		st, err := mine.Open(c)
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: Open = %q, %v; want %v", name, st, err, tc.want)
		}
		if err != nil && !strings.Contains(err.Error(), "key ID") {
			t.Errorf("%s: error %q does not name the key", name, err)
		}
	}
}

// Rotation: the new key seals, the old one still opens until removed.
func TestRotation(t *testing.T) {
	a := newSealer(t, Config{Keys: []Key{{ID: 1, Secret: secret(1)}}})
	b := newSealer(t, Config{Keys: []Key{{ID: 1, Secret: secret(1)}}})
	old, err := a.Seal([]byte("old"))
	if err != nil {
		t.Fatal(err)
	}
	k2 := Key{ID: 2, Secret: secret(2)}
	// Every PE learns the new key first, then seals with it.
	if err := b.AddKey(k2); err != nil {
		t.Fatal(err)
	}
	if err := a.Rotate(k2); err != nil {
		t.Fatal(err)
	}
	if got := a.KeyIDs(); len(got) != 2 || got[0] != 2 || got[1] != 1 {
		t.Fatalf("KeyIDs after Rotate = %v, want [2 1]", got)
	}
	cur, err := a.Seal([]byte("new"))
	if err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string][]byte{"old": old, "new": cur} {
		st, m, err := b.OpenMeta(c)
		if err != nil || string(st) != name {
			t.Errorf("%s cookie on the other PE: %q, %v", name, st, err)
		}
		if want := map[string]uint32{"old": 1, "new": 2}[name]; m.KeyID != want {
			t.Errorf("%s cookie: key ID %d, want %d", name, m.KeyID, want)
		}
	}
	if err := a.RemoveKey(2); !errors.Is(err, ErrKey) {
		t.Errorf("removing the sealing key: %v, want ErrKey", err)
	}
	if err := a.RemoveKey(1); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Open(old); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("cookie of a removed key: %v, want ErrUnknownKey", err)
	}
	if _, err := a.Open(cur); err != nil {
		t.Errorf("cookie of the current key: %v", err)
	}
	if err := a.RemoveKey(9); !errors.Is(err, ErrKey) {
		t.Errorf("removing an unknown key: %v", err)
	}
	if err := a.UseKey(9); !errors.Is(err, ErrKey) {
		t.Errorf("using an unknown key: %v", err)
	}
	if err := a.AddKey(k2); !errors.Is(err, ErrKey) {
		t.Errorf("adding a held ID again: %v", err)
	}
}

// MaxAge with an injected clock: a cookie opens up to MaxAge after it was
// sealed, not after; one from further in the future than ClockSkew is
// refused too.
func TestExpiry(t *testing.T) {
	clk := &clock{t: time.Unix(1_700_000_000, 0)}
	s := newSealer(t, Config{MaxAge: time.Minute, ClockSkew: 5 * time.Second, Now: clk.now})
	c, err := s.Seal([]byte("s"))
	if err != nil {
		t.Fatal(err)
	}
	clk.t = clk.t.Add(time.Minute)
	if _, err := s.Open(c); err != nil {
		t.Fatalf("at MaxAge: %v", err)
	}
	clk.t = clk.t.Add(time.Millisecond)
	_, m, err := s.OpenMeta(c)
	if !errors.Is(err, ErrExpired) {
		t.Fatalf("after MaxAge: %v, want ErrExpired", err)
	}
	if !m.Sealed.Equal(time.Unix(1_700_000_000, 0)) {
		t.Errorf("Meta.Sealed = %v", m.Sealed)
	}
	// A sealer whose clock is ahead.
	ahead := &clock{t: clk.t.Add(6 * time.Second)}
	f := newSealer(t, Config{Now: ahead.now})
	fc, err := f.Seal([]byte("s"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Open(fc); !errors.Is(err, ErrExpired) {
		t.Errorf("6 s in the future with 5 s skew: %v, want ErrExpired", err)
	}
	ahead.t = clk.t.Add(5 * time.Second)
	if fc, err = f.Seal([]byte("s")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Open(fc); err != nil {
		t.Errorf("5 s in the future with 5 s skew: %v", err)
	}
	// Without MaxAge, age does not matter.
	n := newSealer(t, Config{Now: clk.now})
	clk.t = clk.t.Add(24 * 365 * time.Hour)
	if _, err := n.Open(c); err != nil {
		t.Errorf("no MaxAge, a year later: %v", err)
	}
}

func TestLimits(t *testing.T) {
	for _, enc := range []bool{false, true} {
		s := newSealer(t, Config{Encrypt: enc})
		max := MaxState
		if enc {
			max = MaxStateEncrypted
		}
		c, err := s.Seal(make([]byte, max))
		if err != nil || len(c) != MaxSealedLen {
			t.Fatalf("encrypt=%v: largest state: %d bytes, %v", enc, len(c), err)
		}
		if _, err := s.Open(c); err != nil {
			t.Fatalf("encrypt=%v: largest cookie: %v", enc, err)
		}
		if _, err := s.Seal(make([]byte, max+1)); !errors.Is(err, ErrTooLarge) {
			t.Fatalf("encrypt=%v: one byte more: %v, want ErrTooLarge", enc, err)
		}
	}
	s := newSealer(t, Config{})
	if _, err := s.Open(make([]byte, MaxSealedLen+1)); !errors.Is(err, ErrInvalid) {
		t.Errorf("over-long input: %v, want ErrInvalid", err)
	}
	for _, cfg := range []Config{
		{Keys: []Key{}},
		{Keys: []Key{{ID: 1, Secret: make([]byte, MinSecretLen-1)}}},
		{Keys: []Key{{ID: 1, Secret: secret(1)}, {ID: 1, Secret: secret(2)}}},
	} {
		if _, err := New(cfg); !errors.Is(err, ErrKey) {
			t.Errorf("New(%d keys): %v, want ErrKey", len(cfg.Keys), err)
		}
	}
	if _, err := New(Config{}); !errors.Is(err, ErrKey) {
		t.Errorf("New without keys: %v", err)
	}
}

// A failing nonce source fails Seal instead of sealing with a bad nonce.
func TestSealRandFails(t *testing.T) {
	s := newSealer(t, Config{Encrypt: true, Rand: bytes.NewReader(nil)})
	if _, err := s.Seal([]byte("s")); err == nil {
		t.Fatal("Seal with an empty nonce source succeeded")
	}
}

// Open never panics and never opens input it did not seal: the only
// inputs that open are the sealed seeds themselves.
func FuzzOpen(f *testing.F) {
	// Seeds must seal the same in every fuzzing process: a fixed clock
	// and nonce source.
	clk := &clock{t: time.Unix(1_700_000_000, 0)}
	plain := newSealer(f, Config{Now: clk.now})
	enc := newSealer(f, Config{Encrypt: true, Now: clk.now, Rand: zeros{}})
	var sealed [][]byte
	for _, s := range []*Sealer{plain, enc} {
		c, err := s.Seal([]byte("counter=1"))
		if err != nil {
			f.Fatal(err)
		}
		sealed = append(sealed, c)
		f.Add(c)
	}
	f.Add([]byte{})
	f.Add([]byte{1, 0, 0, 0, 0, 1})
	f.Add(make([]byte, Overhead))
	f.Add(make([]byte, OverheadEncrypted))
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, s := range []*Sealer{plain, enc} {
			st, err := s.Open(b)
			if err != nil {
				if !refused(err) {
					t.Fatalf("Open(%x): error %v is no refusal", b, err)
				}
				continue
			}
			if !slices.ContainsFunc(sealed, func(c []byte) bool { return bytes.Equal(c, b) }) {
				t.Fatalf("Open(%x) opened input nobody sealed: %q", b, st)
			}
			if string(st) != "counter=1" {
				t.Fatalf("a sealed seed opened to %q", st)
			}
		}
	})
}
