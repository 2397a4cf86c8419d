package test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// chromium runs headless Chromium with args and returns its output.
func chromium(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	argv := append([]string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
		"--user-data-dir=" + t.TempDir()}, args...)
	out, err := exec.CommandContext(ctx, need(t, "chromium"), argv...).Output()
	if err != nil {
		t.Fatalf("chromium %v: %v", args, err)
	}
	return string(out)
}

// sourceState is the state the status page shows for a source: its row's
// data-state, or "" when the page has no row for it.
func sourceState(page, source string) string {
	m := regexp.MustCompile(`<tr data-source="` + regexp.QuoteMeta(source) + `" data-state="([a-z]+)">`).FindStringSubmatch(page)
	if m == nil {
		return ""
	}
	return m[1]
}

// TestStatusPageInBrowser loads the status page of a running discodns in
// headless Chromium: it lists the services, and the filter box (set from
// the URL, as typing it would) hides the others. It leaves a screenshot in
// $TMPDIR/discodns-status.png.
func TestStatusPageInBrowser(t *testing.T) {
	e := startEtcd(t)
	e.put("/services/web/10.0.0.1:8080", `{"tags":["blue"],"meta":{"version":"1.2"}}`)
	e.put("/services/web/10.0.0.2:8080", ``)
	e.put("/services/db/10.0.1.1:5432", ``)
	e.put("/services/cache/10.0.2.1:6379", ``)
	d := startDiscodns(t, etcdConfig(e.endpoint()))
	d.waitInstances("cache.svc.internal.", 1)

	dom := chromium(t, "--virtual-time-budget=3000", "--dump-dom", d.http+"/")
	for _, want := range []string{"web.svc.internal.", "db.svc.internal.", "10.0.0.1:8080", "version=1.2", "3 of 3 services shown"} {
		if !strings.Contains(dom, want) {
			t.Errorf("the page in the browser lacks %q", want)
		}
	}
	if got := sourceState(dom, "etcd"); got != "connected" {
		t.Errorf("source etcd shown as %q, want connected", got)
	}

	dom = chromium(t, "--virtual-time-budget=3000", "--dump-dom", d.http+"/#filter=db")
	if !strings.Contains(dom, "1 of 3 services shown") {
		t.Errorf("filter db: the count is not 1 of 3")
	}
	groups := regexp.MustCompile(`<tbody class="service( hidden)?" data-search="([^" ]+)`).FindAllStringSubmatch(dom, -1)
	if len(groups) != 3 {
		t.Fatalf("%d service groups in the DOM, want 3", len(groups))
	}
	for _, g := range groups {
		hidden, fqdn := g[1] != "", g[2]
		if hidden != (fqdn != "db.svc.internal.") {
			t.Errorf("filter db: %s hidden=%v", fqdn, hidden)
		}
	}

	// etcd goes away: the page says the source is stale, and still lists
	// what it held.
	e.stop()
	eventually(t, 30*time.Second, "etcd source stale", func() error {
		if v := d.gauge(`discodns_source_state{source="etcd",state="stale"}`); v != 1 {
			return fmt.Errorf("stale gauge %v", v)
		}
		return nil
	})
	dom = chromium(t, "--virtual-time-budget=3000", "--dump-dom", d.http+"/")
	if got := sourceState(dom, "etcd"); got != "stale" {
		t.Errorf("source etcd shown as %q after etcd stopped, want stale", got)
	}
	if !strings.Contains(dom, "10.0.0.1:8080") {
		t.Error("a stale source's instances left the page")
	}

	shot := filepath.Join(os.TempDir(), "discodns-status.png")
	os.Remove(shot)
	chromium(t, "--window-size=1280,900", "--virtual-time-budget=3000", "--screenshot="+shot, d.http+"/#filter=web")
	if st, err := os.Stat(shot); err != nil || st.Size() < 1000 {
		t.Errorf("screenshot %s: %v", shot, err)
	} else {
		t.Logf("screenshot: %s", shot)
	}
}
