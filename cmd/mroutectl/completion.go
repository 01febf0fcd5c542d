package main

import (
	"flag"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
)

// The completion scripts are made from the command tree and the flag set, so that
// they know every command, alias and flag mroutectl itself knows. Each script
// resolves the words already typed as mroutectl does, word by word (the word, an
// alias or a unique prefix), skipping flags, and offers the words that may follow.

// completionLevel is a command with sub commands: the words that lead to it and
// what may follow them.
type completionLevel struct {
	path string // its full words, space-separated; "" for the top level
	node *command
}

// plainWord is what a command word or flag name must look like to go into a script
// unquoted.
var plainWord = regexp.MustCompile(`^[a-z][a-z0-9-]*$`)

func completionLevels(root *command) ([]completionLevel, error) {
	var levels []completionLevel
	var walk func(c *command, path []string) error
	walk = func(c *command, path []string) error {
		if c.run != nil {
			return nil
		}
		levels = append(levels, completionLevel{path: strings.Join(path, " "), node: c})
		for _, s := range c.sub {
			for _, w := range append([]string{s.word}, s.aliases...) {
				if !plainWord.MatchString(w) {
					return fmt.Errorf("command word %q cannot go into a completion script", w)
				}
			}
			if err := walk(s, append(slices.Clip(path), s.word)); err != nil {
				return err
			}
		}
		return nil
	}
	return levels, walk(root, nil)
}

// spellings lists a level's sub commands as "spelling=word" pairs: each word
// spelled as itself, then its aliases.
func (l completionLevel) spellings() string {
	var pairs []string
	for _, s := range l.node.sub {
		for _, sp := range append([]string{s.word}, s.aliases...) {
			pairs = append(pairs, sp+"="+s.word)
		}
	}
	return strings.Join(pairs, " ")
}

// completionFlag is one of mroutectl's flags as typed: -s, --socket.
type completionFlag struct {
	spelling string
	arg      bool // takes a value
	usage    string
}

func completionFlags() ([]completionFlag, error) {
	var flags []completionFlag
	var err error
	newFlagSet(new(string), new(bool)).VisitAll(func(f *flag.Flag) {
		if !plainWord.MatchString(f.Name) {
			err = fmt.Errorf("flag %q cannot go into a completion script", f.Name)
		}
		spelling := "--" + f.Name
		if len(f.Name) == 1 {
			spelling = "-" + f.Name
		}
		b, ok := f.Value.(interface{ IsBoolFlag() bool })
		flags = append(flags, completionFlag{spelling: spelling, arg: !ok || !b.IsBoolFlag(), usage: f.Usage})
	})
	// The flag package answers -h and --help itself.
	flags = append(flags, completionFlag{spelling: "-h", usage: "list commands and flags"},
		completionFlag{spelling: "--help", usage: "list commands and flags"})
	return flags, err
}

// argFlagPattern is a case pattern matching the flags that take a value, in each
// spelling the flag package accepts (-socket as well as --socket).
func argFlagPattern(flags []completionFlag) string {
	var alts []string
	for _, f := range flags {
		if f.arg {
			alts = append(alts, f.spelling)
			if strings.HasPrefix(f.spelling, "--") {
				alts = append(alts, f.spelling[1:])
			}
		}
	}
	if len(alts) == 0 {
		// A pattern no word matches, so that the script stays valid.
		return "--"
	}
	return strings.Join(alts, "|")
}

func writeBashCompletion(w io.Writer, root *command) error {
	levels, err := completionLevels(root)
	if err != nil {
		return err
	}
	flags, err := completionFlags()
	if err != nil {
		return err
	}
	var spellings []string
	for _, f := range flags {
		spellings = append(spellings, f.spelling)
	}
	var b strings.Builder
	b.WriteString(`# bash completion for mroutectl.
# Made by "mroutectl completion bash" from mroutectl's own command table: install
# it as /usr/share/bash-completion/completions/mroutectl, or source it.

# _mroutectl_subs PATH: in REPLY, the sub commands of the command words PATH as
# "spelling=word" pairs; an alias is a spelling that differs from its word.
_mroutectl_subs() {
	case "$1" in
`)
	for _, l := range levels {
		fmt.Fprintf(&b, "\t'%s') REPLY='%s' ;;\n", l.path, l.spellings())
	}
	fmt.Fprintf(&b, `	*) REPLY='' ;;
	esac
}

# _mroutectl_step PATH TYPED: in REPLY, the word that TYPED names under PATH: a
# word or an alias spelled out, else a prefix of only one word. Fails otherwise.
_mroutectl_step() {
	local pair found=''
	_mroutectl_subs "$1"
	for pair in $REPLY; do
		if [[ ${pair%%%%=*} == "$2" ]]; then
			REPLY=${pair#*=}
			return 0
		fi
	done
	for pair in $REPLY; do
		if [[ ${pair%%%%=*} == "$2"* && ${pair#*=} != "$found" ]]; then
			[[ -z $found ]] || return 1
			found=${pair#*=}
		fi
	done
	[[ -n $found ]] || return 1
	REPLY=$found
}

_mroutectl() {
	local cur=${COMP_WORDS[COMP_CWORD]} prev='' before='' REPLY path='' word pair i
	local words='' aliases=''
	((COMP_CWORD < 1)) || prev=${COMP_WORDS[COMP_CWORD-1]}
	((COMP_CWORD < 2)) || before=${COMP_WORDS[COMP_CWORD-2]}
	COMPREPLY=()
	# A flag's value (bash splits "--socket=PATH" at the "=").
	[[ $prev != = ]] || prev=$before
	case $prev in
	%[1]s)
		COMPREPLY=($(compgen -f -- "${cur#=}"))
		return 0
		;;
	esac
	if [[ $cur == -* ]]; then
		COMPREPLY=($(compgen -W '%[2]s' -- "$cur"))
		return 0
	fi
	# The command words so far, flags and their values left out.
	for ((i = 1; i < COMP_CWORD; i++)); do
		word=${COMP_WORDS[i]}
		case $word in
		%[1]s)
			((i++))
			[[ ${COMP_WORDS[i]} != = ]] || ((i++))
			continue
			;;
		-*) continue ;;
		esac
		_mroutectl_step "$path" "$word" || return 0
		path=${path:+$path }$REPLY
	done
	_mroutectl_subs "$path"
	for pair in $REPLY; do
		if [[ ${pair%%%%=*} == "${pair#*=}" ]]; then
			words+=" ${pair%%%%=*}"
		else
			aliases+=" ${pair%%%%=*}"
		fi
	done
	# Aliases only when no word fits: "neighbo" offers neighbors alone.
	COMPREPLY=($(compgen -W "$words" -- "$cur"))
	((${#COMPREPLY[@]} > 0)) || COMPREPLY=($(compgen -W "$aliases" -- "$cur"))
	return 0
}

complete -F _mroutectl mroutectl
`, argFlagPattern(flags), strings.Join(spellings, " "))
	_, err = io.WriteString(w, b.String())
	return err
}

