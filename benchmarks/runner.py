"""
The benchmark runner: ``python -m benchmarks [--smoke] [--repeats R] [--count N] [--json PATH]``.

It starts its own ``redis-server`` (and a Disque stand-in, or uses the real
nodes of ``TXQBROKER_DISQUE_NODES``) on free loopback ports, then runs every
measurement of :data:`SPECS` once per repeat, in turns (txqbroker's and its
peers' interleaved), each in a fresh process (:mod:`benchmarks.worker`,
:mod:`benchmarks.e2e`).  It prints one table (medians, min-max, the median
of the per-repeat ratios against the peer measured in the same repeat) and
writes every raw figure as JSON.

``--smoke`` runs every workload once with tiny counts: CI runs it so the
suite cannot rot.  It fails when a measurement fails, never on speed.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from typing import Any, Callable

from benchmarks.procs import ROOT, DisqueNodes, cleanup, start_disque, start_redis

VENV_PYDISQUE = os.path.join(ROOT, "benchmarks", ".venv-pydisque")
_DEFAULT_JSON = os.path.join(ROOT, "benchmarks", "results", "latest.json")


@dataclass(frozen=True)
class Spec:
    """One measurement: a client running a workload (``scale`` x the count)."""

    client: str
    workload: str
    scale: int = 1
    group: str = "redis"


#: every measurement, by name; a repeat runs them in this order
SPECS: dict[str, Spec] = {
    "txq.enqueue_one": Spec("txq", "enqueue_one"),
    "djq.enqueue_one": Spec("djq", "enqueue_one"),
    "redispy.enqueue_one": Spec("redispy", "enqueue_one"),
    "txq.enqueue_100": Spec("txq", "enqueue_100", 5),
    "twmin.enqueue_100": Spec("twmin", "enqueue_100", 5),
    "txq.enqueue_many": Spec("txq", "enqueue_many", 5),
    "redispy.pipeline_100": Spec("redispy", "pipeline_100", 5),
    "txq.dequeue_one": Spec("txq", "dequeue_one"),
    "djq.dequeue_one": Spec("djq", "dequeue_one"),
    "txq.dequeue_bulk": Spec("txq", "dequeue_bulk", 10),
    "redispy.dequeue_bulk": Spec("redispy", "dequeue_bulk", 10),
    "txq.same_process": Spec("txq", "same_process", 5),
    "twmin.same_process": Spec("twmin", "same_process", 5),
    "twistd.e2e": Spec("twistd", "e2e", group="e2e"),
    "twistd-w2.e2e": Spec("twistd-w2", "e2e", group="e2e"),
    "qcluster.e2e": Spec("qcluster", "e2e", group="e2e"),
    "txq-disque.enqueue_one": Spec("txq-disque", "enqueue_one", group="disque"),
    "pydisque.enqueue_one": Spec("pydisque", "enqueue_one", group="disque"),
    "txq-disque.enqueue_100": Spec("txq-disque", "enqueue_100", 2, group="disque"),
    "pydisque.enqueue_100": Spec("pydisque", "enqueue_100", 2, group="disque"),
    "txq-disque.enqueue_many": Spec("txq-disque", "enqueue_many", 2, group="disque"),
}


@dataclass(frozen=True)
class Row:
    """
    A line of the table: txqbroker's figure against a peer's.

    ``figure``: ``rate`` (tasks/s; ratio txq/peer), ``cpu_per_10k``
    (seconds; ratio peer/txq: above 1 when txqbroker uses less), ``rss_mb``
    (likewise), ``p50_ms``/``p99_ms`` (ratio peer/txq).
    """

    label: str
    txq: str
    peer: str
    peer_label: str
    figure: str = "rate"
    target: str = ""


ROWS = [
    Row("enqueue, one at a time", "txq.enqueue_one", "djq.enqueue_one", "Django Q broker", target=">= 1.0x"),
    Row("enqueue, one at a time", "txq.enqueue_one", "redispy.enqueue_one", "redis-py RPUSH"),
    Row("enqueue, 100 concurrent callers", "txq.enqueue_100", "djq.enqueue_one", "Django Q, one at a time", target=">= 15x"),
    Row("enqueue, 100 concurrent callers", "txq.enqueue_100", "twmin.enqueue_100", "minimal Twisted, 100"),
    Row("enqueue_many(100)", "txq.enqueue_many", "redispy.pipeline_100", "redis-py pipeline of 100", target=">= 1.0x"),
    Row("dequeue + ack, one at a time", "txq.dequeue_one", "djq.dequeue_one", "Django Q broker"),
    Row("dequeue + ack_many, bulk 100", "txq.dequeue_bulk", "djq.dequeue_one", "Django Q, one at a time", target=">= 50x"),
    Row("dequeue, bulk 100", "txq.dequeue_bulk", "redispy.dequeue_bulk", "redis-py BLMPOP COUNT 100"),
    Row("enqueue->dequeue, same process", "txq.same_process", "twmin.same_process", "minimal Twisted", target=">= 0.8x"),
    Row("  p50 latency (ms)", "txq.same_process", "twmin.same_process", "minimal Twisted", "p50_ms", "<= 10 ms"),
    Row("end to end, sustained", "twistd.e2e", "qcluster.e2e", "qcluster, 2 workers", target=">= 10x"),
    Row("  p50 latency at 1,000/s (ms)", "twistd.e2e", "qcluster.e2e", "qcluster", "p50_ms", "<= 1 ms"),
    Row("  p99 latency at 1,000/s (ms)", "twistd.e2e", "qcluster.e2e", "qcluster", "p99_ms"),
    Row("  consumer CPU s per 10,000 tasks", "twistd.e2e", "qcluster.e2e", "qcluster", "cpu_per_10k"),
    Row("  consumer peak RSS (MB)", "twistd.e2e", "qcluster.e2e", "qcluster", "rss_mb", "< 80 MB"),
    Row("end to end, --workers 2", "twistd-w2.e2e", "qcluster.e2e", "qcluster, 2 workers"),
    Row("  p50 latency at 1,000/s (ms)", "twistd-w2.e2e", "qcluster.e2e", "qcluster", "p50_ms"),
    Row("  consumer CPU s per 10,000 tasks", "twistd-w2.e2e", "qcluster.e2e", "qcluster", "cpu_per_10k"),
    Row("client CPU s per 10,000 enqueues", "txq.enqueue_one", "djq.enqueue_one", "Django Q broker", "cpu_per_10k"),
    Row("Disque enqueue, one at a time", "txq-disque.enqueue_one", "pydisque.enqueue_one", "pydisque", target=">= 1.0x"),
    Row("Disque enqueue, 100 in flight", "txq-disque.enqueue_100", "pydisque.enqueue_100", "pydisque, 100 threads", target=">= 10x"),
    Row("Disque enqueue_many(100)", "txq-disque.enqueue_many", "pydisque.enqueue_100", "pydisque, 100 threads"),
]

#: figures where less is better
LOWER_IS_BETTER = {"cpu_per_10k", "rss_mb", "p50_ms", "p99_ms"}


def pydisque_python(log: Callable[[str], None]) -> str | None:
    """pydisque's own virtualenv (made on first use); ``None`` when it cannot be made."""
    python = os.path.join(VENV_PYDISQUE, "bin", "python")
    if not os.path.exists(python):
        log("making benchmarks/.venv-pydisque (pydisque needs redis<4)")
        try:
            subprocess.run([sys.executable, "-m", "venv", "--clear", VENV_PYDISQUE], check=True, capture_output=True)
            subprocess.run(
                [python, "-m", "pip", "install", "-q", "pydisque", "redis<4"], check=True, capture_output=True
            )
        except subprocess.CalledProcessError as e:
            log(f"cannot make pydisque's virtualenv: {e.stderr.decode(errors='replace')[-300:]}")
            shutil.rmtree(VENV_PYDISQUE, ignore_errors=True)
            return None
    return python


