package test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// definedMetrics returns the metric names the Go sources define.
func definedMetrics(t *testing.T) map[string]bool {
	t.Helper()
	names := map[string]bool{}
	def := regexp.MustCompile(`"(discodns_[a-z_]+)"`)
	err := filepath.WalkDir("..", func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
			return err
		}
		src, err := os.ReadFile(p)
		for _, m := range def.FindAllSubmatch(src, -1) {
			names[string(m[1])] = true
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return names
}

// usedMetrics returns the discodns metric names an expression text uses,
// without the series suffixes of histograms.
func usedMetrics(text string) []string {
	var out []string
	for _, m := range regexp.MustCompile(`discodns_[a-z_]+`).FindAllString(text, -1) {
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if strings.HasSuffix(m, "_seconds"+suffix) {
				m = strings.TrimSuffix(m, suffix)
			}
		}
		out = append(out, m)
	}
	return out
}

// TestContribUsesRealMetrics: the Grafana dashboard parses and the alert
// rules pass promtool, and both use only metrics discodns defines.
func TestContribUsesRealMetrics(t *testing.T) {
	defined := definedMetrics(t)
	if !defined["discodns_dns_requests_total"] || !defined["discodns_source_state"] {
		t.Fatalf("metric definitions not found: %v", defined)
	}

	data, err := os.ReadFile("../contrib/grafana/discodns-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Title  string `json:"title"`
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(data, &dash); err != nil {
		t.Fatalf("dashboard: %v", err)
	}
	if dash.Title == "" || len(dash.Panels) == 0 {
		t.Fatalf("dashboard has no title or panels")
	}
	for _, p := range dash.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			for _, m := range usedMetrics(tg.Expr) {
				if !defined[m] {
					t.Errorf("panel %q uses %s, which discodns does not export", p.Title, m)
				}
			}
		}
	}

	rules := "../contrib/prometheus/discodns-alerts.yml"
	out, err := exec.Command(need(t, "promtool"), "check", "rules", rules).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool check rules: %v\n%s", err, out)
	}
	text, _ := os.ReadFile(rules)
	for _, m := range usedMetrics(string(text)) {
		if !defined[m] {
			t.Errorf("alert rules use %s, which discodns does not export", m)
		}
	}
}
