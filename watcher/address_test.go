package watcher

import "testing"

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
