package watcher_test

import (
	"testing"

	"github.com/discodns/discodns/watcher"
)

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
		service, id, ok := watcher.SplitKey("/services/", tc.key)
		if service != tc.service || id != tc.id || ok != tc.ok {
			t.Errorf("SplitKey(%q) = %q, %q, %v; want %q, %q, %v", tc.key, service, id, ok, tc.service, tc.id, tc.ok)
		}
	}
}
