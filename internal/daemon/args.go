package daemon

import (
	"slices"
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"
)

// InterspersedArgs reorders args so that every flag of the (sub)command
// they name comes before its positional arguments. urfave/cli v2 stops
// parsing flags at the first positional argument, and operators write
// `registrar maint enable web --reason "disk swap"`. Arguments after "--"
// are left alone.
func InterspersedArgs(app *cli.App, args []string) []string {
	if len(args) == 0 || args[len(args)-1] == completionFlag {
		return args // a completion request: the flag must stay last
	}
	out := []string{args[0]}
	cmds, flags := app.Commands, app.Flags
	i := 1
	// Walk down the command path.
	for i < len(args) {
		c := findCommand(cmds, args[i])
		if c == nil {
			break
		}
		out = append(out, args[i])
		cmds, flags = c.Subcommands, c.Flags
		i++
		if len(cmds) == 0 {
			break
		}
	}
	var opts, pos []string
	for ; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			pos = append(pos, args[i:]...)
			i = len(args)
		case strings.HasPrefix(a, "-") && a != "-" && !isNumber(a):
			opts = append(opts, a)
			name := strings.TrimLeft(a, "-")
			if strings.Contains(name, "=") {
				continue
			}
			if takesValue(flags, name) && i+1 < len(args) {
				i++
				opts = append(opts, args[i])
			}
		default:
			pos = append(pos, a)
		}
	}
	if len(pos) > 0 && pos[0] != "--" && len(opts) > 0 {
		pos = append([]string{"--"}, pos...)
	}
	return slices.Concat(out, opts, pos)
}

// isNumber reports whether a is a number such as -1: an argument (`expect
// web -1` is then refused for its value), not a flag.
func isNumber(a string) bool {
	_, err := strconv.ParseFloat(a, 64)
	return err == nil
}

func findCommand(cmds []*cli.Command, name string) *cli.Command {
	for _, c := range cmds {
		if c.Name == name || slices.Contains(c.Aliases, name) {
			return c
		}
	}
	return nil
}

func takesValue(flags []cli.Flag, name string) bool {
	for _, f := range flags {
		if !slices.Contains(f.Names(), name) {
			continue
		}
		_, isBool := f.(*cli.BoolFlag)
		return !isBool
	}
	return false
}
