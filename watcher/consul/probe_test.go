package consul

import (
	"context"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestWatchBound: a session watches max_connections - 3 services, 100
// times that only when the agent answers over HTTP/2; HTTPS that speaks
// HTTP/1.1 (a proxy in front of the agent) keeps the HTTP/1.1 bound, since
// each blocking query would hold a connection.
func TestWatchBound(t *testing.T) {
	const conns = 8
	leader := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte(`"127.0.0.1:8300"`)) })
	start := func(h2 bool) (addr, ca string) {
		srv := httptest.NewUnstartedServer(leader)
		srv.EnableHTTP2 = h2
		srv.StartTLS()
		t.Cleanup(srv.Close)
		ca = filepath.Join(t.TempDir(), "ca.pem")
		if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
			t.Fatal(err)
		}
		return srv.URL, ca
	}
	h2, h2CA := start(true)
	h1, h1CA := start(false)
	for _, c := range []struct {
		name, address, ca string
		want              int
	}{
		{"http", "127.0.0.1:8500", "", conns - 3},
		{"https, HTTP/2", h2, h2CA, (conns - 3) * StreamsPerConnection},
		{"https, HTTP/1.1", h1, h1CA, conns - 3},
		{"https, no agent", "https://127.0.0.1:1", h2CA, conns - 3},
	} {
		t.Run(c.name, func(t *testing.T) {
			src, err := New(Config{Name: "consul", Address: c.address, CAFile: c.ca, MaxConnections: conns,
				RateLimit: 100, ResyncInterval: time.Minute}, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if got := src.watchBound(ctx); got != c.want {
				t.Fatalf("watchBound = %d, want %d", got, c.want)
			}
		})
	}
}
