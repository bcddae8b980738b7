// Command gen generates sessiond's contract from the method table of package rpc
// (rpc.Methods and rpc.ErrorCodes): a JSON Schema (draft 2020-12) for the params and the
// result of every method, schemas/<method>.params.json and schemas/<method>.result.json,
// and the OpenRPC 1.3.2 document schemas/openrpc.json, which rpc.discover returns.
//
// Usage:
//
//	go generate ./...        # runs gen from schemas/doc.go
//	go run ./cmd/gen         # the same, from anywhere in the repository
//	go run ./cmd/gen -check  # write nothing; exit 1 if a generated file is stale, missing or extra
//
// Descriptions come from the Go doc comments of the types in rpc and engine, so gen reads
// their sources: it finds the repository root itself by walking up from the current
// directory to the go.mod of module github.com/sessiond/sessiond. Limits that the Go types
// cannot carry in jsonschema tags are in memberLimits. A component of the OpenRPC document
// whose Go type embeds another component's names it in x-extends (an extension for
// cmd/gensdk); its schema still lists every member itself. The output is deterministic.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/sessiond/sessiond/cmd/internal/genfiles"
	"github.com/sessiond/sessiond/rpc"
)

// outDir is the directory of the generated files, relative to the repository root.
const outDir = "schemas"

func main() {
	check := flag.Bool("check", false, "write nothing; exit 1 listing every generated file that is stale, missing or extra")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: go run ./cmd/gen [-check]\n\nGenerates schemas/*.json from the method table of package rpc.\n\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if err := run(*check); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}

func run(check bool) error {
	cwd, err := os.Getwd()
	if err != nil {
		return err
	}
	root, err := findRoot(cwd)
	if err != nil {
		return err
	}
	if err := os.Chdir(root); err != nil {
		return err
	}
	files, err := generate()
	if err != nil {
		return err
	}
	if check {
		problems, err := compare(files, outDir)
		if err != nil {
			return err
		}
		if len(problems) > 0 {
			return fmt.Errorf("generated files are out of date; run `go generate ./...`:\n\t%s", strings.Join(problems, "\n\t"))
		}
		return nil
	}
	return write(files, outDir)
}

// findRoot returns the repository root at or above dir.
func findRoot(dir string) (string, error) { return genfiles.FindRoot(dir, modulePath) }

// generate returns every generated file by name (relative to outDir). The current directory
// must be the repository root.
func generate() (map[string][]byte, error) {
	g, err := newGenerator(rpc.Methods)
	if err != nil {
		return nil, err
	}
	files := map[string][]byte{}
	var all []*methodSchemas
	for _, m := range rpc.Methods {
		if _, dup := files[m.Name+".params.json"]; dup {
			return nil, fmt.Errorf("method %s is in rpc.Methods twice", m.Name)
		}
		ms, err := g.methodSchemas(m)
		if err != nil {
			return nil, err
		}
		all = append(all, ms)
		if files[m.Name+".params.json"], err = encodeSchema(ms.params); err != nil {
			return nil, fmt.Errorf("%s params: %w", m.Name, err)
		}
		if files[m.Name+".result.json"], err = encodeSchema(ms.result); err != nil {
			return nil, fmt.Errorf("%s result: %w", m.Name, err)
		}
	}
	if unused := g.unusedLimits(); len(unused) > 0 {
		return nil, fmt.Errorf("memberLimits match no member of any method: %s", strings.Join(unused, ", "))
	}
	if files["openrpc.json"], err = openRPC(all, g.defNames); err != nil {
		return nil, fmt.Errorf("openrpc.json: %w", err)
	}
	return files, nil
}

// generatedFiles lists the JSON files in dir, which are all generated.
func generatedFiles(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range entries {
		if !e.IsDir() && strings.HasSuffix(e.Name(), ".json") {
			names = append(names, e.Name())
		}
	}
	return names, nil
}

// fileSet is the generated files (named relative to dir) as a genfiles.Set rooted at the
// current directory, with every JSON file in dir on disk: dir holds only generated files.
func fileSet(files map[string][]byte, dir string) (*genfiles.Set, error) {
	onDisk, err := generatedFiles(dir)
	if err != nil {
		return nil, err
	}
	set := &genfiles.Set{Root: ".", Tool: "gen", Files: map[string][]byte{},
		IsGenerated: func(data []byte) bool { return bytes.Contains(data, []byte(generatedMarker)) }}
	for name, data := range files {
		set.Files[dir+"/"+name] = data
	}
	for _, name := range onDisk {
		set.OnDisk = append(set.OnDisk, dir+"/"+name)
	}
	return set, nil
}

// compare lists, sorted, every generated file that is stale, missing or extra in dir.
func compare(files map[string][]byte, dir string) ([]string, error) {
	set, err := fileSet(files, dir)
	if err != nil {
		return nil, err
	}
	return set.Compare()
}

// write writes the files that changed and removes the generated files of methods that are
// gone. A JSON file in dir that gen did not make is an error: dir holds only generated files.
func write(files map[string][]byte, dir string) error {
	set, err := fileSet(files, dir)
	if err != nil {
		return err
	}
	return set.Write()
}
