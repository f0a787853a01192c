package transport

// MarshalText implements encoding.TextMarshaler: the name String gives.
func (k Kind) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// MarshalText implements encoding.TextMarshaler with String's form
// ("sctp-udp:192.0.2.1:9899"), so that JSON shows an address as one
// string; the zero Addr is "".
func (a Addr) MarshalText() ([]byte, error) {
	if a == (Addr{}) {
		return []byte{}, nil
	}
	return []byte(a.String()), nil
}

// UnmarshalText implements encoding.TextUnmarshaler (ParseAddr; "" is the
// zero Addr).
func (a *Addr) UnmarshalText(b []byte) error {
	if len(b) == 0 {
		*a = Addr{}
		return nil
	}
	v, err := ParseAddr(string(b))
	if err == nil {
		*a = v
	}
	return err
}
