#!/usr/bin/env python3
"""Static checks of the monitoring and compose files, run by scripts/check-monitoring.sh.

    monitoring_check.py names          every metric used by rules/dashboards is listed
    monitoring_check.py scrape SECTION URL...
                                       every listed name of SECTION is in a live scrape
    monitoring_check.py compose        the compose stack (schema, pins, Grafana JSON, URLs,
                                       broker settings against the native cluster's)

Each check prints one line per problem and exits 1 if there was any.
"""

import json
import pathlib
import re
import subprocess
import sys
import urllib.request

import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent
NAMES_FILE = ROOT / "infra/prometheus/exported-metrics.txt"
RULES_FILE = ROOT / "infra/prometheus/alerts.yml"
COMPOSE_DIR = ROOT / "infra/compose"
DASHBOARDS = COMPOSE_DIR / "grafana/dashboards"
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")

# PromQL words that look like identifiers but are not metric names.
PROMQL_WORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless",
    "bool", "offset", "inf", "nan", "le", "sum", "min", "max", "avg", "count", "stddev",
    "stdvar", "topk", "bottomk", "quantile", "count_values", "group",
}

problems = []


def problem(msg):
    problems.append(msg)
    print(f"monitoring check: {msg}", file=sys.stderr)


def listed_names():
    """{section: set(names)} from exported-metrics.txt."""
    sections, current = {}, None
    for line in NAMES_FILE.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        m = re.fullmatch(r"\[(\w+)\]", line)
        if m:
            current = sections.setdefault(m.group(1), set())
        elif current is None:
            problem(f"{NAMES_FILE.name}: name '{line}' before any [section]")
        else:
            current.add(line)
    return sections


def metric_names_in(expr):
    """The metric names an expression reads: identifiers that are not functions (followed
    by '('), not label names (inside {...} or by/without/on/ignoring (...)), not keywords,
    not strings or durations."""
    e = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # strings (label values, legends)
    e = re.sub(r"\{[^}]*\}", "", e)  # label matchers
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", e)
    e = re.sub(r"\[[^\]]*\]", "", e)  # range selectors / subqueries
    e = re.sub(r"\$\w+|\$\{[^}]*\}", "", e)  # Grafana variables
    names = set()
    for m in re.finditer(r"(?<![\w.])([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(\()?", e):
        word, call = m.group(1), m.group(2)
        if call or word.lower() in PROMQL_WORDS:
            continue
        names.add(word)
    return names


def base_name(name, listed):
    if name in listed:
        return name
    for suffix in HISTOGRAM_SUFFIXES:
        if name.endswith(suffix) and name[: -len(suffix)] in listed:
            return name[: -len(suffix)]
    return None


def rule_exprs():
    doc = yaml.safe_load(RULES_FILE.read_text())
    for group in doc["groups"]:
        for rule in group["rules"]:
            yield f"{RULES_FILE.relative_to(ROOT)} {rule.get('alert') or rule.get('record')}", rule["expr"]


def dashboard_exprs():
    for path in sorted(DASHBOARDS.glob("*.json")):
        try:
            doc = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            problem(f"{path.relative_to(ROOT)}: not valid JSON: {e}")
            continue
        panels = list(doc.get("panels", []))
        while panels:
            p = panels.pop()
            panels.extend(p.get("panels", []))
            for t in p.get("targets", []):
                if "expr" in t:
                    yield f"{path.relative_to(ROOT)} panel '{p.get('title')}'", t["expr"]


def check_names():
    sections = listed_names()
    listed = set().union(*sections.values())
    used = 0
    for where, expr in list(rule_exprs()) + list(dashboard_exprs()):
        for name in metric_names_in(expr):
            used += 1
            if base_name(name, listed) is None:
                problem(f"{where}: metric '{name}' is not in {NAMES_FILE.relative_to(ROOT)}")
    if not problems:
        print(f"monitoring check: {used} metric uses in rules and dashboards, all in the exported list")


def scrape_names(url):
    with urllib.request.urlopen(url, timeout=10) as r:
        text = r.read().decode()
    names = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            names.add(line.split()[2])
        elif line and not line.startswith("#"):
            names.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    return names


def check_scrape(section, urls):
    wanted = listed_names().get(section, set()) - {"up"}  # `up` is Prometheus' own
    seen = set()
    for url in urls:
        seen |= scrape_names(url)
    for name in sorted(wanted):
        if not ({name, name + "_total"} | {name + s for s in HISTOGRAM_SUFFIXES}) & seen:
            problem(f"[{section}] '{name}' is listed but not exported by {', '.join(urls)}")
    if not problems:
        print(f"monitoring check: all {len(wanted)} [{section}] names exported by {', '.join(urls)}")


if __name__ == "__main__":
    cmd = sys.argv[1] if len(sys.argv) > 1 else ""
    if cmd == "names":
        check_names()
    elif cmd == "scrape" and len(sys.argv) > 3:
        check_scrape(sys.argv[2], sys.argv[3:])
    elif cmd == "compose":
        sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
        import compose_check  # noqa: E402  (beside this file)

        compose_check.run(problem)
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.exit(1 if problems else 0)
