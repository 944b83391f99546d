// Package rewire_test holds repository-wide checks: every package has a
// doc comment, and docs/ARCHITECTURE.md lists every package.
package rewire_test

import (
	"os"
	"os/exec"
	"regexp"
	"slices"

	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
)

func TestEveryPackageHasDocComment(t *testing.T) {
	dirs := map[string][]string{}
	err := filepath.WalkDir(".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (strings.HasPrefix(d.Name(), ".") && p != "." || d.Name() == "testdata" || d.Name() == "bin" || strings.HasPrefix(d.Name(), "demo-run")) {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(p, ".go") && !strings.HasSuffix(p, "_test.go") {
			dirs[filepath.Dir(p)] = append(dirs[filepath.Dir(p)], p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for dir, files := range dirs {
		documented := false
		for _, f := range files {
			ast, err := parser.ParseFile(token.NewFileSet(), f, nil, parser.ParseComments|parser.PackageClauseOnly)
			if err != nil {
				t.Errorf("%s: %v", f, err)
				continue
			}
			if ast.Doc != nil && strings.TrimSpace(ast.Doc.Text()) != "" {
				documented = true
			}
		}
		if !documented {
			t.Errorf("package in %s has no doc comment", dir)
		}
	}
	if len(dirs) < 5 {
		t.Fatalf("found only %d package directories; the walk is broken", len(dirs))
	}
}

// TestArchitecturePackages keeps docs/ARCHITECTURE.md's package table
// honest: every Go package of the repository is in it, and every package it
// names exists.
func TestArchitecturePackages(t *testing.T) {
	doc, err := os.ReadFile("docs/ARCHITECTURE.md")
	if err != nil {
		t.Fatal(err)
	}
	listed := map[string]bool{}
	for line := range strings.SplitSeq(string(doc), "\n") {
		if m := tableRow.FindStringSubmatch(line); m != nil {
			listed[m[1]] = true
		}
	}
	present := map[string]bool{}
	err = filepath.WalkDir(".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (strings.HasPrefix(d.Name(), ".") && p != "." || d.Name() == "testdata" || d.Name() == "bin" || strings.HasPrefix(d.Name(), "demo-run")) {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(p, ".go") && filepath.Dir(p) != "." {
			present[filepath.ToSlash(filepath.Dir(p))] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for p := range present {
		if !listed[p] {
			t.Errorf("package %s is not in docs/ARCHITECTURE.md's table", p)
		}
	}
	for p := range listed {
		if !present[p] {
			t.Errorf("docs/ARCHITECTURE.md lists %s, which is not a package here", p)
		}
	}
	if len(listed) < 10 {
		t.Fatalf("found only %d packages in the table; the parse is broken", len(listed))
	}
}

// tableRow matches a row of the package table: | `path` | ... |
var tableRow = regexp.MustCompile("^\\| `([a-z0-9/]+)` \\|")

// TestRenderImportsNoHAProxy: the render pipeline knows files, commands
// and its Runtime interface; HAProxy plugs in from its own package, wired
// by the templater engine, so that another consumer is a new package and
// not an edit of the pipeline. Neither imports etcd.
func TestRenderImportsNoHAProxy(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	out, err := exec.Command("go", "list", "-deps", "./render").Output()
	if err != nil {
		t.Fatalf("go list -deps ./render: %v", err)
	}
	deps := strings.Fields(string(out))
	for _, d := range deps {
		if d == "github.com/rewire/rewire/haproxy" || strings.HasPrefix(d, "go.etcd.io/") {
			t.Errorf("render depends on %s", d)
		}
	}
	if !slices.Contains(deps, "github.com/rewire/rewire/registry/schema") {
		t.Errorf("render's dependencies %v lack registry/schema: is go list answering for the right package?", deps)
	}
	out, err = exec.Command("go", "list", "-deps", "./templater").Output()
	if err != nil {
		t.Fatalf("go list -deps ./templater: %v", err)
	}
	if !slices.Contains(strings.Fields(string(out)), "github.com/rewire/rewire/haproxy") {
		t.Error("the templater engine does not import haproxy: who wires the HAProxy runtime in?")
	}
}

// TestSchemaImportsNoProberNoEtcd: the record format is a public contract
// that other tools import; it must not drag in etcd's client or the code
// that probes (health: HTTP, gRPC, exec), only the health vocabulary.
func TestSchemaImportsNoProberNoEtcd(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	out, err := exec.Command("go", "list", "-deps", "./registry/schema").Output()
	if err != nil {
		t.Fatalf("go list -deps ./registry/schema: %v", err)
	}
	deps := strings.Fields(string(out))
	for _, d := range deps {
		if strings.HasPrefix(d, "go.etcd.io/") || d == "github.com/rewire/rewire/health" || strings.HasPrefix(d, "google.golang.org/grpc") {
			t.Errorf("registry/schema depends on %s", d)
		}
	}
	if !slices.Contains(deps, "github.com/rewire/rewire/health/status") {
		t.Errorf("registry/schema's dependencies %v lack health/status: is go list answering for the right package?", deps)
	}
}
