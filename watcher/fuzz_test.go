package watcher

import (
	"errors"
	"testing"

	"github.com/discodns/discodns/cache"
)

// FuzzDecoders feeds arbitrary registry values to every decoder: none may
// panic, and an instance they accept has an address and its own service.
func FuzzDecoders(f *testing.F) {
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
	decoders := map[string]Decoder{"discox": DecodeDiscox, "grpc": DecodeGRPC, "curator": DecodeCurator, "serverset": DecodeServerset}
	f.Fuzz(func(t *testing.T, service, id string, value []byte) {
		for name, decode := range decoders {
			in, err := decode(service, id, value)
			if err != nil {
				if in.Address != "" && !errors.Is(err, ErrRemoved) {
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
