#!/usr/bin/env python3
"""Check that the diagrams in docs/diagrams/ show what the inventories deploy.

Each .dot file names its inventories in comment lines:

    // inventory: ansible/inventories/vagrant/ha.yml
    // optional-inventory: ansible/inventories/vagrant/ha-scale.yml

For every host of an "inventory" file, the label text "NAME PRIVATE_IP" must
appear in the diagram, and every VIP of the inventory's group_vars too. An
"optional-inventory" (extra hosts, or a diagram of a part only) is used for
the checks below but need not be drawn whole. Every
IPv4 address in the diagram must belong to a host or a VIP of the listed
inventories, or be the network address of their private networks. Every
port written as ":PORT" or "@PORT", every port range and every VRRP router
id must be one that the roles' defaults or the inventory set, and each
"dcN ... gmcast.segment M" must match galera_segment_by_datacenter.

Usage: scripts/check-diagrams.py [FILE.dot...]   (default: docs/diagrams/*.dot)
Exits 1 and lists every mismatch.
"""

import glob
import ipaddress
import os
import re
import sys

try:
    import yaml
except ImportError:
    sys.exit("check-diagrams: python3-yaml is missing; install it with: apt-get install python3-yaml")

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_yaml(path):
    with open(os.path.join(TOP, path), encoding="utf-8") as f:
        return yaml.safe_load(f) or {}


def inventory_hosts(group, hosts, groups):
    """Collect NAME -> merged host variables, and the group names, from an
    inventory group tree."""
    if not isinstance(group, dict):
        return hosts
    for name, variables in (group.get("hosts") or {}).items():
        hosts.setdefault(name, {}).update(variables or {})
    for child_name, child in (group.get("children") or {}).items():
        groups.add(child_name)
        inventory_hosts(child, hosts, groups)
    return hosts


def group_vars(inventory_path, groups):
    """Return GROUP -> variables of the group_vars/GROUP.yml files next to an
    inventory, for its own groups only: Vagrant's ha.yml and poc.yml share
    one group_vars folder."""
    folder = os.path.join(os.path.dirname(inventory_path), "group_vars")
    result = {}
    for path in sorted(glob.glob(os.path.join(TOP, folder, "*.yml"))):
        group = os.path.basename(path)[:-4]
        if group == "all" or group in groups:
            result[group] = load_yaml(os.path.relpath(path, TOP))
    return result


def role_defaults():
    merged = {}
    for path in sorted(glob.glob(os.path.join(TOP, "ansible/roles/*/defaults/main.yml"))):
        merged.update(load_yaml(os.path.relpath(path, TOP)))
    return merged


def known_ports(defaults, hosts):
    """Ports that the roles' defaults and the hosts' api_ports set."""
    ports = set()
    for key, value in defaults.items():
        if key.endswith(("_port", "_port_first", "_port_last")) and isinstance(value, int):
            ports.add(value)
        elif key.endswith("_ports") and isinstance(value, list):
            ports.update(v for v in value if isinstance(v, int))
    for variables in hosts.values():
        ports.update(variables.get("api_ports") or [])
    return ports


def port_ranges(defaults):
    ranges = {f"{defaults['autoscaler_port_first']}-{defaults['autoscaler_port_last']}"}
    ranges.update(v for v in defaults.get("common_firewall_api_pool_ports", []) if isinstance(v, str))
    return ranges


def check(dot_path, defaults):
    text = open(dot_path, encoding="utf-8").read()
    required = re.findall(r"^//\s*inventory:\s*(\S+)", text, re.M)
    optional = re.findall(r"^//\s*optional-inventory:\s*(\S+)", text, re.M)
    name = os.path.relpath(dot_path, TOP)
    if not required + optional:
        return [f"{name}: no '// inventory: PATH' comment names the inventory it draws"]
    body = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("//"))

    errors = []
    hosts, all_hosts, vars_by_file = {}, {}, {}
    for path in required + optional:
        groups = set()
        inventory = inventory_hosts(load_yaml(path).get("all", {}), {}, groups)
        all_hosts.update(inventory)
        if path in required:
            hosts.update(inventory)
        vars_by_file.update(group_vars(path, groups))

    vips = {v["keepalived_vip"] for v in vars_by_file.values() if v and "keepalived_vip" in v}
    networks = set()
    for variables in vars_by_file.values():
        for cidr in (variables or {}).get("common_private_networks", []):
            networks.add(str(ipaddress.ip_network(cidr).network_address))

    for host, variables in sorted(hosts.items()):
        label = f"{host} {variables.get('private_ip')}"
        if label not in body:
            errors.append(f"{name}: host {host} of the inventory is missing: no label with '{label}'")
    for vip in sorted(vips):
        if vip not in body:
            errors.append(f"{name}: the VIP {vip} of the inventory is missing")

    addresses = {v.get("private_ip") for v in all_hosts.values()} | {v.get("ansible_host") for v in all_hosts.values()}
    for address in sorted(set(re.findall(r"\b\d{1,3}(?:\.\d{1,3}){3}\b", body))):
        if address not in addresses | vips | networks:
            errors.append(f"{name}: address {address} belongs to no host, VIP or network of the inventory")

    ports = known_ports(defaults, all_hosts)
    for port in sorted({int(p) for p in re.findall(r"[:@](\d{2,5})\b", body)}):
        if port not in ports:
            errors.append(f"{name}: port {port} is not set by any role default or api_ports")
    ranges = port_ranges(defaults)
    for found in sorted(set(re.findall(r"\b\d{4,5}-\d{4,5}\b", body))):
        if found not in ranges:
            errors.append(f"{name}: port range {found} is not the autoscaler's pool ({', '.join(sorted(ranges))})")

    router_ids = {defaults["keepalived_virtual_router_id"]}
    router_ids.update(v["keepalived_virtual_router_id"] for v in vars_by_file.values()
                      if v and "keepalived_virtual_router_id" in v)
    for router_id in sorted({int(r) for r in re.findall(r"router id (\d+)", body)}):
        if router_id not in router_ids:
            errors.append(f"{name}: VRRP router id {router_id} is not keepalived_virtual_router_id")

    segments = dict(defaults.get("galera_segment_by_datacenter", {}))
    for variables in vars_by_file.values():
        segments.update((variables or {}).get("galera_segment_by_datacenter", {}))
    for datacenter, segment in re.findall(r"\b(dc\d+)\b[^\"\n]*?gmcast\.segment (\d+)", body):
        if segments.get(datacenter) != int(segment):
            errors.append(f"{name}: {datacenter} is drawn in gmcast.segment {segment}, "
                          f"the inventory sets {segments.get(datacenter)}")
    return errors


def main(argv):
    paths = argv or sorted(glob.glob(os.path.join(TOP, "docs/diagrams/*.dot")))
    defaults = role_defaults()
    errors = []
    for path in paths:
        errors.extend(check(os.path.abspath(path), defaults))
    for error in errors:
        print(f"check-diagrams: {error}", file=sys.stderr)
    if errors:
        return 1
    print(f"check-diagrams: {len(paths)} diagrams match their inventories")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
