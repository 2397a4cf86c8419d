package cache

import "testing"

func TestInstanceEqual(t *testing.T) {
	base := func() Instance {
		return Instance{Service: "web", ID: "a", Address: "10.0.0.1", Port: 80, Tags: []string{"blue"},
			Meta: map[string]string{"zone": "a"}, NodeMeta: map[string]string{"zone": "a"}}
	}
	tests := []struct {
		name   string
		change func(*Instance)
		equal  bool
	}{
		{"same", func(*Instance) {}, true},
		{"nil and empty meta", func(in *Instance) { in.Meta, in.NodeMeta = nil, nil }, false},
		{"meta value", func(in *Instance) { in.Meta["zone"] = "b" }, false},
		{"node meta value", func(in *Instance) { in.NodeMeta["zone"] = "b" }, false},
		{"node meta key", func(in *Instance) { in.NodeMeta = map[string]string{"region": "a"} }, false},
		{"node meta gone", func(in *Instance) { in.NodeMeta = nil }, false},
		{"tags", func(in *Instance) { in.Tags = nil }, false},
	}
	for _, tt := range tests {
		a, b := base(), base()
		tt.change(&b)
		if got := a.Equal(&b); got != tt.equal {
			t.Errorf("%s: Equal %v, want %v", tt.name, got, tt.equal)
		}
	}
	empty, none := Instance{Meta: map[string]string{}, NodeMeta: map[string]string{}}, Instance{}
	if !empty.Equal(&none) {
		t.Error("empty and nil metadata differ")
	}
}
