package watcher

import (
	"errors"
	"testing"

	"github.com/discodns/discodns/cache"
)

type decodeCase struct {
	name    string
	id      string
	value   string
	want    cache.Instance // Service "web" and ID id are filled in
	wantErr bool
}

func runDecodeCases(t *testing.T, decode Decoder, cases []decodeCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := decode("web", tc.id, []byte(tc.value))
			if tc.wantErr {
				if err == nil {
					t.Fatalf("decode(%q, %q) = %+v, want an error", tc.id, tc.value, got)
				}
				return
			}
			if err != nil {
				t.Fatalf("decode(%q, %q): %v", tc.id, tc.value, err)
			}
			want := tc.want
			want.Service, want.ID = "web", tc.id
			if !got.Equal(&want) {
				t.Fatalf("decode(%q, %q)\n got %+v\nwant %+v", tc.id, tc.value, got, want)
			}
		})
	}
}

func TestDecodeDiscox(t *testing.T) {
	def := func(addr string, port uint16) cache.Instance {
		return cache.Instance{Address: addr, Port: port, Priority: 1, Weight: 1}
	}
	runDecodeCases(t, DecodeDiscox, []decodeCase{
		{name: "empty value", id: "10.0.0.5:8080", want: def("10.0.0.5", 8080)},
		{name: "blank value", id: "10.0.0.5:8080", value: " \n", want: def("10.0.0.5", 8080)},
		{name: "empty object", id: "10.0.0.5:8080", value: "{}", want: def("10.0.0.5", 8080)},
		{name: "ipv6", id: "[2001:db8::1]:9000", want: def("2001:db8::1", 9000)},
		{name: "host name", id: "web-1.example.com:80", want: def("web-1.example.com", 80)},
		{name: "single label host", id: "localhost:80", want: def("localhost", 80)},
		{name: "attributes", id: "10.0.0.5:8080",
			value: `{"weight":5,"priority":2,"tags":["blue","canary"],"meta":{"version":"1.2"}}`,
			want: cache.Instance{Address: "10.0.0.5", Port: 8080, Priority: 2, Weight: 5,
				Tags: []string{"blue", "canary"}, Meta: map[string]string{"version": "1.2"}}},
		{name: "zero weight and priority", id: "10.0.0.5:8080", value: `{"weight":0,"priority":0}`,
			want: cache.Instance{Address: "10.0.0.5", Port: 8080}},
		{name: "max weight", id: "10.0.0.5:8080", value: `{"weight":65535}`,
			want: cache.Instance{Address: "10.0.0.5", Port: 8080, Priority: 1, Weight: 65535}},
		{name: "null fields are absent", id: "10.0.0.5:8080", value: `{"weight":null,"tags":null,"meta":null}`,
			want: def("10.0.0.5", 8080)},
		{name: "unknown fields become metadata", id: "10.0.0.5:8080",
			value: `{"zone":"a","shard":3,"tls":true,"extra":{"a": [1, 2]},"none":null,"meta":{"zone":"b"}}`,
			want: cache.Instance{Address: "10.0.0.5", Port: 8080, Priority: 1, Weight: 1,
				Meta: map[string]string{"zone": "b", "shard": "3", "tls": "true", "extra": `{"a":[1,2]}`}}},
		{name: "id with several elements", id: "dc1/10.0.0.5:8080", want: def("10.0.0.5", 8080)},

		{name: "not json", id: "10.0.0.5:8080", value: "weight=5", wantErr: true},
		{name: "json array", id: "10.0.0.5:8080", value: "[1]", wantErr: true},
		{name: "json null", id: "10.0.0.5:8080", value: "null", wantErr: true},
		{name: "json string", id: "10.0.0.5:8080", value: `"x"`, wantErr: true},
		{name: "truncated json", id: "10.0.0.5:8080", value: `{"weight":5`, wantErr: true},
		{name: "missing port", id: "10.0.0.5", wantErr: true},
		{name: "empty port", id: "10.0.0.5:", wantErr: true},
		{name: "port zero", id: "10.0.0.5:0", wantErr: true},
		{name: "port too big", id: "10.0.0.5:65536", wantErr: true},
		{name: "port not a number", id: "10.0.0.5:http", wantErr: true},
		{name: "negative port", id: "10.0.0.5:-1", wantErr: true},
		{name: "ipv6 without brackets", id: "2001:db8::1:9000", wantErr: true},
		{name: "ipv6 with zone", id: "[fe80::1%eth0]:80", wantErr: true},
		{name: "empty host", id: ":80", wantErr: true},
		{name: "bad host", id: "web_1!:80", wantErr: true},
		{name: "bad ipv4", id: "10.0.0.256:80", wantErr: true},
		{name: "weight too big", id: "10.0.0.5:80", value: `{"weight":65536}`, wantErr: true},
		{name: "negative priority", id: "10.0.0.5:80", value: `{"priority":-1}`, wantErr: true},
		{name: "fractional weight", id: "10.0.0.5:80", value: `{"weight":1.5}`, wantErr: true},
		{name: "weight as string", id: "10.0.0.5:80", value: `{"weight":"5"}`, wantErr: true},
		{name: "tags not a list", id: "10.0.0.5:80", value: `{"tags":"blue"}`, wantErr: true},
		{name: "tags not strings", id: "10.0.0.5:80", value: `{"tags":[1]}`, wantErr: true},
		{name: "meta not an object", id: "10.0.0.5:80", value: `{"meta":["a"]}`, wantErr: true},
		{name: "meta values not strings", id: "10.0.0.5:80", value: `{"meta":{"a":1}}`, wantErr: true},
	})
}

