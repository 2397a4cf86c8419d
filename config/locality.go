package config

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
)

// Locality is the [locality] table: where this host is, so that answers
// prefer the instances near it. With no zone (from zone, zone_file or
// zone_env) answers ignore locality.
type Locality struct {
	// Zone is the host's zone, such as "eu-west-1a"; at most one of Zone,
	// ZoneFile and ZoneEnv. Printable ASCII without spaces, at most 128
	// octets. HostZone is the zone in force.
	Zone string `toml:"zone"`
	// ZoneFile is a file whose content (spaces around it trimmed) is the
	// zone, as a provisioning system writes it from cloud metadata.
	ZoneFile string `toml:"zone_file"`
	// ZoneEnv names an environment variable whose value is the zone.
	ZoneEnv string `toml:"zone_env"`
	// Region, RegionFile and RegionEnv give the host's region the same
	// way; optional, and only with a zone.
	Region string `toml:"region"`
	// RegionFile is a file whose content is the region.
	RegionFile string `toml:"region_file"`
	// RegionEnv names an environment variable whose value is the region.
	RegionEnv string `toml:"region_env"`
	// MinLocal is how many same-zone instances a set needs for A and AAAA
	// to answer them alone: a count (an integer, 1 to MaxMinLocal) or a
	// fraction of the set's instances (a float, above 0 up to 1).
	MinLocal MinLocal `toml:"min_local"`

	// zone and region are the host's, from the keys above; Validate reads
	// them, again at each call.
	zone, region string
}

// HostZone returns the host's zone, "" for none: locality is off.
func (l *Locality) HostZone() string { return l.zone }

// HostRegion returns the host's region, "" for none.
func (l *Locality) HostRegion() string { return l.region }

// MinLocal is a count or a fraction; exactly one is non-zero.
type MinLocal struct {
	Count    int
	Fraction float64
}

// String renders m as the file writes it.
func (m MinLocal) String() string {
	if m.Count > 0 {
		return fmt.Sprint(m.Count)
	}
	return fmt.Sprint(m.Fraction)
}

// MaxMinLocal bounds locality.min_local as a count.
const MaxMinLocal = 1000000

// maxLocalityValue bounds a zone or region name, and maxLocalityKeys the
// metadata keys a source lists (each at most maxLocalityValue octets too).
const (
	maxLocalityValue = 128
	maxLocalityKeys  = 16
)

// Default metadata keys of an instance's zone and region: what frameworks
// and registries write (Spring Cloud's and Eureka's "zone" meta,
// Kubernetes' topology labels, old and new).
var (
	defaultZoneKeys   = []string{"zone", "topology.kubernetes.io/zone", "failure-domain.beta.kubernetes.io/zone"}
	defaultRegionKeys = []string{"region", "topology.kubernetes.io/region", "failure-domain.beta.kubernetes.io/region"}
)

// validate reads the zone and region from their files or environment
// variables and checks the table.
func (l *Locality) validate() *Error {
	zone, e := localityValue("zone", l.Zone, l.ZoneFile, l.ZoneEnv)
	if e != nil {
		return e
	}
	region, e := localityValue("region", l.Region, l.RegionFile, l.RegionEnv)
	if e != nil {
		return e
	}
	if region != "" && zone == "" {
		return keyErr("locality.region", errors.New("set without a zone (locality.zone, zone_file or zone_env): the zone is what answers prefer"))
	}
	l.zone, l.region = zone, region
	m := l.MinLocal
	switch {
	case m.Count != 0 && m.Fraction != 0:
		return keyErr("locality.min_local", errors.New("both a count and a fraction"))
	case m.Fraction != 0 && !(m.Fraction > 0 && m.Fraction <= 1):
		return keyErr("locality.min_local", fmt.Errorf("fraction %v out of range (want above 0, up to 1)", m.Fraction))
	case m.Fraction == 0:
		if err := inRange(m.Count, 1, MaxMinLocal); err != nil {
			return keyErr("locality.min_local", fmt.Errorf("count: %w (or a fraction such as 0.5)", err))
		}
	}
	return nil
}

// localityValue returns the zone or region (what) from value, or the file
// or environment variable named, the one that is set.
func localityValue(what, value, file, env string) (string, *Error) {
	key := "locality." + what
	set := 0
	for _, s := range []string{value, file, env} {
		if s != "" {
			set++
		}
	}
	if set > 1 {
		return "", keyErr(key, fmt.Errorf("more than one of %s, %s_file and %s_env set; use one", key, key, key))
	}
	switch {
	case file != "":
		key += "_file"
		data, err := readSmallFile(file, maxLocalityValue+64)
		if err != nil {
			return "", keyErr(key, err)
		}
		if value = strings.TrimSpace(string(data)); value == "" {
			return "", keyErr(key, fmt.Errorf("%s is empty", file))
		}
	case env != "":
		key += "_env"
		if value = strings.TrimSpace(os.Getenv(env)); value == "" {
			return "", keyErr(key, fmt.Errorf("environment variable %q is unset or empty", env))
		}
	}
	if err := checkLocalityName(value); err != nil {
		return "", keyErr(key, err)
	}
	return value, nil
}

// checkLocalityName checks a zone, region or metadata key: printable
// ASCII without spaces, at most maxLocalityValue octets.
func checkLocalityName(s string) error {
	if len(s) > maxLocalityValue {
		return fmt.Errorf("%d octets long (at most %d)", len(s), maxLocalityValue)
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] > '~' {
			return fmt.Errorf("character %d is not printable ASCII or is a space", i+1)
		}
	}
	return nil
}

// checkLocalityKeys checks a source's zone_keys or region_keys.
func checkLocalityKeys(keys []string) error {
	if len(keys) > maxLocalityKeys {
		return fmt.Errorf("%d keys (at most %d)", len(keys), maxLocalityKeys)
	}
	for i, k := range keys {
		if k == "" {
			return fmt.Errorf("key %d is empty", i+1)
		}
		if err := checkLocalityName(k); err != nil {
			return fmt.Errorf("key %d: %w", i+1, err)
		}
	}
	return nil
}

// LogValue summarises the table for slog.
func (l Locality) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("zone", l.Zone),
		slog.String("zone_file", l.ZoneFile),
		slog.String("zone_env", l.ZoneEnv),
		slog.String("region", l.Region),
		slog.String("region_file", l.RegionFile),
		slog.String("region_env", l.RegionEnv),
		slog.String("host_zone", l.zone),
		slog.String("host_region", l.region),
		slog.String("min_local", l.MinLocal.String()))
}
