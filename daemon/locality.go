package daemon

import (
	"github.com/discodns/discodns/config"
	"github.com/discodns/discodns/dnsserver"
)

// locality returns the locality answers follow under cfg: the host's zone
// and region, min_local, and each source's metadata keys.
func locality(cfg *config.Config) dnsserver.Locality {
	l := cfg.Locality
	loc := dnsserver.Locality{
		Zone:             l.HostZone(),
		Region:           l.HostRegion(),
		MinLocalCount:    l.MinLocal.Count,
		MinLocalFraction: l.MinLocal.Fraction,
		Keys:             make(map[string]dnsserver.LocalityKeys, len(cfg.Sources)),
	}
	for _, s := range cfg.Sources {
		loc.Keys[s.Name] = dnsserver.LocalityKeys{Zone: s.ZoneKeys, Region: s.RegionKeys}
	}
	return loc
}
