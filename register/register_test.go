package register

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestInstanceValidate(t *testing.T) {
	ok := Instance{Service: "web", Host: "10.0.0.1", Port: 80, TTL: 10 * time.Second}
	if err := ok.Validate(); err != nil {
		t.Fatalf("valid instance: %v", err)
	}
	for _, tc := range []struct {
		change func(*Instance)
		want   string
	}{
		{func(in *Instance) { in.Service = "" }, "-service is required"},
		{func(in *Instance) { in.Port = 0 }, "port from 1 to 65535"},
		{func(in *Instance) { in.Host = "" }, "want host:port"},
		{func(in *Instance) { in.TTL = time.Millisecond }, "at least 1s"},
		{func(in *Instance) { in.Weight = 70000 }, "0 to 65535"},
	} {
		in := ok
		tc.change(&in)
		if err := in.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", in, err, tc.want)
		}
	}
}

// TestDiscoxValue: the value is what discodns's discox decoder reads.
func TestDiscoxValue(t *testing.T) {
	in := Instance{Service: "web", Host: "10.0.0.1", Port: 80, Weight: 7, Tags: []string{"blue"}, Meta: map[string]string{"v": "1"}}
	var got struct {
		Weight int               `json:"weight"`
		Tags   []string          `json:"tags"`
		Meta   map[string]string `json:"meta"`
	}
	if err := json.Unmarshal(in.discoxValue(), &got); err != nil || got.Weight != 7 || got.Tags[0] != "blue" || got.Meta["v"] != "1" {
		t.Errorf("value %s: %+v %v", in.discoxValue(), got, err)
	}
	if v := (&Instance{}).discoxValue(); string(v) != "{}" {
		t.Errorf("no attributes: %s, want {}", v)
	}
	if a := (&Instance{Host: "2001:db8::1", Port: 53}).addr(); a != "[2001:db8::1]:53" {
		t.Errorf("addr %s", a)
	}
}
