package registry

import (
	"strings"
	"testing"

	"github.com/discodns/discodns/config"
)

// TestEveryTypeBuilds: each source type config knows has a row, whose
// watcher and registrar build from that type's defaults; an unknown type
// is an error that names it.
func TestEveryTypeBuilds(t *testing.T) {
	for _, typ := range config.SourceTypes() {
		sc := config.DefaultSource(typ)
		sc.Name, sc.Zone = "src-"+typ, "svc.internal."
		src, err := NewSource(sc, nil, nil)
		if err != nil || src.Name() != sc.Name {
			t.Errorf("%s: source %v, %v", typ, src, err)
		}
		row, err := Lookup(typ)
		if err != nil || row.NewRegistrar(sc, nil) == nil {
			t.Errorf("%s: no registrar (%v)", typ, err)
		}
	}
	if _, err := NewSource(config.Source{Name: "x", Type: "redis"}, nil, nil); err == nil || !strings.Contains(err.Error(), `"redis"`) {
		t.Errorf("unknown type: %v", err)
	}
}
