package admin

import (
	_ "embed"
	"html/template"
	"net/http"
	"time"

	"github.com/discodns/discodns/cache"
)

//go:embed status.html
var statusHTML string

var statusTemplate = template.Must(template.New("status").Funcs(template.FuncMap{
	"ago": func(t time.Time) string {
		if t.IsZero() {
			return "never"
		}
		return time.Since(t).Round(time.Second).String() + " ago"
	},
	"clock": func(t time.Time) string { return t.UTC().Format("15:04:05.000") },
}).Parse(statusHTML))

// statusPage is what the status page shows.
type statusPage struct {
	Version  uint64
	Now      time.Time
	Sources  []cache.SourceStatus
	Services []serviceJSON
	Changes  []cache.Change
	Total    int // instances
}

// status serves the status page: sources and their state, services and
// instances with a filter box, recent changes. Plain HTML and a few lines
// of JavaScript for the filter, all served by the binary.
func status(table cache.Snapshots) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		snap := table.Snapshot()
		page := statusPage{Version: snap.Version, Now: time.Now(), Sources: snap.Sources,
			Services: servicesJSON(snap, "").Services, Changes: snap.Changes}
		for _, s := range page.Services {
			page.Total += len(s.Instances)
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		statusTemplate.Execute(w, page)
	}
}
