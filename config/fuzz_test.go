package config

import (
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// FuzzLoad feeds configuration loading random TOML and random bytes. It
// must never panic, never accept a configuration that serves nothing (no
// source, no upstream), and what it accepts must be accepted again by
// Validate, unchanged: normalisation is idempotent, as main relies on
// when it validates again after its flags.
func FuzzLoad(f *testing.F) {
	example, err := os.ReadFile("../config.example.toml")
	if err != nil {
		f.Fatal(err)
	}
	full := commentedSetting.ReplaceAllString(string(example), "$1")
	rc := f.TempDir() + "/resolv.conf"
	if err := os.WriteFile(rc, []byte("nameserver 192.0.2.1\nnameserver ::ffff:192.0.2.2\n"), 0o600); err != nil {
		f.Fatal(err)
	}
	const etcd = "[[source]]\ntype = \"etcd\"\n"
	seeds := []string{
		string(example), full, "", "\x00\xff", "[dns]\n", "[[source]]\n", etcd,
		"[forward]\nupstreams = [\"192.0.2.1:53\"]\n",
		"[forward]\nresolv_conf = \"" + rc + "\"\n",
		"[forward]\nresolv_conf = \"/dev/zero\"\n",
		"[dns]\nlisten = [\"127.0.0.1:53\"]\n[forward]\nupstreams = [\"[::ffff:127.0.0.1]:53\"]\n",
		"[dns]\nzone = \"com.\"\n" + etcd,
		"[dns]\nzone = \"svc.internal.\"\n" + etcd + "zone = \"internal.\"\n",
		"[dns]\nzone = \"home.arpa\"\nlisten = [\"192.0.2.2:53\"]\nclient_rate_limit = 0\n" + etcd,
		"[dns]\ntcp_idle_timeout = \"1ns\"\n" + etcd,
		"[dns]\nclient_rate_limit = -1\n" + etcd,
		"source = [{type = \"etcd\"}, {type = \"consul\", tags = [\"web\"]}]\n",
		"[[source]]\ntype = \"zookeeper\"\nauth = \"u:p\"\nprefix = \"/a//\"\n",
		"[[source]]\ntype = \"consul\"\nmax_connections = 2\n",
		"dns = 1\n", "source = 1\n", "[dns]\nttl = 5\n", "[dns\n",
	}
	// Half-written files: the example cut anywhere.
	for _, n := range []int{1, len(example) / 3, len(example) / 2, len(example) - 1} {
		seeds = append(seeds, string(example[:n]))
	}
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data string) {
		c, e := parse(data, nil)
		if e != nil {
			if e.Error() == "" {
				t.Fatal("an empty error")
			}
			return
		}
		if len(c.Sources) == 0 && len(c.Forward.Upstreams) == 0 {
			t.Fatalf("accepted a configuration that serves nothing: %q", data)
		}
		again := clone(c)
		if err := again.Validate(); err != nil {
			t.Fatalf("accepted %q, then Validate refused it: %v", data, err)
		}
		if !reflect.DeepEqual(again, c) {
			t.Fatalf("Validate changed an accepted configuration:\n%+v\n%+v", c, again)
		}
	})
}

// clone returns a deep copy of c.
func clone(c *Config) *Config {
	d := *c
	d.DNS.Listen = slices.Clone(c.DNS.Listen)
	d.Forward.Upstreams = slices.Clone(c.Forward.Upstreams)
	d.Forward.Allow = slices.Clone(c.Forward.Allow)
	d.Sources = slices.Clone(c.Sources)
	for i := range d.Sources {
		s := &d.Sources[i]
		s.Endpoints, s.Servers, s.Tags = slices.Clone(s.Endpoints), slices.Clone(s.Servers), slices.Clone(s.Tags)
		s.ZoneKeys, s.RegionKeys = slices.Clone(s.ZoneKeys), slices.Clone(s.RegionKeys)
	}
	return &d
}

// TestClone keeps clone deep: it must copy every slice of the schema.
func TestClone(t *testing.T) {
	var walk func(t reflect.Type, path string)
	var slicesSeen []string
	walk = func(typ reflect.Type, path string) {
		for _, f := range reflect.VisibleFields(typ) {
			switch f.Type.Kind() {
			case reflect.Struct:
				walk(f.Type, path+f.Name+".")
			case reflect.Slice:
				slicesSeen = append(slicesSeen, path+f.Name)
				if f.Type.Elem().Kind() == reflect.Struct {
					walk(f.Type.Elem(), path+f.Name+".")
				}
			}
		}
	}
	walk(reflect.TypeFor[Config](), "")
	want := "DNS.Listen Forward.Upstreams Forward.Allow Sources Sources.Endpoints Sources.Tags Sources.Servers Sources.ZoneKeys Sources.RegionKeys"
	if got := strings.Join(slicesSeen, " "); got != want {
		t.Errorf("the schema's slices are %s; clone copies %s: keep it in step", got, want)
	}
}
