//go:build unix

package status_test

import (
	"bytes"
	"context"
	"html"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/go-rserpool/rserpool/enrp/status"
	"github.com/go-rserpool/rserpool/internal/leakcheck"
	"github.com/go-rserpool/rserpool/policy"
)

// chromiumPath finds headless Chromium: the Debian package's
// /usr/bin/chromium, else chromium or chromium-browser on PATH.
func chromiumPath() (string, bool) {
	if _, err := os.Stat("/usr/bin/chromium"); err == nil {
		return "/usr/bin/chromium", true
	}
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, true
		}
	}
	return "", false
}

// dumpDOM loads url in headless Chromium and returns the document as the
// browser built it (after parsing, styling and any script, which the
// page's Content-Security-Policy forbids).
func dumpDOM(t *testing.T, chromium, url string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, chromium,
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir="+t.TempDir(), "--dump-dom", url)
	// Chromium starts helper processes: its own process group, killed
	// whole when the time is up, so that none outlives the test.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium --dump-dom %s: %v\n%s", url, err, stderr.Bytes())
	}
	return stdout.String()
}

var (
	poolRe = regexp.MustCompile(`<h3>Pool <span class="handle">([^<]*)</span></h3>`)
	peRe   = regexp.MustCompile(`<td class="pe-id">([^<]*)</td>`)
	loadRe = regexp.MustCompile(`<td class="num">([0-9.]+ %)</td>`)
)

// seen returns the text of the first group of every match of re in dom.
func seen(re *regexp.Regexp, dom string) []string {
	var out []string
	for _, m := range re.FindAllStringSubmatch(dom, -1) {
		out = append(out, html.UnescapeString(m[1]))
	}
	return out
}

// The status page in a real browser: headless Chromium loads it from the
// host's mux on 127.0.0.1 and shows the pools and their PEs; after a PE
// deregisters (RFC 5352 §3.3), a reload no longer lists it.
func TestBrowserShowsPoolsAndPEs(t *testing.T) {
	chromium, ok := chromiumPath()
	if !ok {
		t.Skip("headless Chromium not found (/usr/bin/chromium, or chromium on PATH): install the Debian package chromium to run this test")
	}
	leakcheck.Check(t)
	g := newRig(t, status.Options{})
	g.addPE("echo", 0x2a, policy.RoundRobin, policy.Values{})
	leaving := g.addPE("echo", 0x2b, policy.RoundRobin, policy.Values{})
	g.addPE("db", 0x07, policy.LeastUsed, policy.Values{Load: quarter})

	mux := http.NewServeMux()
	mux.Handle("/rserpool/", g.page)
	srv := httptest.NewServer(mux) // 127.0.0.1
	defer srv.Close()
	url := srv.URL + "/rserpool/"

	dom := dumpDOM(t, chromium, url)
	if got := seen(poolRe, dom); !slices.Equal(got, []string{"echo", "db"}) {
		t.Errorf("pools shown %q, want echo and db\n%s", got, dom)
	}
	if got := seen(peRe, dom); !slices.Equal(got, []string{"0x0000002a", "0x0000002b", "0x00000007"}) {
		t.Errorf("PEs shown %q, want 0x0000002a, 0x0000002b, 0x00000007\n%s", got, dom)
	}
	if got := seen(loadRe, dom); !slices.Contains(got, "25.0 %") {
		t.Errorf("loads shown %q, want 25.0 %% for PE 0x00000007", got)
	}

	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	if err := leaving.Deregister(ctx); err != nil {
		t.Fatal(err)
	}
	dom = dumpDOM(t, chromium, url)
	if got := seen(peRe, dom); !slices.Equal(got, []string{"0x0000002a", "0x00000007"}) {
		t.Errorf("after PE 0x0000002b deregistered, PEs shown %q, want 0x0000002a, 0x00000007\n%s", got, dom)
	}
	if got := seen(poolRe, dom); !slices.Equal(got, []string{"echo", "db"}) {
		t.Errorf("after the deregistration, pools shown %q, want echo and db", got)
	}
}
