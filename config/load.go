package config

import (
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// Load reads the TOML file at path and returns its configuration: the
// defaults of Default and DefaultSource overlaid with the file, then
// checked and normalised by Validate. Unknown keys, keys of another source
// type and values of the wrong TOML type are errors. Any error is an
// *Error naming path.
func Load(path string) (*Config, error) { return LoadWith(path, nil) }

// LoadWith is Load with change, when not nil, applied to the file's
// configuration before it is checked: command-line settings that override
// the file's.
func LoadWith(path string, change func(*Config)) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, &Error{File: path, Err: err}
	}
	c, e := parse(string(data), change)
	if e != nil {
		e.File = path
		return nil, e
	}
	return c, nil
}

// parse decodes a configuration file's text, applies change (when not
// nil) and validates the result.
func parse(data string, change func(*Config)) (*Config, *Error) {
	var top map[string]toml.Primitive
	md, err := toml.Decode(data, &top)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return nil, &Error{Line: pe.Position.Line, Err: syntaxError{pe}}
		}
		return nil, &Error{Err: err}
	}
	d := &decoder{md: &md, data: data, lines: map[string]int{}}
	c := Default()
	e := d.decode(top, c)
	if e == nil {
		// The walk above matched every key against the schema; this only
		// guards against a value it left undecoded.
		if u := md.Undecoded(); len(u) > 0 {
			e = &Error{path: u[0].String(), Err: fmt.Errorf("unknown key %s", u[0])}
		}
	}
	// What only a file can get wrong: Validate fills Upstreams from
	// ResolvConf, and takes ClientRateLimitUnset for "not set".
	if e == nil && c.Forward.ResolvConf != "" && len(c.Forward.Upstreams) > 0 {
		e = keyErr("forward.resolv_conf", errors.New("set together with forward.upstreams; use one or the other"))
	}
	if e == nil && md.IsDefined("dns", "client_rate_limit") {
		if err := checkClientRateLimit(c.DNS.ClientRateLimit); err != nil {
			e = keyErr("dns.client_rate_limit", err)
		}
	}
	if e == nil {
		if change != nil {
			change(c)
		}
		e = c.validate()
	}
	if e != nil {
		d.setLine(e)
		return nil, e
	}
	return c, nil
}

// syntaxError words a TOML syntax error; the line goes into Error.Line.
type syntaxError struct{ pe toml.ParseError }

func (s syntaxError) Error() string { return "syntax error: " + s.pe.Message }
func (s syntaxError) Unwrap() error { return s.pe }

// decoder walks the decoded file against the schema of Config, whose
// `toml` struct tags name the keys.
type decoder struct {
	md    *toml.MetaData
	data  string
	lines map[string]int // key path ("dns.ttl", "source.1.type") -> line
}

var (
	durationType = reflect.TypeFor[time.Duration]()
	prefixesType = reflect.TypeFor[[]netip.Prefix]()
	stringsType  = reflect.TypeFor[[]string]()
	minLocalType = reflect.TypeFor[MinLocal]()
)

func (d *decoder) decode(top map[string]toml.Primitive, c *Config) *Error {
	d.record("", top)
	root := reflect.ValueOf(c).Elem()
	if e := d.unknown(top, root.Type(), "", ""); e != nil {
		return e
	}
	for _, f := range fieldsOf(root.Type()) {
		p, ok := top[f.key]
		if !ok {
			continue
		}
		if f.key == "source" {
			if e := d.sources(p, c); e != nil {
				return e
			}
			continue
		}
		if root.Field(f.index).Kind() != reflect.Struct { // a top-level key
			if e := d.fields(map[string]toml.Primitive{f.key: p}, root, "", "", ""); e != nil {
				e.Key, e.path = f.key, f.key
				return e
			}
			continue
		}
		m, err := d.table(p)
		if err != nil {
			return keyErr(f.key, err)
		}
		d.record(f.key, m)
		if e := d.unknown(m, root.Field(f.index).Type(), f.key, f.key); e != nil {
			return e
		}
		if e := d.fields(m, root.Field(f.index), f.key, f.key, ""); e != nil {
			return e
		}
	}
	return nil
}

