package admin

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/discodns/discodns/cache"
)

// Collector exports the table's per-source state as metrics, read from the
// latest snapshot at scrape time (nothing to keep in step).
type Collector struct {
	table      cache.Snapshots
	state      *prometheus.Desc
	services   *prometheus.Desc
	instances  *prometheus.Desc
	lastList   *prometheus.Desc
	since      *prometheus.Desc
	version    *prometheus.Desc
	writes     *prometheus.Desc
	collisions *prometheus.Desc
	clashes    *prometheus.Desc
	invalid    *prometheus.Desc
	seeded     *prometheus.Desc
}

// NewCollector returns a collector over table; register it with a registry.
func NewCollector(table cache.Snapshots) *Collector {
	src := []string{"source"}
	return &Collector{
		table: table,
		state: prometheus.NewDesc("discodns_source_state",
			"1 for the state each source is in (syncing, connected, stale), 0 for the others.", []string{"source", "state"}, nil),
		services: prometheus.NewDesc("discodns_source_services",
			"Services the source holds now (kept while stale).", src, nil),
		instances: prometheus.NewDesc("discodns_source_instances",
			"Instances the source holds now (kept while stale).", src, nil),
		lastList: prometheus.NewDesc("discodns_source_last_list_timestamp_seconds",
			"Unix time of the source's last successful full list; 0 before the first.", src, nil),
		since: prometheus.NewDesc("discodns_source_state_since_timestamp_seconds",
			"Unix time the source entered its current state.", src, nil),
		version: prometheus.NewDesc("discodns_cache_snapshot_version",
			"Version of the table snapshot being served (the SOA serial).", nil, nil),
		writes: prometheus.NewDesc("discodns_cache_writes_total",
			"Writes from the sources that changed the table, in the snapshot being served; a burst of them is published in fewer snapshots (discodns_cache_snapshot_version).", nil, nil),
		collisions: prometheus.NewDesc("discodns_cache_label_collisions",
			"Registry service names not served because their DNS label is taken by another name.", nil, nil),
		clashes: prometheus.NewDesc("discodns_cache_instance_label_collisions",
			"Instances whose DNS label was taken in their service even with its hash suffix (IDs crafted to collide); each got a further suffix.", nil, nil),
		invalid: prometheus.NewDesc("discodns_cache_invalid_service_names",
			"Registry service names not served because they give no usable DNS label, by source.", src, nil),
		seeded: prometheus.NewDesc("discodns_source_seeded_age_seconds",
			"Age of the state file the source serves its instances from, until its registry lists; 0 when it serves a live list.", src, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.state, c.services, c.instances, c.lastList, c.since, c.version, c.writes, c.collisions, c.clashes, c.invalid, c.seeded} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	snap := c.table.Snapshot()
	for _, s := range snap.Sources {
		for _, st := range []cache.State{cache.StateSyncing, cache.StateConnected, cache.StateStale} {
			v := 0.0
			if s.State == st {
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(c.state, prometheus.GaugeValue, v, s.Name, st.String())
		}
		ch <- prometheus.MustNewConstMetric(c.services, prometheus.GaugeValue, float64(s.Services), s.Name)
		ch <- prometheus.MustNewConstMetric(c.instances, prometheus.GaugeValue, float64(s.Instances), s.Name)
		last := 0.0
		if s.Listed {
			last = float64(s.LastList.UnixNano()) / 1e9
		}
		ch <- prometheus.MustNewConstMetric(c.lastList, prometheus.GaugeValue, last, s.Name)
		ch <- prometheus.MustNewConstMetric(c.since, prometheus.GaugeValue, float64(s.Since.UnixNano())/1e9, s.Name)
		age := 0.0
		if !s.Seeded.IsZero() {
			age = time.Since(s.Seeded).Seconds()
		}
		ch <- prometheus.MustNewConstMetric(c.seeded, prometheus.GaugeValue, age, s.Name)
	}
	ch <- prometheus.MustNewConstMetric(c.version, prometheus.GaugeValue, float64(snap.Version))
	ch <- prometheus.MustNewConstMetric(c.writes, prometheus.CounterValue, float64(snap.Writes))
	ch <- prometheus.MustNewConstMetric(c.collisions, prometheus.GaugeValue, float64(len(snap.Collisions)))
	ch <- prometheus.MustNewConstMetric(c.clashes, prometheus.GaugeValue, float64(snap.InstanceLabelCollisions))
	for _, st := range snap.Sources {
		ch <- prometheus.MustNewConstMetric(c.invalid, prometheus.GaugeValue, float64(st.InvalidNames), st.Name)
	}
}
