#!/usr/bin/env python3
"""Check the Grafana dashboard and export its queries for promtool.

Usage: check_dashboard.py DASHBOARD_JSON RULES_OUT

Fails when a panel lacks a title or a description, does not use the
dashboard's data source variable, overlaps the 24-column grid's edge, or
repeats a panel id. Writes every query as a recording rule to RULES_OUT,
so that `promtool check rules RULES_OUT` parses each one as PromQL.
Grafana's $__rate_interval becomes 1m there, since promtool does not know
it.
"""

import json
import sys

import yaml

DATASOURCE_UID = "${datasource}"
GRID_COLUMNS = 24


def check_panel(panel):
    """Return the problems of one panel that is not a row."""
    title = panel.get("title", "")
    where = f"panel {panel.get('id')} ({title or 'no title'})"
    problems = []
    if not title:
        problems.append(f"{where}: no title")
    if not panel.get("description"):
        problems.append(f"{where}: no description")
    if panel.get("datasource", {}).get("uid") != DATASOURCE_UID:
        problems.append(f"{where}: data source is not {DATASOURCE_UID}")
    grid = panel.get("gridPos", {})
    if grid.get("x", 0) + grid.get("w", 0) > GRID_COLUMNS:
        problems.append(f"{where}: wider than the {GRID_COLUMNS}-column grid")
    targets = panel.get("targets", [])
    if not targets:
        problems.append(f"{where}: no query")
    for target in targets:
        if target.get("datasource", {}).get("uid") != DATASOURCE_UID:
            problems.append(f"{where}, query {target.get('refId')}: data source is not {DATASOURCE_UID}")
        if not target.get("expr"):
            problems.append(f"{where}, query {target.get('refId')}: empty expression")
    return problems


def main(argv):
    if len(argv) != 3:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2

    with open(argv[1], encoding="utf-8") as f:
        dashboard = json.load(f)

    panels = dashboard["panels"]
    problems = []
    ids = [panel["id"] for panel in panels]
    if len(ids) != len(set(ids)):
        problems.append(f"panel ids repeat: {sorted(ids)}")
    names = {item["name"] for item in dashboard.get("templating", {}).get("list", [])}
    if "datasource" not in names:
        problems.append("no template variable named datasource")

    rules = []
    for panel in panels:
        if panel["type"] == "row":
            continue
        problems.extend(check_panel(panel))
        for target in panel.get("targets", []):
            expr = target.get("expr", "").replace("$__rate_interval", "1m")
            rules.append({"record": f"dashboard:panel_{panel['id']}_{target['refId']}", "expr": expr})

    for problem in problems:
        print(f"check_dashboard: {problem}", file=sys.stderr)
    if problems:
        return 1

    with open(argv[2], "w", encoding="utf-8") as f:
        yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}, f, sort_keys=False)
    panel_count = sum(1 for panel in panels if panel["type"] != "row")
    print(f"check_dashboard: {panel_count} panels, {len(rules)} queries written to {argv[2]}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
