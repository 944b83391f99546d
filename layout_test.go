package rewire_test

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
)

// Size limits of the code a newcomer reads: a file that holds more than
// one concern, or a function that does more than one thing, is split into
// named parts instead. Tests and the measurement commands under bench/ are
// exempt.
const (
	maxFileLines = 500
	maxFuncLines = 80
)

// longTables are the functions allowed past maxFuncLines, by package
// directory and name: each is one table, where splitting would only
// scatter what a reader wants to see in one place.
var longTables = map[string]bool{
	// The template functions: one documented entry per function.
	"render.registryFuncs": true,
	// The registrar's command-line commands and their flags.
	"cmd/registrar.run": true,
}

// TestLayoutLimits fails, naming file:line, for every non-test Go file
// outside bench/ over maxFileLines lines and every function over
// maxFuncLines lines that is not in longTables.
func TestLayoutLimits(t *testing.T) {
	files := 0
	err := filepath.WalkDir(".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if p == "bench" || p != "." && strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata" || d.Name() == "bin" || strings.HasPrefix(d.Name(), "demo-run") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
			return nil
		}
		files++
		for _, problem := range layoutProblems(p) {
			t.Error(problem)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 50 {
		t.Fatalf("checked only %d files; the walk is broken", files)
	}
}

// layoutProblems lists the limits the Go file at path breaks.
func layoutProblems(path string) []string {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
	if err != nil {
		return []string{err.Error()}
	}
	var problems []string
	if n := fset.File(f.Pos()).LineCount(); n > maxFileLines {
		problems = append(problems, fmt.Sprintf("%s:1: %d lines, over %d: split it by concern", path, n, maxFileLines))
	}
	pkg := filepath.ToSlash(filepath.Dir(path))
	ast.Inspect(f, func(n ast.Node) bool {
		var name string
		switch fn := n.(type) {
		case *ast.FuncDecl:
			name = funcName(fn)
		case *ast.FuncLit: // only outside functions (say, in a var): those inside count with theirs
			name = "function literal"
		default:
			return true
		}
		start, end := fset.Position(n.Pos()), fset.Position(n.End())
		if lines := end.Line - start.Line + 1; lines > maxFuncLines && !longTables[pkg+"."+name] {
			problems = append(problems, fmt.Sprintf("%s:%d: %s is %d lines, over %d: split it into named steps", path, start.Line, name, lines, maxFuncLines))
		}
		return false
	})
	return problems
}

// funcName is fn's name as longTables spells it: F, T.M or (*T).M.
func funcName(fn *ast.FuncDecl) string {
	if fn.Recv == nil || len(fn.Recv.List) == 0 {
		return fn.Name.Name
	}
	typ := fn.Recv.List[0].Type
	star := false
	if s, ok := typ.(*ast.StarExpr); ok {
		typ, star = s.X, true
	}
	switch g := typ.(type) { // a generic type's receiver: T[K, V]
	case *ast.IndexExpr:
		typ = g.X
	case *ast.IndexListExpr:
		typ = g.X
	}
	recv := fmt.Sprint(typ)
	if star {
		recv = "(*" + recv + ")"
	}
	return recv + "." + fn.Name.Name
}
