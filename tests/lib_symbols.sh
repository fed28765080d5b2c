#!/usr/bin/env bash
# lib_symbols.sh - libvigil exports exactly what emitter/libvigil.map lists:
# nothing leaks (an internal helper made global), nothing is dropped
# silently (a listed call the library no longer defines), every export
# carries the map's version, and the SONAME is set.
#
#   lib_symbols.sh LIBVIGIL_SO LIBVIGIL_A LIBVIGIL_MAP
set -euo pipefail
so=$1 a=$2 map=$3
fail=0

# The names in the map's global: section (comments stripped).
want=$(sed -e 's:/\*.*\*/::' -e '/\/\*/,/\*\//d' "$map" |
	awk '/global:/{g=1; next} /local:/{g=0} g && /;/{gsub(/[ \t;]/, ""); if ($0 != "") print}' | sort)
[[ -n "$want" ]] || { echo "lib_symbols: no global names in $map" >&2; exit 1; }

# Defined dynamic symbols of the shared library, with their versions.
dyn=$(nm -D --defined-only "$so" | awk '$2 ~ /^[TDBRVW]$/ {print $3}')
names=$(printf '%s\n' "$dyn" | sed 's/@.*//' | sort)
if [[ "$names" != "$want" ]]; then
	echo "lib_symbols: $so exports a different set than $map:" >&2
	diff <(printf '%s\n' "$want") <(printf '%s\n' "$names") | sed 's/^/  /' >&2 || true
	fail=1
fi
node=$(sed -e 's:/\*.*\*/::' -e '/\/\*/,/\*\//d' "$map" | awk '/\{/{print $1; exit}')
unversioned=$(printf '%s\n' "$dyn" | grep -v "@@$node\$" || true)
if [[ -n "$unversioned" ]]; then
	echo "lib_symbols: exports without version $node: $unversioned" >&2
	fail=1
fi
soname=$(readelf -d "$so" | sed -n 's/.*Library soname: \[\(.*\)\]/\1/p')
if [[ "$soname" != libvigil.so.* ]]; then
	echo "lib_symbols: SONAME is '$soname', want libvigil.so.N" >&2
	fail=1
fi

# The static library defines the same global names (and no others).
stat=$(nm -g --defined-only "$a" | awk 'NF == 3 && $2 ~ /^[TDBRVW]$/ {print $3}' | sort)
if [[ "$stat" != "$want" ]]; then
	echo "lib_symbols: $a defines a different set than $map:" >&2
	diff <(printf '%s\n' "$want") <(printf '%s\n' "$stat") | sed 's/^/  /' >&2 || true
	fail=1
fi
((fail == 0)) && echo "lib_symbols: $(printf '%s\n' "$want" | wc -l) names, version $node, SONAME $soname"
exit $fail