class Runner:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.results: dict[str, list[dict[str, Any]]] = {name: [] for name in SPECS}
        self.failures: list[str] = []

    def log(self, message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    def worker(self, name: str, spec: Spec, count: int, redis_port: int, disque: DisqueNodes | None) -> dict[str, Any]:
        if spec.client == "pydisque":
            python = self.pydisque
            if python is None or disque is None:
                return {"skipped": "pydisque's virtualenv could not be made"}
            command = [python, os.path.join(ROOT, "benchmarks", "peers", "pydisque_worker.py"), spec.workload]
        else:
            command = [sys.executable, "-m", "benchmarks.worker", spec.client, spec.workload]
        command += ["--count", str(count), "--size", str(self.args.size), "--redis-port", str(redis_port)]
        if disque is not None:
            command += ["--disque", disque.nodes]
        if spec.client == "pydisque":
            command.remove("--redis-port")
            command.remove(str(redis_port))
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
        lines = done.stdout.strip().splitlines()
        if done.returncode != 0 or not lines:
            raise RuntimeError(f"{name} failed ({done.returncode}): {done.stderr[-2000:]}")
        result: dict[str, Any] = json.loads(lines[-1])
        return result

    def measure(self, name: str, spec: Spec, redis_port: int, disque: DisqueNodes | None, project: Any) -> None:
        count = self.args.count * spec.scale
        try:
            if spec.group == "e2e":
                from benchmarks.e2e import measure

                result = measure(project, spec.client, self.args.e2e_count, self.args.rate, self.args.paced_seconds)
            else:
                result = self.worker(name, spec, count, redis_port, disque if spec.group == "disque" else None)
        except Exception as e:
            self.failures.append(f"{name}: {e}")
            self.log(f"  {name}: FAILED {e}")
            return
        self.results[name].append(result)
        shown = result.get("skipped") or f"{result.get('rate', 0):,.0f}/s"
        self.log(f"  {name}: {shown}")

    def run(self) -> None:
        args = self.args
        selected = [n for n in SPECS if not args.only or any(o in n for o in args.only)]
        self.pydisque = pydisque_python(self.log) if any(SPECS[n].client == "pydisque" for n in selected) else None
        redis = start_redis()
        disque = start_disque() if any(SPECS[n].group == "disque" for n in selected) else None
        directory = tempfile.mkdtemp(prefix="txq-bench-")
        try:
            project = None
            if any(SPECS[n].group == "e2e" for n in selected):
                from benchmarks.e2e import Project

                project = Project(directory, redis.port)
            self.redis_version = subprocess.run(
                ["redis-server", "--version"], capture_output=True, text=True
            ).stdout.split()[2]
            self.disque_nodes = disque.nodes if disque else None
            self.disque_real = bool(disque and disque.real)
            for repeat in range(args.repeats):
                self.log(f"repeat {repeat + 1}/{args.repeats}")
                # alternate the order of each pair so neither always goes first
                order = selected if repeat % 2 == 0 else _swap_pairs(selected)
                for name in order:
                    self.measure(name, SPECS[name], redis.port, disque, project)
        finally:
            if disque is not None:
                disque.stop()
            cleanup(redis)
            shutil.rmtree(directory, ignore_errors=True)

    # -- the report ------------------------------------------------------------

    def machine(self) -> dict[str, Any]:
        model = "?"
        try:
            with open("/proc/cpuinfo") as f:
                model = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
        except (OSError, StopIteration):
            pass
        return {
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "cpu": model,
            "cores": os.cpu_count(),
            "load_average": os.getloadavg(),
            "python": platform.python_version(),
            "redis": self.redis_version,
            "disque": ("real nodes " if self.disque_real else "stand-in ") + (self.disque_nodes or ""),
            "platform": platform.platform(),
        }

    def table(self) -> str:
        head = ("workload", "txqbroker", "peer", "peer figure", "ratio", "target")
        lines = [head]
        for row in ROWS:
            mine, theirs = self._figures(row.txq, row.figure), self._figures(row.peer, row.figure)
            if not mine or not theirs:
                missing = "(not run)" if not mine else _describe(mine, row.figure)
                lines.append((row.label, missing, row.peer_label, _describe(theirs, row.figure), "-", row.target))
                continue
            pairs = list(zip(mine, theirs))
            if row.figure in LOWER_IS_BETTER:
                ratios = [p / m if m else float("inf") for m, p in pairs]
            else:
                ratios = [m / p if p else float("inf") for m, p in pairs]
            lines.append(
                (
                    row.label,
                    _describe(mine, row.figure),
                    row.peer_label,
                    _describe(theirs, row.figure),
                    f"{statistics.median(ratios):.2f}x",
                    row.target,
                )
            )
        widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
        out = []
        for i, line in enumerate(lines):
            out.append("  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip())
            if i == 0:
                out.append("  ".join("-" * w for w in widths))
        return "\n".join(out)

    def _figures(self, name: str, figure: str) -> list[float]:
        return [r[figure] for r in self.results.get(name, []) if figure in r]


def _describe(values: list[float], figure: str) -> str:
    if not values:
        return "(none)"
    unit = {"rate": "/s", "cpu_per_10k": " s", "rss_mb": " MB", "p50_ms": " ms", "p99_ms": " ms"}[figure]
    fmt = _human if figure == "rate" else (lambda v: f"{v:.2f}" if v < 100 else f"{v:,.0f}")
    median = fmt(statistics.median(values))
    if len(values) == 1:
        return f"{median}{unit}"
    return f"{median}{unit} ({fmt(min(values))}-{fmt(max(values))})"


def _human(value: float) -> str:
    if value >= 1_000_000:
        return f"{value / 1e6:.2f}M"
    if value >= 10_000:
        return f"{value / 1e3:.0f}k"
    if value >= 1_000:
        return f"{value / 1e3:.1f}k"
    return f"{value:.0f}"


def _swap_pairs(names: list[str]) -> list[str]:
    """The same measurements with each txqbroker one after the peers of its workload."""
    out: list[str] = []
    by_workload: dict[str, list[str]] = {}
    for name in names:
        by_workload.setdefault(SPECS[name].group + SPECS[name].workload.split("_")[0], []).append(name)
    for group in by_workload.values():
        out.extend(reversed(group))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="every workload once, tiny counts (CI)")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved repeats (default 3)")
    parser.add_argument("--count", type=int, default=20000, help="packages per slow workload (fast ones run 2-10x more)")
    parser.add_argument("--e2e-count", type=int, default=20000, help="tasks of the sustained end-to-end run")
    parser.add_argument("--rate", type=float, default=1000.0, help="the paced end-to-end rate, tasks/s")
    parser.add_argument("--paced-seconds", type=float, default=5.0, help="how long the paced run lasts")
    parser.add_argument("--size", type=int, default=200, help="package size, bytes")
    parser.add_argument("--only", action="append", help="only the measurements whose name contains this (repeatable)")
    parser.add_argument("--json", default=_DEFAULT_JSON, help="where the raw figures go")
    parser.add_argument(
        "--soak", type=int, default=0, metavar="N",
        help="instead of the suite: the memory soak, N tasks through twistd qbroker (e.g. 1000000)",
    )
    args = parser.parse_args(argv)
    if args.soak:
        return run_soak(args)
    if args.smoke:
        args.repeats, args.count, args.e2e_count, args.paced_seconds = 1, 300, 300, 0.3
    runner = Runner(args)
    runner.run()
    report = {"machine": runner.machine(), "arguments": vars(args), "results": runner.results, "failures": runner.failures}
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump(report, f, indent=1)
    m = report["machine"]
    print(f"\n{m['date']}; {m['cores']} x {m['cpu']}; load {m['load_average'][0]:.2f}; "
          f"Python {m['python']}; Redis {m['redis']}; Disque {m['disque']}")
    print(f"{args.repeats} interleaved repeats, {args.size}-byte packages; medians (min-max); "
          "ratio: median of per-repeat ratios (above 1: txqbroker ahead)\n")
    print(runner.table())
    print(f"\nraw figures: {args.json}")
    if runner.failures:
        print("\nFAILED:\n  " + "\n  ".join(runner.failures))
        return 1
    return 0


def run_soak(args: argparse.Namespace) -> int:
    """``--soak N``: the consumer's RSS over N tasks (:mod:`benchmarks.soak`)."""
    from benchmarks.e2e import Project
    from benchmarks.soak import soak, table

    redis = start_redis()
    directory = tempfile.mkdtemp(prefix="txq-soak-")
    runner = Runner(args)
    try:
        runner.redis_version = subprocess.run(["redis-server", "--version"], capture_output=True, text=True).stdout.split()[2]
        runner.disque_nodes, runner.disque_real = None, False
        result = soak(Project(directory, redis.port), args.soak, runner.log)
    finally:
        cleanup(redis)
        shutil.rmtree(directory, ignore_errors=True)
    report = {"machine": runner.machine(), "arguments": vars(args), "soak": result}
    path = args.json if args.json != _DEFAULT_JSON else os.path.join(ROOT, "benchmarks", "results", "soak.json")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(report, f, indent=1)
    m = report["machine"]
    print(f"\n{m['date']}; {m['cores']} x {m['cpu']}; load {m['load_average'][0]:.2f}; Python {m['python']}; Redis {m['redis']}")
    print("soak: tasks done, consumer RSS (MB)\n")
    print(table(result))
    print(f"\nraw figures: {path}")
    return 0 if result["flat"] else 1