func TestDecodeGRPC(t *testing.T) {
	def := func(addr string, port uint16) cache.Instance {
		return cache.Instance{Address: addr, Port: port, Priority: 1, Weight: 1}
	}
	runDecodeCases(t, DecodeGRPC, []decodeCase{
		{name: "null metadata", id: "10.0.0.7:50051", value: `{"Op":0,"Addr":"10.0.0.7:50051","Metadata":null}`,
			want: def("10.0.0.7", 50051)},
		{name: "no op no metadata", id: "a", value: `{"Addr":"10.0.0.7:50051"}`, want: def("10.0.0.7", 50051)},
		{name: "lowercase fields", id: "a", value: `{"op":0,"addr":"10.0.0.7:50051"}`, want: def("10.0.0.7", 50051)},
		{name: "ipv6", id: "a", value: `{"Op":0,"Addr":"[2001:db8::7]:443"}`, want: def("2001:db8::7", 443)},
		{name: "host name", id: "a", value: `{"Op":0,"Addr":"greeter.internal:443"}`, want: def("greeter.internal", 443)},
		{name: "id with slashes", id: "zone-a/instance/1", value: `{"Addr":"10.0.0.7:1"}`, want: def("10.0.0.7", 1)},
		{name: "object metadata", id: "a",
			value: `{"Op":0,"Addr":"10.0.0.7:50051","Metadata":{"version":"2","weight":10,"labels":{"x":"y"}}}`,
			want: cache.Instance{Address: "10.0.0.7", Port: 50051, Priority: 1, Weight: 1,
				Meta: map[string]string{"version": "2", "weight": "10", "labels": `{"x":"y"}`}}},
		{name: "string metadata", id: "a", value: `{"Addr":"10.0.0.7:50051","Metadata":"v2"}`,
			want: cache.Instance{Address: "10.0.0.7", Port: 50051, Priority: 1, Weight: 1,
				Meta: map[string]string{"metadata": "v2"}}},
		{name: "number metadata", id: "a", value: `{"Addr":"10.0.0.7:50051","Metadata":[1, 2]}`,
			want: cache.Instance{Address: "10.0.0.7", Port: 50051, Priority: 1, Weight: 1,
				Meta: map[string]string{"metadata": "[1,2]"}}},
		{name: "unknown fields ignored", id: "a", value: `{"Addr":"10.0.0.7:50051","Extra":1}`, want: def("10.0.0.7", 50051)},

		{name: "empty value", id: "a", value: "", wantErr: true},
		{name: "not json", id: "a", value: "10.0.0.7:50051", wantErr: true},
		{name: "json null", id: "a", value: "null", wantErr: true},
		{name: "no addr", id: "a", value: `{"Op":0}`, wantErr: true},
		{name: "addr without port", id: "a", value: `{"Addr":"10.0.0.7"}`, wantErr: true},
		{name: "addr port zero", id: "a", value: `{"Addr":"10.0.0.7:0"}`, wantErr: true},
		{name: "addr bad host", id: "a", value: `{"Addr":"-bad-:80"}`, wantErr: true},
		{name: "unknown op", id: "a", value: `{"Op":2,"Addr":"10.0.0.7:1"}`, wantErr: true},
		{name: "op as string", id: "a", value: `{"Op":"0","Addr":"10.0.0.7:1"}`, wantErr: true},
		{name: "addr as number", id: "a", value: `{"Addr":7}`, wantErr: true},
	})

	_, err := DecodeGRPC("web", "a", []byte(`{"Op":1,"Addr":"10.0.0.7:50051"}`))
	if !errors.Is(err, ErrRemoved) {
		t.Errorf("Op 1: err = %v, want ErrRemoved", err)
	}
	_, err = DecodeGRPC("web", "a", []byte(`{"Op":1}`))
	if !errors.Is(err, ErrRemoved) {
		t.Errorf("Op 1 without Addr: err = %v, want ErrRemoved", err)
	}
}

func TestIsHostName(t *testing.T) {
	for _, tc := range []struct {
		host string
		want bool
	}{
		{"a", true},
		{"web", true},
		{"web-1.example.com", true},
		{"web-1.example.com.", true},
		{"3com.net", true},
		{"a.b2", true},
		{"", false},
		{".", false},
		{"-web", false},
		{"web-", false},
		{"web-.example.com", false},
		{"web..example.com", false},
		{".web", false},
		{"web_1", false},
		{"web 1", false},
		{"1.2.3", false},
		{"10.0.0.256", false},
		{"123", false},
		{string(make([]byte, 64)), false},
		{"a123456789012345678901234567890123456789012345678901234567890123", false}, // 64 octets
		{"a12345678901234567890123456789012345678901234567890123456789012", true},   // 63 octets
	} {
		if got := isHostName(tc.host); got != tc.want {
			t.Errorf("isHostName(%q) = %v, want %v", tc.host, got, tc.want)
		}
	}
}

func TestSplitKey(t *testing.T) {
	for _, tc := range []struct {
		key, service, id string
		ok               bool
	}{
		{"/services/web/10.0.0.1:80", "web", "10.0.0.1:80", true},
		{"/services/web/a/b", "web", "a/b", true},
		{"/services/web", "", "", false},
		{"/services/web/", "", "", false},
		{"/services//10.0.0.1:80", "", "", false},
		{"/services/", "", "", false},
		{"/services2/web/10.0.0.1:80", "", "", false},
		{"/other/web/10.0.0.1:80", "", "", false},
	} {
		service, id, ok := SplitKey("/services/", tc.key)
		if service != tc.service || id != tc.id || ok != tc.ok {
			t.Errorf("SplitKey(%q) = %q, %q, %v; want %q, %q, %v", tc.key, service, id, ok, tc.service, tc.id, tc.ok)
		}
	}
}
