// Package genfiles is what sessiond's generators (cmd/gen, cmd/gensdk) share: finding the
// repository root, and checking or writing a set of generated files against the tree.
package genfiles

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// FindRoot returns the first directory from dir upwards whose go.mod declares modulePath.
func FindRoot(dir, modulePath string) (string, error) {
	for d := dir; ; {
		if mod, err := moduleOf(filepath.Join(d, "go.mod")); err == nil && mod == modulePath {
			return d, nil
		}
		parent := filepath.Dir(d)
		if parent == d {
			return "", fmt.Errorf("no go.mod of module %s in %s or above", modulePath, dir)
		}
		d = parent
	}
}

// moduleOf returns the module path declared by a go.mod file.
func moduleOf(gomod string) (string, error) {
	f, err := os.Open(gomod)
	if err != nil {
		return "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "module "); ok {
			return strings.Trim(strings.TrimSpace(rest), `"`), nil
		}
	}
	return "", errors.Join(sc.Err(), fmt.Errorf("%s declares no module", gomod))
}

// Set is a generator's output: files keyed by slash-separated path relative to Root, the
// generated files already on disk (same keys), and how to recognise a generated file.
type Set struct {
	Root        string
	Tool        string
	Files       map[string][]byte
	OnDisk      []string
	IsGenerated func(data []byte) bool
}

func (s *Set) path(name string) string { return filepath.Join(s.Root, filepath.FromSlash(name)) }

// Compare lists, sorted, every file that is missing on disk or differs from it, and every
// file on disk that the generator no longer makes.
func (s *Set) Compare() ([]string, error) {
	var problems []string
	for _, name := range slices.Sorted(maps.Keys(s.Files)) {
		have, err := os.ReadFile(s.path(name))
		switch {
		case errors.Is(err, fs.ErrNotExist):
			problems = append(problems, name+": missing")
		case err != nil:
			return nil, err
		case !bytes.Equal(have, s.Files[name]):
			problems = append(problems, name+": stale")
		}
	}
	for _, name := range s.OnDisk {
		if _, ok := s.Files[name]; !ok {
			problems = append(problems, name+": extra (generated, but "+s.Tool+" no longer makes it)")
		}
	}
	slices.Sort(problems)
	return problems, nil
}

// Write writes the files that changed and removes files on disk that the generator no longer
// makes. It never overwrites or removes a file that is not generated.
func (s *Set) Write() error {
	for _, name := range slices.Sorted(maps.Keys(s.Files)) {
		file := s.path(name)
		have, err := os.ReadFile(file)
		switch {
		case err == nil && bytes.Equal(have, s.Files[name]):
			continue
		case err == nil && !s.IsGenerated(have):
			return fmt.Errorf("%s is hand-written; %s will not overwrite it", name, s.Tool)
		case err != nil && !errors.Is(err, fs.ErrNotExist):
			return err
		}
		if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(file, s.Files[name], 0o644); err != nil {
			return err
		}
	}
	for _, name := range s.OnDisk {
		if _, ok := s.Files[name]; ok {
			continue
		}
		data, err := os.ReadFile(s.path(name))
		if err != nil {
			return err
		}
		if !s.IsGenerated(data) {
			return fmt.Errorf("%s was not made by %s; only generated files belong there", name, s.Tool)
		}
		if err := os.Remove(s.path(name)); err != nil {
			return err
		}
	}
	return nil
}
