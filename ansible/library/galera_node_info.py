#!/usr/bin/python3
# -*- coding: utf-8 -*-
"""Ansible module: read the Galera state of the local MariaDB node."""

from __future__ import annotations

import os
import re
import shutil
import socket

from ansible.module_utils.basic import AnsibleModule

DOCUMENTATION = r"""
---
module: galera_node_info
short_description: Read the Galera state of the local MariaDB node
description:
  - Reads the wsrep status variables through the server's Unix socket (as
    root, with Debian's unix_socket login) and the saved state in
    grastate.dat, so playbooks can decide whether to bootstrap, join or wait.
  - With I(recover=true) and the server stopped, runs
    C(mariadbd --wsrep-recover) to find the last committed position in
    InnoDB, which is more precise than grastate.dat after a crash.
  - Changes nothing on the node; recovery only reads the data files.
options:
  socket:
    description: Path of the server's Unix socket.
    type: path
    default: /run/mysqld/mysqld.sock
  datadir:
    description: MariaDB data directory, where grastate.dat lives.
    type: path
    default: /var/lib/mysql
  connect_timeout:
    description: Seconds to wait for the server before it counts as not running.
    type: int
    default: 5
  recover:
    description: Run C(mariadbd --wsrep-recover) when the server is stopped.
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: Wait until the node is Synced
  galera_node_info:
  register: node
  until: node.synced
  retries: 60
  delay: 5
"""

RETURN = r"""
installed:
  description: Whether the mariadb client and mariadbd exist on the node.
  type: bool
running:
  description: Whether the server responded to the status query.
  type: bool
local_state:
  description: wsrep_local_state (1 Joining, 2 Donor/Desynced, 3 Joined, 4 Synced), 0 when unknown.
  type: int
local_state_comment:
  description: wsrep_local_state_comment, for example Synced.
  type: str
cluster_status:
  description: wsrep_cluster_status (Primary, non-Primary, Disconnected), empty when unknown.
  type: str
cluster_size:
  description: wsrep_cluster_size, 0 when unknown.
  type: int
cluster_state_uuid:
  description: wsrep_cluster_state_uuid of the running node, empty when unknown.
  type: str
ready:
  description: Whether wsrep_ready is ON.
  type: bool
synced:
  description: True when the node is Synced, ready and in the Primary component.
  type: bool
primary:
  description: True when the node runs in the Primary component, in any local state.
  type: bool
grastate:
  description: Content of grastate.dat (exists, uuid, seqno, safe_to_bootstrap).
  type: dict
has_cluster_state:
  description: True when grastate.dat names a cluster, i.e. the node was a member before.
  type: bool
recovered_uuid:
  description: Cluster UUID found by --wsrep-recover, empty unless recover ran.
  type: str
recovered_seqno:
  description: Last committed seqno found by --wsrep-recover, -1 unless recover ran.
  type: int
"""

# A cluster UUID of all zeros means "no cluster" in grastate.dat.
ZERO_UUID = "00000000-0000-0000-0000-000000000000"
SYNCED = 4  # wsrep_local_state value of a Synced node (Galera documentation)
RECOVERED_RE = re.compile(r"WSREP: Recovered position:\s*([0-9a-f-]{36}):(-?\d+)")


def read_grastate(datadir):
    """Parse grastate.dat; missing values keep Galera's 'unknown' defaults."""
    state = {"exists": False, "uuid": ZERO_UUID, "seqno": -1, "safe_to_bootstrap": 0}
    path = os.path.join(datadir, "grastate.dat")
    try:
        with open(path, encoding="utf-8") as handle:
            lines = handle.readlines()
    except FileNotFoundError:
        return state
    state["exists"] = True
    for line in lines:
        key, sep, value = line.partition(":")
        if not sep:
            continue
        key, value = key.strip(), value.strip()
        if key == "uuid":
            state["uuid"] = value
        elif key in ("seqno", "safe_to_bootstrap"):
            try:
                state[key] = int(value)
            except ValueError:
                pass
    return state


