"""
The stand-in's connection and server commands: PING, AUTH, CLIENT, DEBUG,
CLUSTER, HELLO and INFO.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from txqbroker.resp.types import ErrorReply, Status
from txqbroker.testing.disque.replies import OK, SYNTAX, Client

if TYPE_CHECKING:
    from txqbroker.testing.disque.node import DisqueNode

__all__ = ["ping", "auth", "client_name", "debug", "cluster", "hello", "info"]


def ping(node: DisqueNode, client: Client, args: list[bytes]) -> Any:
    """``PING [message]``."""
    if len(args) > 1:
        return ErrorReply("ERR wrong number of arguments for 'ping' command")
    return args[0] if args else Status("PONG")


def auth(node: DisqueNode, client: Client, args: list[bytes]) -> Any:
    """``AUTH password``: the client may send commands after a good one."""
    if node.password is None:
        return ErrorReply("ERR Client sent AUTH, but no password is set")
    if args[0] != node.password.encode("utf-8"):
        client.authenticated = False
        return ErrorReply("ERR invalid password")
    client.authenticated = True
    return OK


def client_name(node: DisqueNode, client: Client, args: list[bytes]) -> Any:
    """``CLIENT SETNAME name`` and ``CLIENT GETNAME``."""
    sub = args[0].lower()
    if sub == b"setname" and len(args) == 2:
        client.name = args[1]
        return OK
    if sub == b"getname" and len(args) == 1:
        return client.name
    return ErrorReply(
        "ERR Syntax error, try CLIENT (LIST | KILL ip:port | GETNAME | SETNAME connection-name)"
    )


def debug(node: DisqueNode, client: Client, args: list[bytes]) -> Any:
    """``DEBUG FLUSHALL``: drop every job and queue."""
    if args[0].lower() == b"flushall":
        node.flush()
        return OK
    return ErrorReply("ERR Syntax error, try DEBUG [FLUSHALL]")


def cluster(node: DisqueNode, client: Client, args: list[bytes]) -> Any:
    """``CLUSTER LEAVING [yes|no]``, and ``CLUSTER MEET`` (accepted, a no-op)."""
    if args[0].lower() == b"leaving":
        if len(args) == 1:
            return Status("yes" if node.leaving else "no")
        if len(args) == 2 and args[1].lower() in (b"yes", b"no"):
            node.leaving = args[1].lower() == b"yes"
            return OK
        return ErrorReply("ERR Wrong argument for CLUSTER LEAVING. Use 'yes' or 'no'")
    if args[0].lower() == b"meet" and len(args) == 3:
        # the nodes of a StandInCluster know each other from the start
        if not args[2].isdigit():
            return ErrorReply(
                f"ERR Invalid TCP port specified: {args[2].decode('utf-8', 'replace')}"
            )
        return OK
    return SYNTAX


def _priority(node: DisqueNode) -> int:
    # no failure detection: a stopped or leaving node is at once "failing"
    return 100 if (not node.running or node.leaving) else 1


def hello(node: DisqueNode, client: Client, args: list[bytes]) -> Any:
    """``HELLO``: version 1, this node's id, and every node with its priority."""
    nodes = node.cluster.nodes if node.cluster is not None else [node]
    ip = "127.0.0.1" if node.cluster is not None else ""
    entries = [[n.node_id, ip, str(n.port), str(_priority(n))] for n in nodes]
    return [1, node.node_id, *entries]


def _info_sections(node: DisqueNode) -> list[tuple[str, list[tuple[str, Any]]]]:
    uptime = int(node.uptime())
    return [
        ("Server", [
            ("disque_version", node.version), ("disque_git_sha1", "00000000"),
            ("disque_git_dirty", 0), ("disque_build_id", "txqbroker-stand-in"),
            ("os", "txqbroker stand-in"), ("arch_bits", 64),
            ("multiplexing_api", "epoll"), ("gcc_version", "0.0.0"),
            ("process_id", os.getpid()), ("run_id", node.node_id),
            ("tcp_port", node.port), ("uptime_in_seconds", uptime),
            ("uptime_in_days", uptime // 86400), ("hz", 10),
            ("executable", "txqbroker.testing.disque"), ("config_file", ""),
        ]),
        ("Clients", [
            ("connected_clients", len(node.clients)), ("client_longest_output_list", 0),
            ("client_biggest_input_buf", 0), ("blocked_clients", node.blocked_clients()),
        ]),
        ("Memory", [
            ("used_memory", 0), ("used_memory_human", "0B"), ("used_memory_rss", 0),
            ("used_memory_peak", 0), ("used_memory_peak_human", "0B"),
            ("mem_fragmentation_ratio", "0.00"), ("mem_allocator", "python"),
        ]),
        ("Jobs", [("registered_jobs", len(node.jobs))]),
        ("Queues", [("registered_queues", len(node.queues))]),
        ("Persistence", [
            ("loading", 0), ("aof_enabled", 0), ("aof_state", "off"),
            ("aof_rewrite_in_progress", 0), ("aof_rewrite_scheduled", 0),
            ("aof_last_rewrite_time_sec", -1), ("aof_current_rewrite_time_sec", -1),
            ("aof_last_bgrewrite_status", "ok"), ("aof_last_write_status", "ok"),
        ]),
        ("Stats", [
            ("total_connections_received", node.connections_received),
            ("total_commands_processed", node.commands_processed),
            ("instantaneous_ops_per_sec", 0), ("total_net_input_bytes", 0),
            ("total_net_output_bytes", 0), ("instantaneous_input_kbps", "0.00"),
            ("instantaneous_output_kbps", "0.00"), ("rejected_connections", 0),
            ("latest_fork_usec", 0),
        ]),
        ("CPU", [
            ("used_cpu_sys", "0.00"), ("used_cpu_user", "0.00"),
            ("used_cpu_sys_children", "0.00"), ("used_cpu_user_children", "0.00"),
        ]),
    ]


def info(node: DisqueNode, client: Client, args: list[bytes]) -> Any:
    """``INFO [section]``: the sections of Disque 1.0-rc1's INFO."""
    if len(args) > 1:
        return SYNTAX
    wanted = args[0].decode("utf-8", "replace").lower() if args else "default"
    texts = []
    for title, fields in _info_sections(node):
        if wanted in ("default", "all", "everything") or wanted == title.lower():
            texts.append(f"# {title}\r\n" + "".join(f"{k}:{v}\r\n" for k, v in fields))
    return "\r\n".join(texts).encode("utf-8")
