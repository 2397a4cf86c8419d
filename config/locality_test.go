package config

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLocality(t *testing.T) {
	const etcd = "[[source]]\ntype = \"etcd\"\n"
	dir := t.TempDir()
	zoneFile, empty := filepath.Join(dir, "zone"), filepath.Join(dir, "empty")
	if err := os.WriteFile(zoneFile, []byte(" eu-west-1b\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("DISCODNS_TEST_ZONE", "eu-west-1c")
	t.Setenv("DISCODNS_TEST_REGION", "eu-west-1")
	tests := []struct {
		name         string
		toml         string
		zone, region string
		min          MinLocal
		err          string // substring of the error; "" for none
	}{
		{"default: off", "", "", "", MinLocal{Fraction: 0.25}, ""},
		{"zone", "zone = \"eu-west-1a\"\nregion = \"eu-west-1\"\n", "eu-west-1a", "eu-west-1", MinLocal{Fraction: 0.25}, ""},
		{"zone file", fmt.Sprintf("zone_file = %q\n", zoneFile), "eu-west-1b", "", MinLocal{Fraction: 0.25}, ""},
		{"zone env", "zone_env = \"DISCODNS_TEST_ZONE\"\nregion_env = \"DISCODNS_TEST_REGION\"\n", "eu-west-1c", "eu-west-1", MinLocal{Fraction: 0.25}, ""},
		{"count", "zone = \"a\"\nmin_local = 2\n", "a", "", MinLocal{Count: 2}, ""},
		{"fraction", "zone = \"a\"\nmin_local = 0.5\n", "a", "", MinLocal{Fraction: 0.5}, ""},
		{"whole fraction", "zone = \"a\"\nmin_local = 1.0\n", "a", "", MinLocal{Fraction: 1}, ""},
		{"zone twice", fmt.Sprintf("zone = \"a\"\nzone_file = %q\n", zoneFile), "", "", MinLocal{}, "locality.zone: more than one of locality.zone, locality.zone_file and locality.zone_env"},
		{"empty zone file", fmt.Sprintf("zone_file = %q\n", empty), "", "", MinLocal{}, "locality.zone_file: " + empty + " is empty"},
		{"missing zone file", "zone_file = \"/nonexistent/zone\"\n", "", "", MinLocal{}, "locality.zone_file: stat /nonexistent/zone"},
		{"zone file a device", "zone_file = \"/dev/zero\"\n", "", "", MinLocal{}, "locality.zone_file: /dev/zero is not a regular file"},
		{"unset env", "zone_env = \"DISCODNS_TEST_NOSUCH\"\n", "", "", MinLocal{}, `locality.zone_env: environment variable "DISCODNS_TEST_NOSUCH" is unset or empty`},
		{"zone with a space", "zone = \"eu west\"\n", "", "", MinLocal{}, "locality.zone: character 3 is not printable ASCII or is a space"},
		{"zone too long", fmt.Sprintf("zone = %q\n", strings.Repeat("a", 129)), "", "", MinLocal{}, "locality.zone: 129 octets long (at most 128)"},
		{"region alone", "region = \"r\"\n", "", "", MinLocal{}, "locality.region: set without a zone"},
		{"count zero", "zone = \"a\"\nmin_local = 0\n", "", "", MinLocal{}, "locality.min_local: count: must be 1 to 1000000, got 0"},
		{"count huge", "zone = \"a\"\nmin_local = 99999999999\n", "", "", MinLocal{}, "locality.min_local: count: must be 1 to 1000000"},
		{"fraction over 1", "zone = \"a\"\nmin_local = 1.5\n", "", "", MinLocal{}, "locality.min_local: fraction 1.5 out of range (want above 0, up to 1)"},
		{"negative fraction", "zone = \"a\"\nmin_local = -0.5\n", "", "", MinLocal{}, "locality.min_local: fraction -0.5 out of range"},
		{"fraction a string", "zone = \"a\"\nmin_local = \"50%\"\n", "", "", MinLocal{}, "locality.min_local: want a count (an integer such as 2) or a fraction (a float such as 0.5), got a string"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Load(write(t, etcd+"[locality]\n"+tt.toml))
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			l := c.Locality
			if l.HostZone() != tt.zone || l.HostRegion() != tt.region || l.MinLocal != tt.min {
				t.Errorf("zone %q region %q min_local %+v, want %q %q %+v", l.HostZone(), l.HostRegion(), l.MinLocal, tt.zone, tt.region, tt.min)
			}
			if err := c.Validate(); err != nil || c.Locality.HostZone() != tt.zone {
				t.Errorf("validated again: %v, zone %q", err, c.Locality.HostZone())
			}
		})
	}
}

func TestLocalityKeys(t *testing.T) {
	tests := []struct {
		name string
		keys string
		err  string
	}{
		{"custom", `zone_keys = ["az"]`, ""},
		{"none", `zone_keys = []`, ""},
		{"empty key", `zone_keys = ["zone", ""]`, `source[0] ("etcd").zone_keys: key 2 is empty`},
		{"a space", `region_keys = ["my region"]`, `source[0] ("etcd").region_keys: key 1: character 3 is not printable`},
		{"too many", `zone_keys = [` + strings.Repeat(`"k",`, 17) + `]`, `source[0] ("etcd").zone_keys: 17 keys (at most 16)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load(write(t, "[[source]]\ntype = \"etcd\"\n"+tt.keys+"\n"))
			if (err == nil) != (tt.err == "") || err != nil && !strings.Contains(err.Error(), tt.err) {
				t.Fatalf("error %v, want %q", err, tt.err)
			}
		})
	}
}