// sources decodes the [[source]] array into c.Sources, each element
// starting from DefaultSource of its type.
func (d *decoder) sources(p toml.Primitive, c *Config) *Error {
	var v any
	if err := d.md.PrimitiveDecode(p, &v); err != nil {
		return keyErr("source", err)
	}
	switch v.(type) {
	case []map[string]any, []any:
	default:
		return keyErr("source", wantGot("an array of tables ([[source]])", v))
	}
	var elems []toml.Primitive
	if err := d.md.PrimitiveDecode(p, &elems); err != nil {
		return keyErr("source", err)
	}
	tables := make([]map[string]toml.Primitive, len(elems))
	for i, ep := range elems {
		m, err := d.table(ep)
		if err != nil {
			return srcErr(i, srcLabel(i, "", ""), "", err)
		}
		tables[i] = m
	}
	d.recordSources(elems, tables)

	c.Sources = make([]Source, len(tables))
	for i, m := range tables {
		name, _ := d.str(m, "name")
		typ, err := d.str(m, "type")
		label := srcLabel(i, name, typ)
		if err == nil {
			err = checkType(typ)
		}
		if err != nil {
			return srcErr(i, srcLabel(i, name, ""), "type", err)
		}
		s := DefaultSource(typ)
		if f, err := d.str(m, "format"); err == nil {
			if p, ok := formatPrefixes[f]; ok {
				s.Prefix = p
			}
		}
		path := "source." + strconv.Itoa(i)
		if e := d.unknown(m, reflect.TypeFor[Source](), path, label); e != nil {
			return e
		}
		if e := d.fields(m, reflect.ValueOf(&s).Elem(), path, label, typ); e != nil {
			return e
		}
		c.Sources[i] = s
	}
	return nil
}

// str returns the string value of key in m; "" and no error when absent.
func (d *decoder) str(m map[string]toml.Primitive, key string) (string, error) {
	p, ok := m[key]
	if !ok {
		return "", nil
	}
	var v any
	if err := d.md.PrimitiveDecode(p, &v); err != nil {
		return "", err
	}
	s, ok := v.(string)
	if !ok {
		return "", wantGot("a string", v)
	}
	return s, nil
}

// table decodes p, which must be a TOML table, into its keys.
func (d *decoder) table(p toml.Primitive) (map[string]toml.Primitive, error) {
	var v any
	if err := d.md.PrimitiveDecode(p, &v); err != nil {
		return nil, err
	}
	if _, ok := v.(map[string]any); !ok {
		return nil, wantGot("a table", v)
	}
	var m map[string]toml.Primitive
	if err := d.md.PrimitiveDecode(p, &m); err != nil {
		return nil, err
	}
	return m, nil
}

// unknown reports the first key of m (in file order) that struct type t
// does not have. path is m's key path, label its name in messages.
func (d *decoder) unknown(m map[string]toml.Primitive, t reflect.Type, path, label string) *Error {
	known := map[string]bool{}
	for _, f := range fieldsOf(t) {
		known[f.key] = true
	}
	var bad []string
	for k := range m {
		if !known[k] {
			bad = append(bad, k)
		}
	}
	if len(bad) == 0 {
		return nil
	}
	slices.SortFunc(bad, func(a, b string) int {
		if la, lb := d.lines[join(path, a)], d.lines[join(path, b)]; la != lb {
			return la - lb
		}
		return strings.Compare(a, b)
	})
	k := bad[0]
	msg := "unknown key " + join(label, toml.Key{k}.String())
	if s := suggest(k, slices.Sorted(maps.Keys(known))); s != "" {
		msg += ", did you mean " + join(label, s) + "?"
	}
	return &Error{path: join(path, k), Err: errors.New(msg)}
}

