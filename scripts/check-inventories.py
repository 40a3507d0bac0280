#!/usr/bin/env python3
"""Check that the example production inventory has the layout that the
multi-dc topology of the local test hosts runs, so that what the multi-dc
suite proves holds for it.

The two must agree on: the sites and, per site, how many hosts each group
has; the order of the Galera nodes by site (it sets the bootstrap node and
each site's writer); a VIP on every site with load balancers and none
elsewhere, with the same VRRP router ids; galera_segment_by_datacenter;
galera_provider_options (the WAN settings); and galera_max_connections.
Names and addresses differ on purpose.

Usage: scripts/check-inventories.py
Exits 1 and lists every difference.
"""

import glob
import os
import sys

try:
    import yaml
except ImportError:
    sys.exit("check-inventories: python3-yaml is missing; install it with: apt-get install python3-yaml")

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TESTED = "ansible/inventories/vagrant/multi-dc.yml"
EXAMPLE = "ansible/inventories/production-example/hosts.yml"
GROUPS = ("loadbalancers", "api", "galera", "garbd", "monitoring")


def load_yaml(path):
    with open(os.path.join(TOP, path), encoding="utf-8") as f:
        return yaml.safe_load(f) or {}


def walk(group, name, hosts, members):
    """Collect host variables and each group's hosts (in order) of a group
    tree; a group with children only is listed too, without hosts."""
    members.setdefault(name, [])
    if not isinstance(group, dict):
        return
    for host, variables in (group.get("hosts") or {}).items():
        hosts.setdefault(host, {}).update(variables or {})
        members.setdefault(name, []).append(host)
    for child_name, child in (group.get("children") or {}).items():
        walk(child, child_name, hosts, members)


def group_vars(inventory, groups):
    """Merge the group_vars files of the inventory's folder that apply to
    GROUPS (all.yml first), as Ansible would for variables set only once."""
    folder = os.path.join(os.path.dirname(inventory), "group_vars")
    merged, per_group = {}, {}
    for path in sorted(glob.glob(os.path.join(TOP, folder, "*.yml"))):
        group = os.path.basename(path)[:-4]
        if group == "all" or group in groups:
            per_group[group] = load_yaml(os.path.relpath(path, TOP))
    merged.update(per_group.pop("all", {}))
    for variables in per_group.values():
        merged.update(variables)
    return merged, per_group


def layout(inventory):
    """Return the facts that must agree, as a dict of comparable values."""
    hosts, members = {}, {}
    walk(load_yaml(inventory).get("all", {}), "all", hosts, members)
    merged, per_group = group_vars(inventory, set(members))
    sites = sorted({v.get("datacenter") for v in hosts.values()})
    counts = {
        group: {site: sum(1 for h in members.get(group, []) if hosts[h].get("datacenter") == site)
                for site in sites}
        for group in GROUPS
    }
    vips = {}
    for site in sites:
        variables = per_group.get(site, {})
        vips[site] = (bool(variables.get("keepalived_vip")), variables.get("keepalived_virtual_router_id"))
    return {
        "sites": sites,
        "hosts per group and site": counts,
        "Galera nodes by site, in order": [hosts[h].get("datacenter") for h in members.get("galera", [])],
        "VIP and VRRP router id per site": vips,
        "galera_segment_by_datacenter": merged.get("galera_segment_by_datacenter"),
        "galera_provider_options": merged.get("galera_provider_options"),
        "galera_max_connections": merged.get("galera_max_connections"),
    }


def main():
    tested, example = layout(TESTED), layout(EXAMPLE)
    errors = [
        f"{key}: {TESTED} has {tested[key]!r}, {EXAMPLE} has {example[key]!r}"
        for key in tested
        if tested[key] != example[key]
    ]
    for error in errors:
        print(f"check-inventories: {error}", file=sys.stderr)
    if errors:
        return 1
    print(f"check-inventories: {EXAMPLE} has the layout of {TESTED}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
