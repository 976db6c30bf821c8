#!/usr/bin/env bash
# The docs check run by `make test`. Fails when
#  - a page exists in docs/en but not in docs/zh (or the other way round),
#  - a page does not end with its "Run it:" (en) / "运行：" (zh) section,
#  - a doc page or the README names a `make` target the Makefile lacks,
#  - a doc page or the README names a repository path that does not exist.
set -euo pipefail
cd "$(dirname "$0")/.."
fail=0
err() { echo "docs check: $*" >&2; fail=1; }

for lang in en zh; do
  other=$([ "$lang" = en ] && echo zh || echo en)
  for page in docs/"$lang"/*.md; do
    [ -e "$page" ] || continue
    base=$(basename "$page")
    [ -f "docs/$other/$base" ] || err "$page has no docs/$other/$base"
  done
done
for page in docs/en/*.md; do grep -q '^Run it:' "$page" || err "$page has no 'Run it:' section"; done
for page in docs/zh/*.md; do grep -q '^运行：' "$page" || err "$page has no '运行：' section"; done

targets=$(grep -oE '^[a-zA-Z_-]+:' Makefile | tr -d ':' | sort -u)
files=(README.md docs/*/*.md)
while read -r target; do
  grep -qx "$target" <<<"$targets" || err "'make $target' is named in the docs but the Makefile has no such target"
done < <(grep -ohE '`make [a-z][a-z_-]*' "${files[@]}" | awk '{print $2}' | sort -u)

while read -r path; do
  path=${path%%[:#]*}
  [ -e "$path" ] || err "path '$path' is named in the docs but does not exist"
done < <(grep -ohE '`(services|shared|infra|load-tests|docs|scripts|tests|\.ci)/[A-Za-z0-9_./*-]*`' "${files[@]}" | tr -d '`' | grep -v '\*' | sort -u)

[ "$fail" -eq 0 ] && echo "docs check: $(ls docs/en/*.md | wc -l) pages in en and zh, make targets and paths all exist"
exit "$fail"