// fields sets the fields of the struct dst from m, in declaration order.
// typ is the source type for a source ("" otherwise).
func (d *decoder) fields(m map[string]toml.Primitive, dst reflect.Value, path, label, typ string) *Error {
	for _, f := range fieldsOf(dst.Type()) {
		p, ok := m[f.key]
		if !ok {
			continue
		}
		fail := func(err error) *Error {
			return &Error{Key: label + "." + f.key, path: path + "." + f.key, Err: err}
		}
		if typ != "" && f.types != nil && !slices.Contains(f.types, typ) {
			return fail(fmt.Errorf("key not valid for type %s (it belongs to %s)", typ, oneOf(f.types)))
		}
		if err := d.set(p, dst.Field(f.index)); err != nil {
			return fail(err)
		}
	}
	return nil
}

// set decodes p into dst, checking its TOML type. Messages never repeat a
// string value that is not a duration, address or network, so they cannot
// leak a secret.
func (d *decoder) set(p toml.Primitive, dst reflect.Value) error {
	var v any
	if err := d.md.PrimitiveDecode(p, &v); err != nil {
		return err
	}
	switch dst.Type() {
	case durationType:
		s, ok := v.(string)
		if !ok {
			return wantGot(`a duration string such as "5s"`, v)
		}
		dur, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("invalid duration %q: %w", s, err)
		}
		dst.SetInt(int64(dur))
		return nil
	case prefixesType:
		ss, err := strs(v)
		if err != nil {
			return err
		}
		out := make([]netip.Prefix, len(ss))
		for i, s := range ss {
			if out[i], err = netip.ParsePrefix(s); err != nil {
				return fmt.Errorf("invalid network (want CIDR such as 10.0.0.0/8): %w", err)
			}
		}
		dst.Set(reflect.ValueOf(out))
		return nil
	case stringsType:
		ss, err := strs(v)
		if err != nil {
			return err
		}
		dst.Set(reflect.ValueOf(ss))
		return nil
	case minLocalType:
		switch n := v.(type) {
		case int64:
			dst.Set(reflect.ValueOf(MinLocal{Count: int(min(n, MaxMinLocal+1))}))
		case float64:
			dst.Set(reflect.ValueOf(MinLocal{Fraction: n}))
		default:
			return wantGot("a count (an integer such as 2) or a fraction (a float such as 0.5)", v)
		}
		return nil
	}
	switch dst.Kind() {
	case reflect.String:
		s, ok := v.(string)
		if !ok {
			return wantGot("a string", v)
		}
		dst.SetString(s)
	case reflect.Int:
		n, ok := v.(int64)
		if !ok {
			return wantGot("an integer", v)
		}
		dst.SetInt(n)
	case reflect.Bool:
		b, ok := v.(bool)
		if !ok {
			return wantGot("a boolean (true or false)", v)
		}
		dst.SetBool(b)
	default:
		panic("config: no decoder for " + dst.Type().String())
	}
	return nil
}

// strs converts a TOML array of strings.
func strs(v any) ([]string, error) {
	a, ok := v.([]any)
	if !ok {
		return nil, wantGot("an array of strings", v)
	}
	out := make([]string, len(a))
	for i, e := range a {
		if out[i], ok = e.(string); !ok {
			return nil, fmt.Errorf("want an array of strings, got %s at index %d", tomlType(e), i)
		}
	}
	return out, nil
}

func wantGot(want string, v any) error {
	return fmt.Errorf("want %s, got %s", want, tomlType(v))
}

// tomlType names the TOML type of a decoded value.
func tomlType(v any) string {
	switch v.(type) {
	case string:
		return "a string"
	case int64:
		return "an integer"
	case float64:
		return "a float"
	case bool:
		return "a boolean"
	case time.Time:
		return "a datetime"
	case []any, []map[string]any:
		return "an array"
	case map[string]any:
		return "a table"
	}
	return fmt.Sprintf("%T", v)
}

