// Package state keeps the service table on disk, so that a restart while a
// registry is down still serves its last known instances.
//
// The file is one header line, "discodns-state <version> sha256:<hex>
// <length>", and a JSON body of that length whose SHA-256 is that hex: a
// file that is truncated, corrupted or of another version is refused
// whole, never read in part. It is written to a temporary file in the same
// directory, synced and renamed over the old one, so a crash leaves either
// the old file or the new one.
package state

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/discodns/discodns/cache"
)

// Version is the format version this build writes and reads.
const Version = 1

// MaxSize bounds the state file read at start: about two million
// instances, far more than a table holds.
const MaxSize = 1 << 30

// magic starts every state file.
const magic = "discodns-state"

// File is the table as the state file holds it.
type File struct {
	// Written is when the file was written.
	Written time.Time `json:"written"`
	// Sources holds, by source name, what each source served.
	Sources map[string]Source `json:"sources"`
}

// Source is what one source served.
type Source struct {
	// AsOf is when its registry last held these instances, as far as
	// discodns knew: the write time for a connected source, the time it
	// went stale for a stale one, the older file's time for one seeded
	// from a state file.
	AsOf      time.Time        `json:"as_of"`
	Instances []cache.Instance `json:"instances"`
}

// FromSnapshot returns the instances each source of snap serves (the
// sources that have listed, or were seeded), written at now. An instance
// of one service at the same address and port in two sources is served
// once, and kept under the source that serves it; a name with no DNS label
// and a name whose label another name has are not served and not kept. It
// reads snap only, so it never blocks the table.
func FromSnapshot(snap *cache.Snapshot, now time.Time) *File {
	f := &File{Written: now, Sources: map[string]Source{}}
	for _, st := range snap.Sources {
		if !st.Listed {
			continue
		}
		asOf := now
		switch {
		case !st.Seeded.IsZero():
			asOf = st.Seeded
		case st.State == cache.StateStale:
			asOf = st.Since
		}
		f.Sources[st.Name] = Source{AsOf: asOf, Instances: []cache.Instance{}}
	}
	for _, svc := range snap.Services.All() {
		for _, ep := range svc.Endpoints {
			if s, ok := f.Sources[ep.Source]; ok {
				in := *ep.Instance
				in.Source = ""
				s.Instances = append(s.Instances, in)
				f.Sources[ep.Source] = s
			}
		}
	}
	return f
}

// Encode returns f in the state file format.
func Encode(f *File) ([]byte, error) {
	body, err := json.Marshal(f)
	if err != nil {
		return nil, fmt.Errorf("encode state: %w", err)
	}
	sum := sha256.Sum256(body)
	head := fmt.Sprintf("%s %d sha256:%s %d\n", magic, Version, hex.EncodeToString(sum[:]), len(body))
	return append([]byte(head), body...), nil
}

// Decode parses a state file; any flaw (a wrong header, another version,
// a length or checksum that does not match, a body that does not decode)
// is an error, and nothing of the file is returned.
func Decode(data []byte) (*File, error) {
	head, body, ok := bytes.Cut(data, []byte("\n"))
	if !ok {
		return nil, errors.New("no header line (truncated or not a state file)")
	}
	fields := strings.Fields(string(head))
	if len(fields) != 4 || fields[0] != magic || !strings.HasPrefix(fields[2], "sha256:") {
		return nil, fmt.Errorf("header %q is not a discodns state header", clip(head))
	}
	version, err := strconv.Atoi(fields[1])
	if err != nil {
		return nil, fmt.Errorf("header %q: bad version", clip(head))
	}
	if version != Version {
		return nil, fmt.Errorf("format version %d, this build reads %d", version, Version)
	}
	length, err := strconv.Atoi(fields[3])
	if err != nil {
		return nil, fmt.Errorf("header %q: bad length", clip(head))
	}
	sum := strings.TrimPrefix(fields[2], "sha256:")
	if len(body) != length {
		return nil, fmt.Errorf("body is %d bytes, the header says %d (truncated or appended to)", len(body), length)
	}
	got := sha256.Sum256(body)
	if hex.EncodeToString(got[:]) != sum {
		return nil, errors.New("checksum does not match (corrupted)")
	}
	var f File
	if err := json.Unmarshal(body, &f); err != nil {
		return nil, fmt.Errorf("body: %w", err)
	}
	return &f, nil
}

// clip shortens a header for an error message.
func clip(b []byte) string {
	if len(b) > 80 {
		return string(b[:80]) + "..."
	}
	return string(b)
}

// Read reads and decodes the state file at path. An error wraps
// fs.ErrNotExist when there is none.
func Read(path string) (*File, error) {
	if fi, err := os.Stat(path); err == nil && fi.Size() > MaxSize {
		return nil, fmt.Errorf("state file %s: %d bytes, more than the %d a state file may have", path, fi.Size(), MaxSize)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read state file: %w", err)
	}
	f, err := Decode(data)
	if err != nil {
		return nil, fmt.Errorf("state file %s: %w", path, err)
	}
	return f, nil
}

// Write writes f to path atomically: a temporary file in the same
// directory, synced, renamed over path, and the directory synced.
func Write(path string, f *File) error {
	data, err := Encode(f)
	if err != nil {
		return err
	}
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-"+strconv.Itoa(os.Getpid())+"-*")
	if err != nil {
		return fmt.Errorf("write state file: %w", err)
	}
	defer os.Remove(tmp.Name()) // after a rename, there is nothing to remove
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("write state file %s: %w", tmp.Name(), err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("sync state file %s: %w", tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write state file %s: %w", tmp.Name(), err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write state file: %w", err)
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