// zshQuote quotes s for zsh, in single quotes.
func zshQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func writeZshCompletion(w io.Writer, root *command) error {
	levels, err := completionLevels(root)
	if err != nil {
		return err
	}
	flags, err := completionFlags()
	if err != nil {
		return err
	}
	var flagDescs []string
	for _, f := range flags {
		flagDescs = append(flagDescs, zshQuote(strings.ReplaceAll(f.spelling, ":", `\:`)+":"+f.usage))
	}
	var b strings.Builder
	b.WriteString(`#compdef mroutectl
# zsh completion for mroutectl.
# Made by "mroutectl completion zsh" from mroutectl's own command table: install it
# as _mroutectl in a directory on $fpath, or source it after compinit.

# _mroutectl_subs PATH: the sub commands of the command words PATH: in reply,
# "spelling=word" pairs (an alias is a spelling that differs from its word); in
# descs, "word:summary" for _describe.
_mroutectl_subs() {
	case "$1" in
`)
	for _, l := range levels {
		var descs []string
		for _, s := range l.node.sub {
			summary := s.summary
			if s.run == nil {
				summary = strings.Join(words(s.sub), ", ")
			}
			descs = append(descs, zshQuote(s.word+":"+summary))
		}
		fmt.Fprintf(&b, "\t('%s')\n\t\treply=(%s)\n\t\tdescs=(%s)\n\t\t;;\n", l.path, l.spellings(), strings.Join(descs, " "))
	}
	fmt.Fprintf(&b, `	(*)
		reply=()
		descs=()
		;;
	esac
}

# _mroutectl_step PATH TYPED: in REPLY, the word that TYPED names under PATH: a
# word or an alias spelled out, else a prefix of only one word. Fails otherwise.
_mroutectl_step() {
	local pair found=''
	local -a reply descs
	_mroutectl_subs "$1"
	for pair in $reply; do
		if [[ ${pair%%%%=*} == "$2" ]]; then
			REPLY=${pair#*=}
			return 0
		fi
	done
	for pair in $reply; do
		if [[ ${pair%%%%=*} == "$2"* && ${pair#*=} != "$found" ]]; then
			[[ -z $found ]] || return 1
			found=${pair#*=}
		fi
	done
	[[ -n $found ]] || return 1
	REPLY=$found
}

_mroutectl() {
	local cmdpath='' word REPLY i
	local -a reply descs flags
	flags=(%[2]s)
	case ${words[CURRENT]} in
	((%[1]s)=*)
		compset -P '*='
		_files
		return
		;;
	esac
	case ${words[CURRENT-1]} in
	(%[1]s)
		_files
		return
		;;
	esac
	if [[ ${words[CURRENT]} == -* ]]; then
		_describe -t flags 'mroutectl flag' flags
		return
	fi
	# The command words so far, flags and their values left out.
	for ((i = 2; i < CURRENT; i++)); do
		word=${words[i]}
		case $word in
		(%[1]s)
			((i++))
			continue
			;;
		(-*) continue ;;
		esac
		_mroutectl_step "$cmdpath" "$word" || return 1
		cmdpath=${cmdpath:+$cmdpath }$REPLY
	done
	_mroutectl_subs "$cmdpath"
	(($#descs)) || return 1
	_describe -t commands 'mroutectl command' descs
}

if [[ $funcstack[1] == _mroutectl ]]; then
	_mroutectl "$@"
else
	compdef _mroutectl mroutectl
fi
`, argFlagPattern(flags), strings.Join(flagDescs, " "))
	_, err = io.WriteString(w, b.String())
	return err
}