// fieldInfo is one key of a table.
type fieldInfo struct {
	key   string   // TOML key, from the `toml` tag
	index int      // struct field index
	types []string // source types the key belongs to, from the `source` tag; nil: all
}

// fieldsOf lists the keys of a table struct in declaration order.
func fieldsOf(t reflect.Type) []fieldInfo {
	var out []fieldInfo
	for i := range t.NumField() {
		f := t.Field(i)
		key := f.Tag.Get("toml")
		if key == "" || key == "-" {
			continue
		}
		fi := fieldInfo{key: key, index: i}
		if s := f.Tag.Get("source"); s != "" {
			fi.types = strings.Split(s, ",")
		}
		out = append(out, fi)
	}
	return out
}

// knownKeys lists every key of the schema as "table.key" ("source.key" for
// the keys of [[source]]), and the top-level keys as "key".
func knownKeys() []string {
	var out []string
	ct := reflect.TypeFor[Config]()
	for _, tf := range fieldsOf(ct) {
		t := ct.Field(tf.index).Type
		if t.Kind() == reflect.Slice {
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct {
			out = append(out, tf.key)
			continue
		}
		for _, f := range fieldsOf(t) {
			out = append(out, tf.key+"."+f.key)
		}
	}
	return out
}

// Lines. The parser keeps one position per key path, which for the keys of
// [[source]] is that of the last element having the key; those positions
// are recorded only for that element. The headers of the other elements
// are found in the text, if their count agrees.

type lineProbe struct{}

func (*lineProbe) UnmarshalTOML(any) error { return errors.New("line probe") }

// lineOf returns the line the parser recorded for p's key, or 0.
func (d *decoder) lineOf(p toml.Primitive) int {
	var pe toml.ParseError
	if errors.As(d.md.PrimitiveDecode(p, &lineProbe{}), &pe) {
		return pe.Position.Line
	}
	return 0
}

func (d *decoder) record(path string, m map[string]toml.Primitive) {
	for k, p := range m {
		if l := d.lineOf(p); l > 0 {
			d.lines[join(path, k)] = l
		}
	}
}

var sourceHeader = regexp.MustCompile(`(?m)^[ \t]*\[\[[ \t]*source[ \t]*\]\]`)

func (d *decoder) recordSources(elems []toml.Primitive, tables []map[string]toml.Primitive) {
	n := len(elems)
	if n == 0 {
		return
	}
	last := d.lineOf(elems[n-1])
	headers := sourceHeader.FindAllStringIndex(d.data, -1)
	if len(headers) == n && 1+strings.Count(d.data[:headers[n-1][0]], "\n") == last {
		for i, h := range headers {
			d.lines["source."+strconv.Itoa(i)] = 1 + strings.Count(d.data[:h[0]], "\n")
		}
	} else if last > 0 {
		d.lines["source."+strconv.Itoa(n-1)] = last
	}
	for i, m := range tables {
		for k, p := range m {
			if !slices.ContainsFunc(tables[i+1:], func(t map[string]toml.Primitive) bool { _, ok := t[k]; return ok }) {
				if l := d.lineOf(p); l > 0 {
					d.lines["source."+strconv.Itoa(i)+"."+k] = l
				}
			}
		}
	}
}

// setLine sets e.Line from the line of e's key, or else of the table that
// holds it.
func (d *decoder) setLine(e *Error) {
	for p := e.path; p != ""; {
		if l := d.lines[p]; l > 0 {
			e.Line = l
			return
		}
		i := strings.LastIndexByte(p, '.')
		if i < 0 {
			return
		}
		p = p[:i]
	}
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// suggest returns the known key closest to k, or "" when none is close.
func suggest(k string, known []string) string {
	best, bestD := "", 3
	for _, c := range known {
		if dd := distance(strings.ToLower(k), c); dd < bestD {
			best, bestD = c, dd
		}
	}
	return best
}

// distance is the Levenshtein distance of a and b.
func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}
