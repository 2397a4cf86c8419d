package etcd

import (
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/discodns/discodns/cache"
	"github.com/discodns/discodns/watcher"
)

func TestSkyDNSSplitter(t *testing.T) {
	split := SkyDNSSplitter("/skydns/", "svc.internal.")
	for _, tc := range []struct {
		key, service, id string
		err              string // "": an instance key; "other": errOtherKey
	}{
		{"/skydns/internal/svc/web/a", "web", "a.web", ""},
		{"/skydns/internal/svc/web/x/a", "x-web-f2d48833", "a.x.web", ""},
		{"/skydns/internal/svc/web", "web", "web", ""},
		{"/skydns/internal/svc/web_1", "web-1-82e4e9a1", "web_1", ""},
		{"/skydns/internal/svc/web/web", "web", "web.web", ""},
		{"/skydns/Internal/SVC/Web/A", "web", "a.web", ""},
		{"/skydns/internal/svc/_tcp/a", "tcp-59837685", "a._tcp", ""},
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
		{`{"port":53}`, "no host and no text"},
		{`{"host":"10.0.0.1","ttl":-1}`, "ttl -1 out of range"},
		{`{"host":"10.0.0.1","targetstrip":-1}`, "targetstrip -1 out of range"},
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
	in, err := DecodeSkyDNS("web", "a", []byte(`{"text":"hello","ttl":30,"targetstrip":1,"group":"g1"}`))
	if want := (cache.SkyDNS{Text: "hello", TTL: 30, TargetStrip: 1, Group: "g1"}); err != nil || in.Address != "" || in.SkyDNS == nil || *in.SkyDNS != want {
		t.Errorf("a TXT-only record: %+v %v, want no address and %+v", in, err, want)
	}
}

func itoa(p uint16) string { return strconv.Itoa(int(p)) }

// skydnsSeeds are records as registrars write them, and spellings that
// the fast decoder must leave to encoding/json.
var skydnsSeeds = []string{
	`{"host":"10.0.0.1","port":80}`,
	` { "host" : "web.example.com" , "port" : 8080 , "priority" : 10 , "weight" : 5 , "ttl" : 30 }` + "\n",
	`{"text":"hello","ttl":30,"targetstrip":1,"group":"g1"}`,
	`{"HOST":"10.0.0.1","Port":-0}`,
	`{"host":"10.0.0.1","host":"10.0.0.2"}`,
	`{}`,
	`{"host":"a\"b"}`, `{"host":"\u0041"}`, `{"host":"caf\xe9"}`, `{"hoſt":"10.0.0.1"}`,
	`{"host":"10.0.0.1","port":80.0}`, `{"port":8e1}`, `{"port":080}`, `{"port":null}`, `{"port":"80"}`,
	`{"port":99999999999999999999}`, `{"host":"10.0.0.1","mail":true}`, `{"host":"10.0.0.1"} x`,
	`{"host":"10.0.0.1",}`, `{"host":10}`, `[]`, `"host"`, `{"host":"10.0.0.1"`,
}

// TestDecodeSkyDNSFast: the fast decoder takes the records registrars
// write, and what it takes reads as encoding/json reads it.
func TestDecodeSkyDNSFast(t *testing.T) {
	for _, v := range skydnsSeeds[:5] {
		var rec skydnsRecord
		if !decodeSkyDNSFast([]byte(v), &rec) {
			t.Errorf("%s: left to encoding/json", v)
		}
	}
	for _, v := range skydnsSeeds {
		checkSkyDNSFast(t, []byte(v))
	}
}

// FuzzDecodeSkyDNSFast checks that whatever the fast decoder takes,
// encoding/json reads the same.
func FuzzDecodeSkyDNSFast(f *testing.F) {
	for _, v := range skydnsSeeds {
		f.Add([]byte(v))
	}
	f.Fuzz(func(t *testing.T, value []byte) { checkSkyDNSFast(t, value) })
}

func checkSkyDNSFast(t *testing.T, value []byte) {
	t.Helper()
	var fast, slow skydnsRecord
	if !decodeSkyDNSFast(value, &fast) {
		return
	}
	if err := watcher.DecodeObject(value, &slow, "skydns record"); err != nil {
		t.Fatalf("%q: the fast decoder took what encoding/json refuses: %v", value, err)
	}
	if fast != slow {
		t.Fatalf("%q: fast %+v, encoding/json %+v", value, fast, slow)
	}
}
