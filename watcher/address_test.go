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

func TestParseHost(t *testing.T) {
	for _, tc := range []struct {
		host, want string
		wantErr    bool
	}{
		{host: "10.7.0.1", want: "10.7.0.1"},
		{host: "::ffff:10.7.0.1", want: "10.7.0.1"},
		{host: "[::ffff:10.7.0.1]", want: "10.7.0.1"},
		{host: "2001:DB8:0:0:0:0:0:1", want: "2001:db8::1"},
		{host: "[2001:db8::1]", want: "2001:db8::1"},
		{host: "2001:db8:0:0:1:0:0:1", want: "2001:db8::1:0:0:1"},
		{host: "127.0.0.1", want: "127.0.0.1"},
		{host: "::1", want: "::1"},
		{host: "169.254.20.10", want: "169.254.20.10"}, // IPv4 link-local: usable
		{host: "0.1.2.3", want: "0.1.2.3"},
		{host: "Web-1.Example.COM.", want: "web-1.example.com"},
		{host: "localhost", want: "localhost"},
		{host: "", wantErr: true},
		{host: "0.0.0.0", wantErr: true},
		{host: "::", wantErr: true},
		{host: "[::]", wantErr: true},
		{host: "::ffff:0.0.0.0", wantErr: true},
		{host: "255.255.255.255", wantErr: true},
		{host: "::ffff:255.255.255.255", wantErr: true},
		{host: "224.0.0.1", wantErr: true},
		{host: "239.255.255.250", wantErr: true},
		{host: "ff02::1", wantErr: true},
		{host: "fe80::1", wantErr: true},
		{host: "fe80::1%eth0", wantErr: true},
		{host: "010.007.000.001", wantErr: true},
		{host: "[web.example.com]", wantErr: true},
		{host: "web_1", wantErr: true},
	} {
		got, err := ParseHost(tc.host)
		if tc.wantErr {
			if err == nil {
				t.Errorf("ParseHost(%q) = %q, want an error", tc.host, got)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseHost(%q) = %q, %v; want %q", tc.host, got, err, tc.want)
		}
	}
}
