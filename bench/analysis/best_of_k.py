#!/usr/bin/env python3
"""Issue 20: what best-of-k selection rules would have chosen, from a caro-accuracy results
file written with `--levers candidates=K[@T]` (each item's `offered` candidates, scored).

Only for the split that tunes the rules (dev): a rule chosen here is then judged once, for
real, on the test split. k < K is simulated from the first k candidates the model offered
(those the command check dropped are not counted, so it is slightly optimistic). The replay
approximates caro's grouping: it groups by the harness's outcome comparison (exit 0 or not,
output, folder), where caro groups by structure and then by exact status, output and effects,
and it counts a run that hit the harness's time limit as failed, where caro does not.
The last rows replay a length budget for the samples (tried, not shipped; README "A budget
for the samples").

    python3 bench/analysis/best_of_k.py results.jsonl
"""
import json
import math
import sys

RUNS = {"safe", "moderate"}


def wilson(m, n, z=1.96):
    if n == 0:
        return (0.0, 0.0)
    p = m / n
    d = 1 + z * z / n
    c = p + z * z / (2 * n)
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return ((c - h) / d * 100, (c + h) / d * 100)


def key(c):
    # caro runs only safe and moderate candidates; the others agree only with themselves.
    return ("run", c["group"]) if c["risk"] in RUNS else ("text", c["command"])


def choose(offered, tier):
    """The index a rule picks: the heaviest group, ties to the model's order, after `tier`:
    None (plain majority), "succeeded" (groups that ran and exited 0 first) or "not failed"
    (groups that ran and exited non-zero last: caro's rule, core/src/select.rs `choose`)."""
    weight = {}
    for c in offered:
        weight[key(c)] = weight.get(key(c), 0) + 1
    best, best_score = 0, None
    for i, c in enumerate(offered):
        runs = c["risk"] in RUNS
        top = {
            None: True,
            "succeeded": runs and c["succeeded"],
            "not failed": not (runs and not c["succeeded"]),
        }[tier]
        score = (top, weight[key(c)])
        if best_score is None or score > best_score:
            best, best_score = i, score
    return best


# Samples longer than these budgets, in characters of the first answer's `first`, dropped.
BUDGETS = [
    ("the first's length", lambda first: first),
    ("the first's + max(1/4, 5 chars)", lambda first: first + max(first / 4, 5)),
    ("1.5x the first's", lambda first: 1.5 * first),
    ("2x the first's", lambda first: 2 * first),
    ("3x the first's", lambda first: 3 * first),
]


def report(name, items):
    n = len(items)
    kmax = max((len(i.get("offered", [])) for i in items), default=0)
    if n == 0 or kmax == 0:
        print(f"{name}: no executed items with best-of-k candidates (write the file with "
              "`caro-accuracy --levers candidates=K --results FILE`)")
        return
    rows = []
    product = sum(bool(i["exec_match"]) for i in items)
    rows.append(("product's choice (as run)", kmax, product))
    for k in sorted(k for k in {1, 2, 4, kmax} if k <= kmax):
        greedy = oracle = 0
        by_rule = {None: 0, "succeeded": 0, "not failed": 0}
        for i in items:
            offered = i.get("offered", [])[:k]
            if not offered:
                m = bool(i["exec_match"])
                greedy += m
                oracle += m
                for r in by_rule:
                    by_rule[r] += m
                continue
            greedy += offered[0]["exec_match"]
            oracle += any(c["exec_match"] for c in offered)
            for r in by_rule:
                by_rule[r] += offered[choose(offered, r)]["exec_match"]
        if k == 1:
            rows.append(("greedy", 1, greedy))
            continue
        rows.append(("oracle (any candidate right)", k, oracle))
        rows.append(("majority by outcome", k, by_rule[None]))
        rows.append(("majority, exit 0 first", k, by_rule["succeeded"]))
        rows.append(("majority, failures last (caro)", k, by_rule["not failed"]))
    # A length budget (tried, not shipped): the answer waits on the slowest candidate, so
    # samples much longer than the first answer cost the most time. Characters stand in for
    # tokens here.
    for label, budget in BUDGETS:
        m = 0
        for i in items:
            offered = i.get("offered", [])
            if not offered:
                m += bool(i["exec_match"])
                continue
            first = len(offered[0]["command"])
            kept = offered[:1] + [c for c in offered[1:] if len(c["command"]) <= budget(first)]
            m += kept[choose(kept, "not failed")]["exec_match"]
        rows.append((f"failures last, samples over {label} dropped", kmax, m))
    print(f"{name}: n = {n} executed items")
    print("| rule | k | execution match | 95% interval |")
    print("|---|---|---|---|")
    for rule, k, m in rows:
        lo, hi = wilson(m, n)
        print(f"| {rule} | {k} | {m}/{n} = {m / n * 100:.1f}% | {lo:.1f}–{hi:.1f} |")
    print()


def main(path):
    # One table per model, setting and split: a file may hold several (`--levers none
    # --levers candidates=8`, both splits).
    groups = {}
    for line in open(path):
        i = json.loads(line)
        if i["exec_match"] is None:
            continue
        key = (i["model"], i["temperature"], i["levers"], i["split"])
        groups.setdefault(key, []).append(i)
    for (model, t, levers, split), items in groups.items():
        if any(i.get("offered") for i in items):
            report(f"{path} [{model}, t={t}, levers={levers}, {split}]", items)


if __name__ == "__main__":
    main(sys.argv[1])