def socket_accepts(path, timeout):
    """Tell whether something listens on the Unix socket, without logging in."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(path)
        return True
    except OSError:
        return False
    finally:
        sock.close()


def query_status(module, client, sock, timeout):
    """Return the wsrep status variables as a dict, or None when the server does not respond."""
    cmd = [
        client, "--protocol=socket", "--socket=" + sock,
        "--connect-timeout=%d" % timeout, "--batch", "--skip-column-names",
        "--execute=SHOW GLOBAL STATUS LIKE 'wsrep%'",
    ]
    rc, out, _err = module.run_command(cmd)
    if rc != 0:
        return None
    values = {}
    for line in out.splitlines():
        name, _sep, value = line.partition("\t")
        values[name.strip().lower()] = value.strip()
    return values


def recover_position(module, server):
    """Run mariadbd --wsrep-recover and return (uuid, seqno) or fail."""
    cmd = [server, "--user=mysql", "--wsrep-recover", "--disable-log-error"]
    rc, out, err = module.run_command(cmd)
    match = RECOVERED_RE.search(err) or RECOVERED_RE.search(out)
    if rc != 0 or not match:
        module.fail_json(
            msg="mariadbd --wsrep-recover found no position; see its output in stderr "
                "and the MariaDB error log",
            rc=rc, stdout=out, stderr=err)
    return match.group(1), int(match.group(2))


def to_int(value, default=0):
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def main():
    module = AnsibleModule(
        argument_spec={
            "socket": {"type": "path", "default": "/run/mysqld/mysqld.sock"},
            "datadir": {"type": "path", "default": "/var/lib/mysql"},
            "connect_timeout": {"type": "int", "default": 5},
            "recover": {"type": "bool", "default": False},
        },
        supports_check_mode=True,
    )
    params = module.params
    client = shutil.which("mariadb") or shutil.which("mysql")
    server = shutil.which("mariadbd", path="/usr/sbin:/usr/bin") or shutil.which("mysqld", path="/usr/sbin:/usr/bin")

    result = {
        "changed": False,
        "installed": bool(client and server),
        "running": False,
        "local_state": 0,
        "local_state_comment": "",
        "cluster_status": "",
        "cluster_size": 0,
        "cluster_state_uuid": "",
        "ready": False,
        "synced": False,
        "primary": False,
        "grastate": read_grastate(params["datadir"]),
        "recovered_uuid": "",
        "recovered_seqno": -1,
    }
    result["has_cluster_state"] = result["grastate"]["uuid"] not in ("", ZERO_UUID)

    if client and socket_accepts(params["socket"], params["connect_timeout"]):
        values = query_status(module, client, params["socket"], params["connect_timeout"])
        if values is not None:
            result["running"] = True
            result["local_state"] = to_int(values.get("wsrep_local_state"))
            result["local_state_comment"] = values.get("wsrep_local_state_comment", "")
            result["cluster_status"] = values.get("wsrep_cluster_status", "")
            result["cluster_size"] = to_int(values.get("wsrep_cluster_size"))
            result["cluster_state_uuid"] = values.get("wsrep_cluster_state_uuid", "")
            result["ready"] = values.get("wsrep_ready", "").upper() == "ON"
            result["primary"] = result["cluster_status"] == "Primary"
            result["synced"] = (result["primary"] and result["ready"]
                                and result["local_state"] == SYNCED)

    if params["recover"] and server and not module.check_mode:
        if result["running"] or socket_accepts(params["socket"], 1):
            module.fail_json(msg="refusing --wsrep-recover: the server is running; stop it first",
                             **result)
        result["recovered_uuid"], result["recovered_seqno"] = recover_position(module, server)

    module.exit_json(**result)


if __name__ == "__main__":
    main()
