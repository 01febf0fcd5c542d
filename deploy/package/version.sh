#!/bin/sh
# Turns a version from `git describe --tags --always --dirty` into one that deb and
# rpm both accept and order right:
#   v1.2.3                  1.2.3
#   v1.2.3-rc1              1.2.3~rc1            (before 1.2.3)
#   v1.2.3-4-gabc1234       1.2.3+4.gabc1234     (after 1.2.3)
#   v1.2.3-4-gabc1234-dirty 1.2.3+4.gabc1234.dirty
#   abc1234-dirty           0.0.0~gitabc1234.dirty (no tag yet: before any release)
set -eu
v=${1#v}
dirty=
case $v in
*-dirty) v=${v%-dirty} dirty=.dirty ;;
esac
case $v in
[0-9]*.*) ;;
*) printf '0.0.0~git%s%s\n' "$(printf %s "$v" | tr -c 'A-Za-z0-9.\n' .)" "$dirty"; exit 0 ;;
esac
# Commits after the tag: -N-gHASH.
after=$(printf %s "$v" | sed -n 's/.*-\([0-9][0-9]*\)-g\([0-9a-f][0-9a-f]*\)$/+\1.g\2/p')
v=$(printf %s "$v" | sed 's/-[0-9][0-9]*-g[0-9a-f][0-9a-f]*$//')
# What is left after a hyphen is a pre-release.
v=$(printf %s "$v" | sed 's/-/~/' | tr -c 'A-Za-z0-9.~\n' .)
if [ -z "$after" ] && [ -n "$dirty" ]; then
	dirty=+dirty
fi
printf '%s%s%s\n' "$v" "$after" "$dirty"
