package render

import (
	"strings"
	"text/template"
	"text/template/parse"
)

// The functions an action that only prints a cachedTemplate or cachedRange
// call is rewritten to (see printDirect).
const (
	cachedTemplatePrint = "_rewireCachedTemplatePrint"
	cachedRangePrint    = "_rewireCachedRangePrint"
)

// printDirect rewrites every action that only prints the result of a
// cachedTemplate or cachedRange call ({{ cachedRange "server" (instances
// .) }}: one command, no variable, no pipe) to call a variant that writes
// the output to the template's writer itself and returns "". The output is
// the same, but a block of the size of a whole service's servers is then
// not copied twice more through fmt's buffer, which text/template prints
// every value with (and which is allocated anew for each value larger than
// 64 KiB).
func printDirect(t *template.Template) {
	for _, tt := range t.Templates() {
		if tt.Tree != nil {
			printDirectList(tt.Tree.Root)
		}
	}
}

func printDirectList(l *parse.ListNode) {
	if l == nil {
		return
	}
	for _, n := range l.Nodes {
		switch n := n.(type) {
		case *parse.ActionNode:
			if n.Pipe == nil || len(n.Pipe.Decl) > 0 || len(n.Pipe.Cmds) != 1 || len(n.Pipe.Cmds[0].Args) == 0 {
				continue
			}
			if id, ok := n.Pipe.Cmds[0].Args[0].(*parse.IdentifierNode); ok {
				switch id.Ident {
				case "cachedTemplate":
					id.Ident = cachedTemplatePrint
				case "cachedRange":
					id.Ident = cachedRangePrint
				}
			}
		case *parse.RangeNode:
			printDirectList(n.List)
			printDirectList(n.ElseList)
		case *parse.IfNode:
			printDirectList(n.List)
			printDirectList(n.ElseList)
		case *parse.WithNode:
			printDirectList(n.List)
			printDirectList(n.ElseList)
		case *parse.ListNode:
			printDirectList(n)
		}
	}
}

// printedNames undoes printDirect in an error's text: the template was
// written with cachedTemplate and cachedRange, and its errors say so.
var printedNames = strings.NewReplacer(cachedTemplatePrint, "cachedTemplate", cachedRangePrint, "cachedRange")

// renamedError is an error whose text names the functions as the template
// does (see printedNames); errors.Is and errors.As see the original.
type renamedError struct {
	err error
	msg string
}

func (e *renamedError) Error() string { return e.msg }
func (e *renamedError) Unwrap() error { return e.err }

// unrenamed returns err with its text as the template author wrote the
// calls it names.
func unrenamed(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	if !strings.Contains(msg, "_rewireCached") {
		return err
	}
	return &renamedError{err: err, msg: printedNames.Replace(msg)}
}
