package daemon

import (
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"
)

// completionFlag is the flag urfave/cli answers with the names that may
// come next (commands, then flags) when the App enables bash completion.
const completionFlag = "--generate-bash-completion"

// CompletionCommand returns the `completion bash|zsh` command: it prints
// a script that asks the binary itself what may come next, so it never
// falls behind the commands and flags. The App must set
// EnableBashCompletion.
//
//	source <(registrar completion bash)
func CompletionCommand(name string) *cli.Command {
	fn := "_" + strings.ReplaceAll(name, "-", "_") + "_complete"
	bash := fmt.Sprintf(`# bash completion for %[1]s: source <(%[1]s completion bash)
%[2]s() {
  local cur=${COMP_WORDS[COMP_CWORD]}
  local words=("${COMP_WORDS[@]:0:COMP_CWORD}")
  [[ $cur == -* ]] && words+=("$cur")
  local IFS=$'\n'
  COMPREPLY=($(compgen -W "$("${words[@]}" %[3]s 2>/dev/null)" -- "$cur"))
}
complete -o bashdefault -o default -F %[2]s %[1]s
`, name, fn, completionFlag)
	return &cli.Command{
		Name:      "completion",
		Usage:     "print a shell completion script (bash or zsh)",
		ArgsUsage: "bash|zsh",
		Description: fmt.Sprintf("bash: source <(%[1]s completion bash), or save it in /etc/bash_completion.d/%[1]s.\n"+
			"zsh:  source <(%[1]s completion zsh) in ~/.zshrc.", name),
		Action: func(c *cli.Context) error {
			switch c.Args().First() {
			case "bash":
				_, err := fmt.Fprint(c.App.Writer, bash)
				return err
			case "zsh":
				_, err := fmt.Fprint(c.App.Writer, "autoload -U +X bashcompinit && bashcompinit\n"+bash)
				return err
			}
			return fmt.Errorf("completion: want bash or zsh, got %q", c.Args().First())
		},
	}
}
