// Package admin serves discodns's HTTP interface: Prometheus metrics,
// liveness and readiness, and the service table as JSON.
package admin

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/http/pprof"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/discodns/discodns/cache"
)

// DNSState is what /readyz needs to know of DNS besides the table.
type DNSState struct {
	// Serving: DNS is bound and answers from a snapshot in which every
	// source had listed.
	Serving bool
	// Forwarding: names outside the zones are forwarded, so that a
	// configuration without sources serves something.
	Forwarding bool
}

// Handler returns the admin HTTP handler for the snapshots of table, serving the metrics
// gathered from gatherer. dns, when not nil, tells the state of DNS; nil
// means serving and not forwarding. /readyz is ready when DNS serves what
// the configuration promises: every source listed and answered from, or,
// with no source, forwarding.
func Handler(table cache.Snapshots, gatherer prometheus.Gatherer, dns func() DNSState) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		snap := table.Snapshot()
		st := DNSState{Serving: true}
		if dns != nil {
			st = dns()
		}
		r := ready(snap, st)
		status := http.StatusOK
		if !r.Ready {
			status = http.StatusServiceUnavailable
		}
		writeJSON(w, status, r)
	})
	mux.HandleFunc("GET /v1/services", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, servicesJSON(table.Snapshot(), r.URL.Query().Get("service")))
	})
	// Profiles, as Go's net/http/pprof serves them (the admin address is
	// loopback by default).
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("GET /{$}", status(table))
	return mux
}

// NewServer returns an HTTP server for h with conservative timeouts.
func NewServer(addr string, h http.Handler) *http.Server {
	return &http.Server{
		Addr:              addr,
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       60 * time.Second,
	}
}

type readiness struct {
	Ready bool `json:"ready"`
	// Reason says why not ready.
	Reason string `json:"reason,omitempty"`
	// ForwardOnly: no sources, every name outside the zone forwarded.
	ForwardOnly bool         `json:"forward_only,omitempty"`
	Version     uint64       `json:"version"`
	Sources     []sourceJSON `json:"sources"`
}

// ready tells whether DNS serves what the configuration promises, and why
// not.
func ready(snap *cache.Snapshot, st DNSState) readiness {
	r := readiness{Version: snap.Version, Sources: sourcesJSON(snap)}
	var waiting []string
	for _, s := range snap.Sources {
		if !s.Listed {
			waiting = append(waiting, s.Name)
		}
	}
	switch {
	case len(snap.Sources) == 0 && !st.Forwarding:
		r.Reason = "no sources and no forwarding: nothing to serve"
	case len(waiting) > 0:
		r.Reason = "waiting for sources to list: " + strings.Join(waiting, ", ")
	case !st.Serving:
		r.Reason = "DNS does not answer from the listed sources yet"
	default:
		r.Ready = true
		r.ForwardOnly = len(snap.Sources) == 0
	}
	return r
}

type sourceJSON struct {
	Name      string     `json:"name"`
	Zone      string     `json:"zone"`
	State     string     `json:"state"`
	Since     time.Time  `json:"since"`
	Error     string     `json:"error,omitempty"`
	Listed    bool       `json:"listed"`
	LastList  *time.Time `json:"last_list,omitempty"`
	Services  int        `json:"services"`
	Instances int        `json:"instances"`
	// SeededFrom is the time of the state file the source serves from
	// until its registry lists; SeededAge is its age in seconds.
	SeededFrom *time.Time `json:"seeded_from_state_file,omitempty"`
	SeededAge  float64    `json:"seeded_age_seconds,omitempty"`
}

type servicesDoc struct {
	Version  uint64        `json:"version"`
	Sources  []sourceJSON  `json:"sources"`
	Services []serviceJSON `json:"services"`
}

type serviceJSON struct {
	Name      string         `json:"name"`
	FQDN      string         `json:"fqdn"`
	Instances []instanceJSON `json:"instances"`
}

type instanceJSON struct {
	Name     string            `json:"name"`
	Service  string            `json:"service"`
	ID       string            `json:"id"`
	Address  string            `json:"address"`
	Port     uint16            `json:"port"`
	Priority uint16            `json:"priority"`
	Weight   uint16            `json:"weight"`
	Tags     []string          `json:"tags,omitempty"`
	Meta     map[string]string `json:"meta,omitempty"`
	Source   string            `json:"source"`
}

func sourcesJSON(snap *cache.Snapshot) []sourceJSON {
	out := make([]sourceJSON, 0, len(snap.Sources))
	for _, s := range snap.Sources {
		sj := sourceJSON{
			Name: s.Name, Zone: s.Zone, State: s.State.String(), Since: s.Since, Error: s.Err,
			Listed: s.Listed, Services: s.Services, Instances: s.Instances,
		}
		if s.Listed {
			sj.LastList = &s.LastList
		}
		if !s.Seeded.IsZero() {
			sj.SeededFrom = &s.Seeded
			sj.SeededAge = time.Since(s.Seeded).Seconds()
		}
		out = append(out, sj)
	}
	return out
}

func servicesJSON(snap *cache.Snapshot, filter string) servicesDoc {
	doc := servicesDoc{Version: snap.Version, Sources: sourcesJSON(snap), Services: []serviceJSON{}}
	filter = strings.ToLower(filter)
	for _, fqdn := range slices.Sorted(maps.Keys(maps.Collect(snap.Services.All()))) {
		svc := snap.Services.Get(fqdn)
		if filter != "" && svc.Name != filter && fqdn != strings.TrimSuffix(filter, ".")+"." {
			continue
		}
		sj := serviceJSON{Name: svc.Name, FQDN: svc.FQDN, Instances: make([]instanceJSON, 0, len(svc.Endpoints))}
		for _, ep := range svc.Endpoints {
			sj.Instances = append(sj.Instances, instanceJSON{
				Name: svc.InstanceName(&ep), Service: ep.Service, ID: ep.ID, Address: ep.Address,
				Port: ep.Port, Priority: ep.Priority, Weight: ep.Weight, Tags: ep.Tags, Meta: ep.Meta, Source: ep.Source,
			})
		}
		doc.Services = append(doc.Services, sj)
	}
	return doc
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}
