package main

import (
	"bytes"
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/go-rserpool/rserpool/internal/leakcheck"
)

// The program runs its secured pool and its attacks to the end, and its
// trace says what happened: both PEs registered and served the pool user
// over DTLS, the rogue PE and the scanning PU got 0xa, the PE of the
// rogue CA was refused by the registrar's handshake, the rogue registrar
// by the PE's and the PU's, the registrar on a PE's certificate by the
// PU's AuthorizeRegistrar, and the rogue registrars hold nothing.
func TestRun(t *testing.T) {
	if testing.Short() {
		t.Skip("real SCTP over DTLS on loopback")
	}
	leakcheck.Check(t)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	var out bytes.Buffer
	const n = 4
	if err := run(ctx, &out, n, 0); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	trace := out.String()
	t.Log("\n" + trace)
	lines := strings.Split(strings.TrimSuffix(trace, "\n"), "\n")

	// Each expected line, in order; the PE IDs the PEs registered with
	// are the ones that answer.
	ids := map[string]string{} // pe-1 -> its PE ID
	at := 0
	want := func(what, pattern string) []string {
		t.Helper()
		re := regexp.MustCompile(pattern)
		for ; at < len(lines); at++ {
			if m := re.FindStringSubmatch(lines[at]); m != nil {
				at++
				return m
			}
		}
		t.Fatalf("no line for %s (%s) in order in the trace", what, pattern)
		return nil
	}
	want("the PKI", `^pki: "pool operator CA" and "rogue CA" made in memory; 6 ECDSA P-256 certificates`)
	want("the registrar", `^registrar [0-9a-f]{8} \(reg-1\.reg\.example\) at sctp-udp:127\.0\.0\.1:\d+: SCTP over DTLS`)
	for _, pe := range []string{"pe-1", "pe-2"} {
		ids[pe] = want(pe+" registered", `^`+pe+`\.pe\.example registered in "echo" as PE ([0-9a-f]{8}), serving at sctp-udp:127\.0\.0\.1:\d+$`)[1]
	}
	if ids["pe-1"] == ids["pe-2"] {
		t.Fatalf("both PEs have ID %s", ids["pe-1"])
	}
	want("the resolution", `^app\.pu\.example resolved "echo": 2 PEs$`)
	m := want("the verified dial", `^app\.pu\.example dialled PE ([0-9a-f]{8}): certificate (pe-[12])\.pe\.example, verified$`)
	if ids[m[2]] != m[1] {
		t.Errorf("dialled PE %s presented %s's certificate, whose PE is %s", m[1], m[2], ids[m[2]])
	}
	answered := map[string]int{}
	for i := 1; i <= n; i++ {
		m := want("an answer", `^request \d+ answered by (pe-[12]) \(PE ([0-9a-f]{8})\): "request \d+"$`)
		if ids[m[1]] != m[2] {
			t.Errorf("%s answered as PE %s, registered as %s", m[1], m[2], ids[m[1]])
		}
		answered[m[1]]++
	}
	if answered["pe-1"] == 0 || answered["pe-2"] == 0 {
		t.Errorf("answers %v, want both PEs (round robin)", answered)
	}
	want("the rogue PE refused", `^rogue PE pe-666\.attacker\.example refused \(0xa\): .*Rejected due to security considerations$`)
	want("the rogue CA's PE refused", `^PE pe-3\.pe\.example of "rogue CA" refused by the registrar's handshake: .*refused by the peer`)
	want("the scanner refused", `^PU scanner\.attacker\.example refused \(0xa\): .*ASAP_HANDLE_RESOLUTION.*Rejected due to security considerations$`)
	want("the rogue registrar", `^rogue registrar [0-9a-f]{8} at sctp-udp:127\.0\.0\.1:\d+: certificate "reg-1\.reg\.example" from "rogue CA"$`)
	want("the rogue registrar refused by the PE", `^rogue registrar refused by the PE: .*we refused the peer: .*certificate signed by unknown authority$`)
	want("the rogue registrar refused by the PU", `^rogue registrar refused by the PU: .*we refused the peer: .*certificate signed by unknown authority$`)
	want("the registrar on a PE certificate", `^registrar [0-9a-f]{8} at sctp-udp:127\.0\.0\.1:\d+ on the PE certificate "pe-666\.attacker\.example" of "pool operator CA"$`)
	want("it refused by the PU", `^registrar on a PE certificate refused by the PU: .*"pe-666\.attacker\.example", dialled\) refused by AuthorizeRegistrar`)
	want("the registrar's store", `^registrar [0-9a-f]{8}: 2 PEs in "echo", 2 registrations accepted, 1 refused \(0xa\), 1 resolutions refused \(0xa\), [1-9]\d* handshakes refused$`)
	want("the rogue registrar's store", `^rogue registrar [0-9a-f]{8}: 0 PEs, 0 registrations, 0 resolutions, [1-9]\d* handshakes refused by its peers$`)
	want("the store of the registrar on a PE certificate", `^registrar on a PE certificate [0-9a-f]{8}: 0 PEs, 0 registrations, 0 resolutions$`)
	want("the end", `^done: PEs deregistered$`)
}
