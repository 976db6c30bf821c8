#!/usr/bin/env bash
# Path-aware code references, run by scripts/check-docs.sh (so by `make test`). A
# reference is `path.rs::function` (or `path.rs::Type::method`), as the protocol model
# names, next to each of its steps, the code that does it
# (tools/protocol-model/src/steps.rs), and as the docs quote it. Fails when
#  - the file does not exist, or
#  - that very file defines no `fn function` (names such as `claim` or `finish` exist in
#    several files: a function that moved to another file fails here), or
#  - a `Type` segment is not a struct, enum, trait or impl in that file.
# Usage: scripts/check-code-refs.sh [files to scan]; by default the model crate's
# sources, docs/*/*.md and README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$#" -eq 0 ]; then
  mapfile -t model_sources < <(find tools/protocol-model/src -name '*.rs' | sort)
  set -- "${model_sources[@]}" docs/*/*.md README.md
fi
python3 - "$@" <<'PY'
import pathlib, re, sys
ref = re.compile(r"((?:services|shared|tools|tests)/[A-Za-z0-9_./-]+\.rs)::([A-Za-z_][A-Za-z0-9_]*(?:::[A-Za-z_][A-Za-z0-9_]*)*)")
bad, seen = 0, set()
for name in sys.argv[1:]:
    text = pathlib.Path(name).read_text(errors="replace")
    for lineno, line in enumerate(text.splitlines(), 1):
        for path, symbol in ref.findall(line):
            if (path, symbol) in seen:
                continue
            seen.add((path, symbol))
            source = pathlib.Path(path)
            if not source.is_file():
                print(f"code refs: {name}:{lineno}: {path}::{symbol}: no file {path}", file=sys.stderr)
                bad = 1
                continue
            code = source.read_text(errors="replace")
            *types, function = symbol.split("::")
            if not re.search(r"\bfn\s+" + re.escape(function) + r"\b", code):
                print(f"code refs: {name}:{lineno}: {path}::{symbol}: {path} has no `fn {function}`", file=sys.stderr)
                bad = 1
            for t in types:
                if not re.search(r"\b(?:struct|enum|trait|type)\s+" + re.escape(t) + r"\b|\bimpl\b[^{;]*\b" + re.escape(t) + r"\b", code):
                    print(f"code refs: {name}:{lineno}: {path}::{symbol}: {path} defines no `{t}`", file=sys.stderr)
                    bad = 1
if not bad:
    print(f"code refs: {len(seen)} `path.rs::function` references, each function in its file")
sys.exit(bad)
PY
