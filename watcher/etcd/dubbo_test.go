package etcd

import (
	"errors"
	"testing"
)

// TestDubboSplitter: only <interface>/providers/<URL> keys are instances;
// the other categories and dubbo-go's directory keys are not, and are no
// error either.
func TestDubboSplitter(t *testing.T) {
	split := DubboSplitter("/dubbo/")
	for _, tc := range []struct {
		key, want string // want "svc id", "other" for errOtherKey, "error"
	}{
		{"/dubbo/org.x.Greeter/providers/dubbo%3A%2F%2F10.0.0.1%3A20880", "org.x.Greeter dubbo%3A%2F%2F10.0.0.1%3A20880"},
		{"/dubbo/org.x.Greeter/consumers/consumer%3A%2F%2F10.0.0.9", "other"},
		{"/dubbo/org.x.Greeter/configurators/override%3A%2F%2F0.0.0.0", "other"},
		{"/dubbo/org.x.Greeter/routers/route%3A%2F%2F0.0.0.0", "other"},
		{"/dubbo/org.x.Greeter/providers", "other"},
		{"/dubbo/org.x.Greeter/providers/", "other"},
		{"/dubbo/org.x.Greeter", "other"},
		{"/dubbo/metadata/org.x.Greeter/provider/app", "other"},
		{"/dubbo/org.x.Greeter/providers/a/b", "other"},
		{"/dubbo//providers/dubbo%3A%2F%2F10.0.0.1%3A20880", "error"},
		{"/other/x/providers/y", "other"},
	} {
		svc, id, err := split(tc.key)
		got := svc + " " + id
		switch {
		case errors.Is(err, errOtherKey):
			got = "other"
		case err != nil:
			got = "error"
		}
		if got != tc.want {
			t.Errorf("%s: got %q (%v), want %q", tc.key, got, err, tc.want)
		}
	}
}
