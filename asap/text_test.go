package asap

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/go-rserpool/rserpool/tlv"
	"github.com/go-rserpool/rserpool/transport"
	"github.com/go-rserpool/rserpool/transport/memnet"
)

// TestPEEventText: a PE's events name the registrar in the module's ID
// form (before: "registered (registrar 0000beef)"; JSON Kind 1, ServerID
// 48879, Err {}).
func TestPEEventText(t *testing.T) {
	at := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	ev := PEEvent{Kind: PEEventRegistered, Time: at, ServerID: 0xbeef}
	if got, want := ev.String(), "registered (registrar 0x0000beef)"; got != want {
		t.Errorf("String %q, want %q", got, want)
	}
	for _, c := range []struct {
		ev   PEEvent
		want string
	}{
		{ev, `{"Kind":"registered","Time":"2026-12-01T10:00:00Z","ServerID":"0x0000beef"}`},
		{PEEvent{Kind: PEEventLost, Time: at, Err: errors.New("home lost")},
			`{"Kind":"registration lost","Time":"2026-12-01T10:00:00Z","Err":"home lost"}`},
		{PEEvent{Kind: PEEventNoRegistrar, Time: at, Err: errors.New("none"), Retry: at.Add(time.Second)},
			`{"Kind":"no registrar","Time":"2026-12-01T10:00:00Z","Err":"none","Retry":"2026-12-01T10:00:01Z"}`},
	} {
		b, err := json.Marshal(c.ev)
		if err != nil || string(b) != c.want {
			t.Errorf("got  %s (%v)\nwant %s", b, err, c.want)
		}
	}
}

// TestLogIDs: the PE's logs give its identifier and its registrar's in the
// module's form (before: pe=3735928559, server=0).
func TestLogIDs(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	c := newPE(t, func(cfg *PEConfig) { cfg.PEID, cfg.Logger = 0xdeadbeef, log })
	now := time.Unix(0, 0)
	registerPE(t, c, now)
	out := buf.String()
	// The hunt's registrar is configured, so its ID is not known yet.
	for _, want := range []string{"pe=0xdeadbeef", "server=0x00000000"} {
		if !strings.Contains(out, want) {
			t.Errorf("logs lack %s:\n%s", want, out)
		}
	}
}

// A running PoolElement prints as its identifier and pool, reading none of
// its live state (printing the struct with %v raced with its loop).
func TestPoolElementString(t *testing.T) {
	net := memnet.New(1)
	defer net.Close()
	nd := net.NewNode()
	pe, err := NewPoolElement(PEConfig{PoolHandle: []byte("echo"), PEID: 42, Registrars: []transport.Addr{nd.Addr(transport.PortASAP)},
		UserTransport: tlv.NewSCTPTransport(7000, tlv.TransportUseDataOnly, nd.IP())}, nd)
	if err != nil {
		t.Fatal(err)
	}
	defer pe.Close()
	done := make(chan struct{})
	go func() { defer close(done); pe.Register(t.Context()) }() // the loop runs meanwhile
	if got, want := fmt.Sprint(pe), "PE 0x0000002a in pool echo"; got != want {
		t.Errorf("%%v of a PoolElement = %q, want %q", got, want)
	}
	pe.Close()
	<-done
}
