#!/usr/bin/env bash
# The docs check run by `make test`. Fails when
#  - a page exists in docs/en but not in docs/zh (or the other way round),
#  - an en page and its zh twin differ in structure: headings (levels, in order), code
#    blocks or tables (a section lost or pasted twice in one language shows here),
#  - a page does not end with its "Run it:" (en) / "运行：" (zh) section,
#  - a doc page or the README names a `make` target the Makefile lacks,
#  - a doc page or the README names a repository path that does not exist,
#  - a doc page names a Rust symbol (`Type::method`, `crate::function`) the code lacks,
#  - a ```rust excerpt is not in the file its first line names (`// <path>`): compared
#    line by line, leading whitespace and blank lines ignored, so an excerpt that drifts
#    from the code turns this red,
#  - a `path.rs::function` reference (in the protocol model's sources or the docs) names
#    a function that is not in that very file (scripts/check-code-refs.sh).
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
python3 - <<'PY' || fail=1
import pathlib, re, sys
def shape(path):
    headings, fences, tables, in_code = [], 0, 0, False
    for line in path.read_text().splitlines():
        if line.startswith("```"):
            fences += 1
            in_code = not in_code
        elif not in_code:
            if m := re.match(r"^(#{1,6}) ", line):
                headings.append(len(m.group(1)))
            elif re.match(r"^\|[-| :]+\|$", line):
                tables += 1
    return {"heading levels": headings, "code fences": fences, "tables": tables}
bad = 0
for en in sorted(pathlib.Path("docs/en").glob("*.md")):
    zh = pathlib.Path("docs/zh") / en.name
    if not zh.is_file():
        continue
    a, b = shape(en), shape(zh)
    for what in a:
        if a[what] != b[what]:
            print(f"docs check: {en} and {zh} differ in structure ({what}): {a[what]} vs {b[what]}", file=sys.stderr)
            bad = 1
sys.exit(bad)
PY
for page in docs/en/*.md; do grep -q '^Run it:' "$page" || err "$page has no 'Run it:' section"; done
for page in docs/zh/*.md; do grep -q '^运行：' "$page" || err "$page has no '运行：' section"; done

targets=$(grep -oE '^[a-zA-Z_-]+:' Makefile | tr -d ':' | sort -u)
files=(README.md docs/*/*.md)
while read -r target; do
  grep -qx "$target" <<<"$targets" || err "'make $target' is named in the docs but the Makefile has no such target"
done < <(grep -ohE '`make [a-z][a-z_-]*' "${files[@]}" | awk '{print $2}' | sort -u)

# shellcheck disable=SC2016 # the backticks below are literal: Markdown code spans, not commands
while read -r path; do
  path=${path%%[:#]*}
  # An output folder the runs create (git-ignored, e.g. load-tests/results/) may be named.
  git check-ignore -q "$path" 2>/dev/null && continue
  [ -e "$path" ] || err "path '$path' is named in the docs but does not exist"
done < <(grep -ohE '`(services|shared|tools|infra|load-tests|docs|scripts|tests|\.ci)/[A-Za-z0-9_./*-]*`' "${files[@]}" | tr -d '`' | grep -v '\*' | sort -u)

# Code symbols: `A::b` (or `a::b::c`) in backticks. The first segment must be a type,
# trait, module or crate of the workspace; the last must be defined in the sources (a fn,
# type, const, module) or, for enum variants and associated items, appear in a file
# that defines the first segment.
python3 - "${files[@]}" <<'PY' || fail=1
import pathlib, re, sys
sources = {}
for root in ("services", "shared", "tools", "tests"):
    for f in pathlib.Path(root).rglob("*.rs"):
        if "target" not in f.parts:
            sources[f] = f.read_text(errors="replace")
crates = {p.parent.name.replace("-", "_") for p in pathlib.Path(".").glob("*/*/Cargo.toml")}
crates |= {"rdkafka", "sqlx", "tokio", "axum", "serde", "serde_json", "redis", "std", "utoipa",
           "opentelemetry", "tracing", "tracing_opentelemetry", "metrics", "reqwest", "uuid", "chrono"}
def defines(name):
    pat = re.compile(r"\b(fn|struct|enum|trait|type|const|static|mod)\s+" + re.escape(name) + r"\b")
    return [f for f, text in sources.items() if pat.search(text)]
bad = 0
for page in sys.argv[1:]:
    text = pathlib.Path(page).read_text()
    for sym in sorted(set(re.findall(r"`([A-Za-z_][A-Za-z0-9_]*(?:::[A-Za-z_][A-Za-z0-9_]*)+)(?:\(\))?`", text))):
        first, last = sym.split("::")[0], sym.split("::")[-1]
        if first in crates and first not in {c for c in crates if c[0].isupper()}:
            if first not in {p.parent.name.replace("-", "_") for p in pathlib.Path(".").glob("*/*/Cargo.toml")}:
                continue  # an external crate: not ours to check
            homes = [f for f in sources if f.parts[1].replace("-", "_") == first]
        else:
            homes = defines(first)
        if not homes:
            print(f"docs check: {page} names `{sym}`, but `{first}` is not a type, module or crate of the workspace", file=sys.stderr)
            bad = 1
            continue
        if defines(last) or any(re.search(r"\b" + re.escape(last) + r"\b", sources[f]) for f in homes):
            continue
        print(f"docs check: {page} names `{sym}`, but `{last}` is not in the code", file=sys.stderr)
        bad = 1
sys.exit(bad)
PY

python3 - "${files[@]}" <<'PY' || fail=1
import pathlib, re, sys
bad = 0
for page in sys.argv[1:]:
    text = pathlib.Path(page).read_text()
    for block in re.findall(r"```rust\n(.*?)```", text, re.S):
        lines = [l.strip() for l in block.splitlines() if l.strip()]
        source = lines[0][3:].strip() if lines and lines[0].startswith("// ") else ""
        if not source.endswith(".rs") or not pathlib.Path(source).is_file():
            print(f"docs check: {page}: a rust excerpt must start with `// <path of its .rs file>`: {lines[:1]}", file=sys.stderr)
            bad = 1
            continue
        code = [l.strip() for l in pathlib.Path(source).read_text().splitlines() if l.strip()]
        want = lines[1:]
        if not any(code[i:i + len(want)] == want for i in range(len(code) - len(want) + 1)):
            print(f"docs check: {page}: the excerpt of {source} starting {want[:1]} is not in that file (any more)", file=sys.stderr)
            bad = 1
sys.exit(bad)
PY

bash scripts/check-code-refs.sh || fail=1

en_pages=(docs/en/*.md)
[ "$fail" -eq 0 ] && echo "docs check: ${#en_pages[@]} pages in en and zh, same structure; make targets, paths, symbols and code excerpts all exist"
exit "$fail"
