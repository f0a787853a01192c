package cookie_test

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/go-rserpool/rserpool/asap/cookie"
)

// Two pool elements of pool "kv" share a key. One seals the session state
// into the cookie it sends its pool user (ASAP_COOKIE, RFC 5352 §3.9);
// after a failover the other opens the echo (ASAP_COOKIE_ECHO, §3.10). A
// cookie the pool user changed is refused (RFC 5355 §3).
func Example() {
	key := cookie.Key{ID: 1, Secret: bytes.Repeat([]byte{0x5a}, 32)} // use 32 bytes from crypto/rand
	cfg := cookie.Config{Keys: []cookie.Key{key}, Encrypt: true, Context: []byte("kv")}
	pe1, err := cookie.New(cfg)
	if err != nil {
		fmt.Println(err)
		return
	}
	pe2, err := cookie.New(cfg)
	if err != nil {
		fmt.Println(err)
		return
	}

	sealed, err := pe1.Seal([]byte("counter=41"))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("sealed bytes:", len(sealed))

	state, err := pe2.Open(sealed)
	fmt.Printf("opened by the other PE: %q, %v\n", state, err)

	sealed[len(sealed)/2] ^= 1 // the pool user flips a bit
	_, err = pe2.Open(sealed)
	fmt.Println("tampered refused:", errors.Is(err, cookie.ErrTampered))
	// Output:
	// sealed bytes: 84
	// opened by the other PE: "counter=41", <nil>
	// tampered refused: true
}
