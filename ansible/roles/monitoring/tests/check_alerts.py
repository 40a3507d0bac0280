#!/usr/bin/env python3
"""Check the rendered alert rules against the promtool unit tests.

Usage: check_alerts.py RULES_FILE TEST_FILE...

promtool checks that each test passes, but not that every alert has a
test. This script fails when an alert lacks a `for` window, a severity of
critical or warning, a summary or a runbook, or when the tests lack a case
where it fires or a case where it stays quiet. It prints one line per
problem and, when there is none, the number of alert test cases.
"""

import sys

import yaml

SEVERITIES = {"critical", "warning"}


def load_alerts(path):
    """Return the alerting rules of a rule file, in file order."""
    with open(path, encoding="utf-8") as f:
        groups = yaml.safe_load(f)["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def check_rule(rule):
    """Return the problems of one alerting rule."""
    name = rule["alert"]
    problems = []
    if not rule.get("for"):
        problems.append(f"{name}: no `for` window")
    severity = rule.get("labels", {}).get("severity")
    if severity not in SEVERITIES:
        problems.append(f"{name}: severity {severity!r}, want one of {sorted(SEVERITIES)}")
    annotations = rule.get("annotations", {})
    for key in ("summary", "runbook"):
        if not annotations.get(key, "").strip():
            problems.append(f"{name}: no {key} annotation")
    return problems


def load_cases(paths):
    """Return every alert_rule_test case of the test files."""
    cases = []
    for path in paths:
        with open(path, encoding="utf-8") as f:
            for test in yaml.safe_load(f)["tests"]:
                cases.extend(test.get("alert_rule_test", []))
    return cases


def main(argv):
    if len(argv) < 3:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2

    alerts = load_alerts(argv[1])
    cases = load_cases(argv[2:])
    names = {rule["alert"] for rule in alerts}
    problems = [problem for rule in alerts for problem in check_rule(rule)]

    for name in sorted(names):
        own = [case for case in cases if case["alertname"] == name]
        if not any(case.get("exp_alerts") for case in own):
            problems.append(f"{name}: no test case where it fires")
        if not any(not case.get("exp_alerts") for case in own):
            problems.append(f"{name}: no test case where it stays quiet")
    for case in cases:
        if case["alertname"] not in names:
            problems.append(f"test case for {case['alertname']}, which is not an alert in {argv[1]}")

    for problem in problems:
        print(f"check_alerts: {problem}", file=sys.stderr)
    if problems:
        return 1
    firing = sum(1 for case in cases if case.get("exp_alerts"))
    print(f"check_alerts: {len(names)} alerts, each with a firing and a quiet case; "
          f"{len(cases)} alert test cases ({firing} firing, {len(cases) - firing} quiet)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
