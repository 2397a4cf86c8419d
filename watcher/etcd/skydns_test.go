package etcd

import (
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/discodns/discodns/cache"
	"github.com/discodns/discodns/watcher"
	"github.com/discodns/discodns/watcher/internal/watchertest"
)

func TestSkyDNSSplitter(t *testing.T) {
	split := SkyDNSSplitter("/skydns/", "svc.internal.")
	for _, tc := range []struct {
		key, service, id string
		err              string // "": an instance key; "other": errOtherKey
	}{
		{"/skydns/internal/svc/web/a", "web", "a", ""},
		{"/skydns/internal/svc/web/x/a", "web", "a.x", ""},
		{"/skydns/internal/svc/web", "web", "", ""},
		{"/skydns/internal/svc/web/web", "web", "web", ""},
		{"/skydns/Internal/SVC/Web/A", "web", "a", ""},
		{"/skydns/internal/svc", "", "", "other"},
		{"/skydns/internal/svc/", "", "", "other"},
		{"/skydns/internal/other/web/a", "", "", "other"},
		{"/skydnsx/internal/svc/web/a", "", "", "other"},
		{"/skydns/internal/svc//a", "", "", "empty DNS label"},
		{"/skydns/internal/svc/web/", "", "", "empty DNS label"},
	} {
		service, id, err := split(tc.key)
		got := ""
		switch {
		case errors.Is(err, errOtherKey):
			got = "other"
		case err != nil:
			got = err.Error()
		}
		if service != tc.service || id != tc.id || (tc.err == "") != (got == "") || !strings.Contains(got, tc.err) {
			t.Errorf("%s: %q %q %v, want %q %q %q", tc.key, service, id, err, tc.service, tc.id, tc.err)
		}
	}
}

func TestDecodeSkyDNS(t *testing.T) {
	for _, tc := range []struct {
		value, want string // want: "address port priority weight", or an error substring
	}{
		{`{"host":"10.0.0.1","port":8080,"priority":10,"weight":100,"ttl":30}`, "10.0.0.1 8080 10 100"},
		{`{"host":"10.0.0.1"}`, "10.0.0.1 0 10 100"},
		{`{"host":"db.example.com.","port":5432,"priority":5,"weight":20}`, "db.example.com 5432 5 20"},
		{`{"host":"2001:db8::1","port":53}`, "2001:db8::1 53 10 100"},
		{`{"host":"::ffff:10.7.0.1","port":53}`, "10.7.0.1 53 10 100"},
		{`{"host":"[2001:DB8:0::1]","port":53}`, "2001:db8::1 53 10 100"},
		{`{"host":"0.0.0.0","port":53}`, "unspecified"},
		{`{"host":"255.255.255.255","port":53}`, "broadcast"},
		{`{"host":"bad_host","port":53}`, "not an IP address or a host name"},
		{`{"port":53}`, "no host"},
		{`{"host":"10.0.0.1","port":70000}`, "out of range"},
		{`{"host":"10.0.0.1","weight":-1}`, "out of range"},
		{`not json`, "not a JSON object"},
	} {
		in, err := DecodeSkyDNS("web", "a", []byte(tc.value))
		got := ""
		if err != nil {
			got = err.Error()
		} else {
			got = strings.Join([]string{in.Address, itoa(in.Port), itoa(in.Priority), itoa(in.Weight)}, " ")
		}
		if !strings.Contains(got, tc.want) {
			t.Errorf("%s: %q, want %q", tc.value, got, tc.want)
		}
	}
	if _, err := DecodeSkyDNS("web", "a", []byte(`{"text":"hello"}`)); !errors.Is(err, watcher.ErrRemoved) {
		t.Errorf("a TXT-only record: %v, want watcher.ErrRemoved", err)
	}
}

func TestRescaleWeights(t *testing.T) {
	tb := cache.NewTable(nil)
	tb.AddSource("sky", watchertest.Zone)
	sink := newRescalingSink(tb)
	sink.Replace("sky", []cache.Instance{
		{Service: "web", ID: "a", Address: "10.0.0.1", Priority: 10, Weight: 100},
		{Service: "web", ID: "b", Address: "10.0.0.2", Priority: 10, Weight: 300},
		{Service: "web", ID: "c", Address: "10.0.0.3", Priority: 20, Weight: 100},
	})
	weights := func() map[string]uint16 {
		out := map[string]uint16{}
		for _, ep := range tb.Snapshot().Services.Get("web." + watchertest.Zone).Endpoints {
			out[ep.ID] = ep.Weight
		}
		return out
	}
	if w := weights(); w["a"] != 25 || w["b"] != 75 || w["c"] != 100 {
		t.Errorf("weights %v, want a 25, b 75, c 100 (per priority)", w)
	}
	sink.Put("sky", cache.Instance{Service: "web", ID: "d", Address: "10.0.0.4", Priority: 10, Weight: 1})
	if w := weights(); w["a"] != 24 || w["b"] != 74 || w["d"] != 1 {
		t.Errorf("after a put: %v, want a 24, b 74, d 1 (at least 1)", w)
	}
	sink.Delete("sky", "web", "b")
	if w := weights(); len(w) != 3 || w["a"] != 99 || w["d"] != 1 {
		t.Errorf("after a delete: %v, want a 99, d 1, c 100", w)
	}
	sink.ReplaceService("sky", "web", []cache.Instance{
		{Service: "web", ID: "e", Address: "10.0.0.5", Priority: 10, Weight: 50},
		{Service: "web", ID: "f", Address: "10.0.0.6", Priority: 10, Weight: 150},
	})
	if w := weights(); len(w) != 2 || w["e"] != 25 || w["f"] != 75 {
		t.Errorf("after a service replace: %v, want e 25, f 75", w)
	}
}

func itoa(p uint16) string { return strconv.Itoa(int(p)) }
