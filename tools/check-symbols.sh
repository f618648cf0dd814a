#!/bin/sh
# Symbol hygiene of a built or installed convkit.
#
#   tools/check-symbols.sh <libconvkit.so> [<libconvkit.a>] [<convkit.h>]
#
# 1. The shared library exports exactly the functions convkit.h declares with CK_API: nothing
#    else (internal ck_* helpers are hidden by -fvisibility=hidden), and nothing declared is
#    missing (a declared function that is not exported fails to link for every user).
# 2. Every global symbol the static archive defines starts with ck_: a static link puts the
#    internal symbols into the user's namespace, so they must not collide with theirs.
# 3. The SONAME is libconvkit.so.<SOVERSION>, matching the header's version macros
#    (MAJOR.MINOR while MAJOR is 0, MAJOR afterwards; see CMakeLists.txt).
# Lists what it finds; exit status 1 on any violation.
set -eu
so=${1:?usage: check-symbols.sh <libconvkit.so> [<libconvkit.a>] [<convkit.h>]}
ar=${2:-}
here=$(cd "$(dirname "$0")" && pwd)
header=${3:-$here/../include/convkit.h}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0

# The public API: every "CK_API <type> name(" declaration (declarations may span lines).
grep -v '^[[:space:]]*#' "$header" | tr '\n' ' ' | grep -oE 'CK_API[^;{(]*\(' | sed -E 's/\($//; s/.*[^A-Za-z0-9_]//' |
  sort -u >"$tmp/api"
# Symbols the linker defines in every shared object on some toolchains: not convkit's.
printf '%s\n' _init _fini __bss_start _edata _end __end__ >"$tmp/linker"
nm -D --defined-only "$so" | awk 'NF >= 3 { print $3 }' | sed 's/@.*//' | sort -u |
  grep -vxF -f "$tmp/linker" >"$tmp/exported" || true

echo "== $(wc -l <"$tmp/exported") symbols exported by $so:"
sed 's/^/   /' "$tmp/exported"
comm -13 "$tmp/api" "$tmp/exported" >"$tmp/extra"
comm -23 "$tmp/api" "$tmp/exported" >"$tmp/missing"
if [ -s "$tmp/extra" ]; then
  echo "FAIL: exported but not public API of $(basename "$header"):"
  sed 's/^/   /' "$tmp/extra"
  fail=1
fi
if [ -s "$tmp/missing" ]; then
  echo "FAIL: declared CK_API in $(basename "$header") but not exported:"
  sed 's/^/   /' "$tmp/missing"
  fail=1
fi
[ "$fail" -eq 0 ] && echo "ok: the exports are exactly the $(wc -l <"$tmp/api") CK_API functions"

if [ -n "$ar" ]; then
  nm -g --defined-only "$ar" 2>/dev/null | awk 'NF >= 3 { print $3 }' | sort -u >"$tmp/static"
  grep -v '^ck_' "$tmp/static" >"$tmp/static_bad" || true
  if [ -s "$tmp/static_bad" ]; then
    echo "FAIL: global symbols of $ar outside the ck_ namespace:"
    sed 's/^/   /' "$tmp/static_bad"
    fail=1
  else
    echo "ok: all $(wc -l <"$tmp/static") global symbols of $(basename "$ar") start with ck_"
  fi
fi

major=$(sed -n 's/^#define CONVKIT_VERSION_MAJOR \([0-9]*\).*/\1/p' "$header")
minor=$(sed -n 's/^#define CONVKIT_VERSION_MINOR \([0-9]*\).*/\1/p' "$header")
if [ "$major" = 0 ]; then want="libconvkit.so.$major.$minor"; else want="libconvkit.so.$major"; fi
soname=$(readelf -d "$so" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
if [ "$soname" = "$want" ]; then
  echo "ok: SONAME $soname"
else
  echo "FAIL: SONAME is '$soname', expected $want"
  fail=1
fi
exit "$fail"
