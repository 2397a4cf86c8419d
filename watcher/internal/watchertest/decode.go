package watchertest

import (
	"errors"
	"testing"

	"github.com/discodns/discodns/cache"
	"github.com/discodns/discodns/watcher"
)

// DecodeCase is one value given to a decoder, for RunDecodeCases.
type DecodeCase struct {
	Name    string
	ID      string
	Value   string
	Want    cache.Instance // Service "web" and ID are filled in
	WantErr bool
}

// RunDecodeCases decodes every case as an instance of service "web", each
// in a subtest.
func RunDecodeCases(t *testing.T, decode watcher.Decoder, cases []DecodeCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.Name, func(t *testing.T) {
			got, err := decode("web", tc.ID, []byte(tc.Value))
			if tc.WantErr {
				if err == nil {
					t.Fatalf("decode(%q, %q) = %+v, want an error", tc.ID, tc.Value, got)
				}
				return
			}
			if err != nil {
				t.Fatalf("decode(%q, %q): %v", tc.ID, tc.Value, err)
			}
			want := tc.Want
			want.Service, want.ID = "web", tc.ID
			if !got.Equal(&want) {
				t.Fatalf("decode(%q, %q)\n got %+v\nwant %+v", tc.ID, tc.Value, got, want)
			}
		})
	}
}

// FuzzDecoders feeds arbitrary registry values to every one of decoders,
// by name: none may panic, and an instance they accept has an address and
// its own service. Every package fuzzes its decoders from the same seeds,
// values of every layout.
func FuzzDecoders(f *testing.F, decoders map[string]watcher.Decoder) {
	for _, v := range []string{
		``, `{}`, `null`, `[]`, `{"weight":5,"priority":1,"tags":["blue"],"meta":{"v":"1"}}`, `{"weight":70000}`,
		`{"Op":0,"Addr":"10.0.0.7:50051","Metadata":{"a":1}}`, `{"Op":1,"Addr":"10.0.0.7:1"}`,
		`{"name":"orders","id":"41d7","address":"10.9.0.1","port":8080,"sslPort":null,"payload":{"@class":"x","metadata":{"zone":"a"}}}`,
		`{"serviceEndpoint":{"host":"10.10.0.1","port":31000},"additionalEndpoints":{"http":{"host":"10.10.0.1","port":31001}},"status":"ALIVE","shard":0}`,
		"{\"tags\":[\"\xff\"]}", `{"a":{"b":{"c":[1,2,{"d":null}]}}}`,
	} {
		f.Add("web", "10.0.0.1:8080", []byte(v))
	}
	f.Add("web", "[2001:db8::1]:53", []byte(``))
	f.Add("", "", []byte(`{`))
	f.Fuzz(func(t *testing.T, service, id string, value []byte) {
		for name, decode := range decoders {
			in, err := decode(service, id, value)
			if err != nil {
				if in.Address != "" && !errors.Is(err, watcher.ErrRemoved) {
					t.Fatalf("%s: an error with an instance %+v", name, in)
				}
				continue
			}
			if in.Address == "" || in.Service != service {
				t.Fatalf("%s(%q, %q, %q) accepted %+v", name, service, id, value, in)
			}
			if _, ok := in.IP(); !ok && cache.Label(in.Address) == "" {
				t.Fatalf("%s: address %q is neither an IP nor a name", name, in.Address)
			}
		}
	})
}
