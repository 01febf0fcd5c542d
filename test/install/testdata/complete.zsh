# zsh -f complete.zsh LINE...: types each LINE and a Tab into an interactive zsh
# that runs compinit on its default fpath, as a user's would, and prints the line
# as completion left it, one per LINE. Completion needs the line editor, hence
# the pseudo-terminal (zsh/zpty).
if [[ $1 == --widget ]]; then
	# Sourced by the interactive zsh: Ctrl-X prints the line and clears it. The
	# words of the mark are apart here so that the echo of this line never
	# matches it.
	autoload -Uz compinit && compinit -u -D
	print-line() { print -r -- "completed""[$BUFFER]"; BUFFER= }
	zle -N print-line
	bindkey '^X' print-line
	return
fi
zmodload zsh/zpty || exit 1
typeset -F SECONDS
zpty shell zsh -f -i
zpty -w shell ". ${(q)0:A} --widget"
for line in "$@"; do
	zpty -w -n shell "$line"$'\t\C-x'
	out= deadline=$((SECONDS + 10))
	until [[ $out =~ 'completed\[([^]]*)\]' ]]; do
		if ((SECONDS > deadline)); then
			print -u2 -r -- "no completion of ${(q+)line} in 10s; the terminal showed: ${(q+)out}"
			exit 1
		fi
		zpty -r -t shell chunk && out+=$chunk || sleep 0.05
	done
	print -r -- $match[1]
done
zpty -d shell
