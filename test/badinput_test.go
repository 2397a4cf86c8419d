package test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// TestRegistryBadInput puts every kind of bad registry entry beside good
// ones: each bad one skips only itself, is counted, and is logged once.
func TestRegistryBadInput(t *testing.T) {
	e := startEtcd(t)
	e.put("/services/web/10.0.0.1:80", `{"weight":5}`)
	e.put("/services/web/10.0.0.5:80", ``) // empty: an instance with defaults
	bad := map[string]string{
		"/services/web/10.0.0.2:80":    `not json`,
		"/services/web/10.0.0.3:80":    `[1,2]`,
		"/services/web/10.0.0.4:70000": ``,
		"/services/web/10.0.0.6:80":    `{"meta":{"blob":"` + strings.Repeat("x", 100<<10) + `"}}`,
		"/services/web/10.0.0.7:80":    `{"weight":"heavy"}`,
		"/services/web/not-an-address": ``,
	}
	for k, v := range bad {
		e.put(k, v)
	}
	e.put("/services/___/10.0.0.8:80", ``)     // no usable DNS label
	e.put("/services/my_svc/10.0.0.9:80", ``)  // collides with my.svc
	e.put("/services/my.svc/10.0.0.10:80", ``) // served: first in order
	d := startDiscodns(t, etcdConfig(e.endpoint()))
	d.waitInstances("web.svc.internal.", 2)
	d.waitInstances("my-svc.svc.internal.", 1)

	svcs, err := d.services()
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(svcs["web.svc.internal."]); !strings.Contains(got, "10.0.0.1:80") || !strings.Contains(got, "10.0.0.5:80") {
		t.Errorf("web = %s, want the two good instances", got)
	}
	if got := fmt.Sprint(svcs["my-svc.svc.internal."]); got != "[10.0.0.10:80]" {
		t.Errorf("my-svc = %s, want my.svc's instance only", got)
	}
	for metric, want := range map[string]string{
		`discodns_watcher_decode_errors_total{source="etcd"}`:            fmt.Sprint(len(bad)),
		`discodns_cache_invalid_service_names{source="etcd"}`:            "1",
		`discodns_cache_label_collisions`:                                "1",
		`discodns_source_instances{source="etcd"}`:                       "4",
		`discodns_source_services{source="etcd"}`:                        "3",
		`discodns_watcher_relists_total{reason="initial",source="etcd"}`: "1",
	} {
		if v, err := d.metric(metric); err != nil || v != want {
			t.Errorf("%s = %q (%v), want %s", metric, v, err, want)
		}
	}
	// Touching a sibling does not log the bad entries again.
	e.put("/services/web/10.0.0.1:80", `{"weight":6}`)
	eventually(t, 30*time.Second, "the sibling's new weight answered", func() error {
		m, err := d.exchange("_web._tcp.svc.internal.", dns.TypeSRV, "tcp")
		if err != nil {
			return err
		}
		for _, rr := range m.Answer {
			if srv, ok := rr.(*dns.SRV); ok && strings.HasPrefix(srv.Target, "10-0-0-1-80.") && srv.Weight == 6 {
				return nil
			}
		}
		return fmt.Errorf("no weight 6 for 10.0.0.1:80 in %v", m.Answer)
	})
	logs := d.logs()
	for k := range bad {
		if n := strings.Count(logs, k); n != 1 {
			t.Errorf("%s logged %d times, want once", k, n)
		}
	}
	if n := strings.Count(logs, "no usable DNS label"); n != 1 {
		t.Errorf("the unusable name logged %d times, want once", n)
	}
}
