package admin

import (
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/discodns/discodns/cache"
)

func get(t *testing.T, h http.Handler, path string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
	return rec.Code, rec.Body.String()
}

func TestEndpoints(t *testing.T) {
	table := cache.NewTable(slog.New(slog.NewTextHandler(io.Discard, nil)))
	table.AddSource("etcd", "svc.internal.")
	reg := prometheus.NewRegistry()
	reg.MustRegister(NewCollector(table))
	serving := false
	h := Handler(table, reg, func() DNSState { return DNSState{Serving: serving} })

	if code, _ := get(t, h, "/healthz"); code != 200 {
		t.Errorf("/healthz %d", code)
	}
	if code, body := get(t, h, "/readyz"); code != 503 || !strings.Contains(body, `"syncing"`) {
		t.Errorf("/readyz before the first list: %d %s", code, body)
	}
	table.Replace("etcd", []cache.Instance{
		{Service: "web", ID: "a", Address: "10.0.0.1", Port: 80, Meta: map[string]string{"v": "1"}},
		{Service: "db", ID: "x", Address: "10.0.1.1", Port: 5432},
	})
	if code, _ := get(t, h, "/readyz"); code != 503 {
		t.Errorf("/readyz after the list, before DNS serves it: %d", code)
	}
	serving = true
	if code, body := get(t, h, "/readyz"); code != 200 || !strings.Contains(body, `"connected"`) {
		t.Errorf("/readyz after the list: %d %s", code, body)
	}
	table.SetState("etcd", cache.StateStale, errors.New("etcd down"))
	code, body := get(t, h, "/readyz")
	if code != 200 || !strings.Contains(body, `"stale"`) || !strings.Contains(body, "etcd down") {
		t.Errorf("/readyz while stale: %d %s", code, body)
	}

	code, body = get(t, h, "/v1/services?service=web")
	var doc servicesDoc
	if err := json.Unmarshal([]byte(body), &doc); code != 200 || err != nil {
		t.Fatalf("/v1/services: %d %v %s", code, err, body)
	}
	if len(doc.Services) != 1 || doc.Services[0].FQDN != "web.svc.internal." ||
		doc.Services[0].Instances[0].Name != "a.web.svc.internal." || doc.Services[0].Instances[0].Meta["v"] != "1" {
		t.Errorf("/v1/services?service=web: %+v", doc.Services)
	}
	if _, body := get(t, h, "/v1/services"); strings.Count(body, `"fqdn"`) != 2 {
		t.Errorf("/v1/services lists %d services, want 2", strings.Count(body, `"fqdn"`))
	}

	_, metrics := get(t, h, "/metrics")
	for _, want := range []string{
		`discodns_source_state{source="etcd",state="stale"} 1`,
		`discodns_source_state{source="etcd",state="connected"} 0`,
		`discodns_source_instances{source="etcd"} 2`,
		`discodns_source_services{source="etcd"} 2`,
		`discodns_source_last_list_timestamp_seconds{source="etcd"} 1.`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// TestReadiness: /readyz is ready only when DNS serves what the
// configuration promises, and says why not.
func TestReadiness(t *testing.T) {
	for _, tc := range []struct {
		name    string
		sources []string // added; "listed-" ones have listed
		st      DNSState
		code    int
		want    string
	}{
		{"no sources, no forwarding", nil, DNSState{Serving: true}, 503, `"reason": "no sources and no forwarding: nothing to serve"`},
		{"forward-only", nil, DNSState{Serving: true, Forwarding: true}, 200, `"forward_only": true`},
		{"forward-only, DNS not up", nil, DNSState{Forwarding: true}, 503, `"reason": "DNS does not answer`},
		{"a source has not listed", []string{"listed-a", "b"}, DNSState{Serving: true, Forwarding: true}, 503, `"reason": "waiting for sources to list: b"`},
		{"every source listed", []string{"listed-a"}, DNSState{Serving: true}, 200, `"ready": true`},
		{"listed, DNS not up", []string{"listed-a"}, DNSState{}, 503, `"reason": "DNS does not answer from the listed sources yet"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			table := cache.NewTable(slog.New(slog.NewTextHandler(io.Discard, nil)))
			for _, s := range tc.sources {
				table.AddSource(s, "svc.internal.")
				if strings.HasPrefix(s, "listed-") {
					table.Replace(s, nil)
				}
			}
			h := Handler(table, prometheus.NewRegistry(), func() DNSState { return tc.st })
			if code, body := get(t, h, "/readyz"); code != tc.code || !strings.Contains(body, tc.want) {
				t.Errorf("/readyz %d %s, want %d and %s", code, body, tc.code, tc.want)
			}
		})
	}
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

// TestStatusPage: the page lists sources with their state, services with
// their instances and recent changes, and escapes what registrants wrote.
func TestStatusPage(t *testing.T) {
	table := cache.NewTable(slog.New(slog.NewTextHandler(io.Discard, nil)))
	table.AddSource("etcd", "svc.internal.")
	table.AddSource("zk", "svc.internal.")
	h := Handler(table, prometheus.NewRegistry(), nil)
	_, body := get(t, h, "/")
	if got := sourceState(body, "etcd"); got != "syncing" {
		t.Errorf("etcd before its first list: state %q, want syncing", got)
	}
	table.Replace("etcd", []cache.Instance{
		{Service: "web", ID: "a", Address: "10.0.0.1", Port: 80, Tags: []string{"blue"}, Meta: map[string]string{"note": "<script>alert(1)</script>"}},
		{Service: "db", ID: "x", Address: "10.0.1.1", Port: 5432},
	})
	table.Replace("zk", nil)
	table.SetState("zk", cache.StateStale, errors.New("zk session expired"))
	table.Delete("etcd", "db", "x")
	code, body := get(t, h, "/")
	if code != 200 {
		t.Fatalf("/ = %d", code)
	}
	for source, want := range map[string]string{"etcd": "connected", "zk": "stale"} {
		if got := sourceState(body, source); got != want {
			t.Errorf("source %s: state %q, want %q", source, got, want)
		}
	}
	for _, want := range []string{"<title>discodns</title>", "web.svc.internal.", "10.0.0.1:80", "blue", "zk session expired",
		`id="filter"`, "gone (was 1)", "&lt;script&gt;"} {
		if !strings.Contains(body, want) {
			t.Errorf("the page lacks %q", want)
		}
	}
	if strings.Contains(body, "<script>alert(1)") {
		t.Error("metadata is not escaped")
	}
}
