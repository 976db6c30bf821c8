#!/usr/bin/env python3
"""The reconciliation that ends every k6 scenario (load-tests/run.sh).

`before` saves the reconcile tool's report (tools/reconcile, REPORT_JSON=1) before the
run. `after` polls the report until the system has settled — every order accepted since
`before` has its payment — or the settle time runs out, then checks, for this run:

  accepted  == orders the k6 clients saw created (no order they do not know of, e.g. a
               retry that created a second one; none missing)
  applied   == accepted   (lost = accepted - applied = 0)
  double-applied: no new order with two payments, and none at all

and prints the counts as a table. Exit status 0 when all hold, 1 otherwise, 2 when the
reconcile tool could not look. Standard library only.
"""
import argparse
import json
import os
import subprocess
import sys
import time

FIELDS = [
    ("accepted", "accepted orders"),
    ("published_unique", "published (unique events)"),
    ("published_duplicate_copies", "published duplicate copies"),
    ("delivered_unique", "delivered (unique, inbox)"),
    ("duplicates_suppressed_by_inbox", "duplicates suppressed by inbox"),
    ("applied", "applied (payments)"),
    ("settled", "settled orders (PAID/FAILED)"),
    ("not_yet_published", "not yet published"),
    ("lost", "lost (accepted, no payment)"),
    ("double_applied", "double-applied"),
]


def log(message):
    print(f"[reconcile] {message}", file=sys.stderr, flush=True)


def report():
    binary = os.environ.get("RECONCILE_BIN", "target/debug/reconcile")
    env = dict(os.environ, REPORT_JSON="1")
    try:
        done = subprocess.run([binary], env=env, capture_output=True, text=True, timeout=300)
    except (OSError, subprocess.TimeoutExpired) as e:
        log(f"could not run {binary}: {e}")
        sys.exit(2)
    # Exit 1 means "lost or double-applied right now" — normal while orders are in
    # flight; the report is still on stdout. Exit 2 means it could not look.
    if done.returncode not in (0, 1):
        log(f"reconcile failed: {done.stderr.strip()}")
        sys.exit(2)
    return json.loads(done.stdout)


def created_by_clients(summary_path):
    try:
        with open(summary_path) as f:
            metrics = json.load(f)["metrics"]
    except (OSError, ValueError, KeyError) as e:
        log(f"no k6 summary at {summary_path}: {e}")
        return None
    return int(metrics.get("orders_created", {}).get("values", {}).get("count", 0))


def delta(before, after, field):
    return after[field] - before[field]


def checks(before, after, expected):
    d = lambda f: delta(before, after, f)  # noqa: E731
    return [
        ("accepted == orders the clients saw created",
         f"{d('accepted')} == {expected}", expected is not None and d("accepted") == expected),
        ("applied == accepted (0 lost)",
         f"{d('applied')} == {d('accepted')}", d("applied") == d("accepted")),
        ("no order applied twice",
         f"new {d('double_applied')}, total {after['double_applied']}",
         d("double_applied") == 0 and after["double_applied"] == 0),
    ]


def settled(before, after, expected):
    accepted = delta(before, after, "accepted")
    return accepted >= (expected or 0) and delta(before, after, "applied") >= accepted


def table(before, after, expected, results):
    rows = [("", "before", "after", "this run")]
    rows += [(label, str(before[f]), str(after[f]), f"{delta(before, after, f):+d}") for f, label in FIELDS]
    rows.append(("orders the k6 clients saw created", "", "", str(expected)))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))) for r in rows]
    rule = "-" * len(lines[0])
    out = [rule, lines[0], rule, *lines[1:], rule]
    for name, detail, ok in results:
        out.append(f"{'ok    ' if ok else 'FAILED'}  {name}  ({detail})")
    out.append(rule)
    return "\n".join(out)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("phase", choices=["before", "after"])
    parser.add_argument("--out", required=True)
    parser.add_argument("--before")
    parser.add_argument("--summary")
    parser.add_argument("--settle", type=float, default=180)
    args = parser.parse_args()

    if args.phase == "before":
        with open(args.out, "w") as f:
            json.dump(report(), f, indent=2)
        return 0

    with open(args.before) as f:
        before = json.load(f)
    expected = created_by_clients(args.summary)
    deadline = time.monotonic() + args.settle
    while True:
        after = report()
        if settled(before, after, expected) or time.monotonic() > deadline:
            break
        log(f"settling: accepted {delta(before, after, 'accepted'):+d}, "
            f"published {delta(before, after, 'published_unique'):+d}, "
            f"applied {delta(before, after, 'applied'):+d} (clients saw {expected} created)")
        time.sleep(2)

    results = checks(before, after, expected)
    ok = all(r[2] for r in results)
    print(table(before, after, expected, results))
    print(f"reconciliation: {'OK — nothing lost, nothing applied twice' if ok else 'FAILED'}")
    with open(args.out, "w") as f:
        json.dump({
            "before": before, "after": after, "orders_created_by_clients": expected,
            "checks": [{"check": n, "detail": d, "ok": o} for n, d, o in results], "ok": ok,
        }, f, indent=2)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
