"""
``txqbroker schedules list|add|remove`` against an SQLite file and a Redis
server, and its errors.
"""

from __future__ import annotations

import json
from typing import Any

from tests.consumer.processes import run
from tests.harnesses import unique_name


def cli(url: str, queue: str, *args: str) -> list[str]:
    return ["python", "-m", "txqbroker", "-b", url, "-q", queue, "schedules", *args]


async def test_add_list_remove_on_sqlite(tmp_path: Any) -> None:
    url, cwd = "sqlite:///q.db", str(tmp_path)
    added = await run(cli(url, "jobs", "add", "nightly", "app.report", '"daily"', "3", "--cron", "0 3 * * *",
                          "--kwargs", '{"full": true}', "--missed", "skip"), cwd=cwd)
    assert added.status == 0, added.output
    assert "schedule nightly: cron 0 3 * * *, next run " in added.output and "T03:00:00Z" in added.output
    once = await run(cli(url, "jobs", "add", "soon", "app.once", "--at", "2030-01-02T03:04:05"), cwd=cwd)
    assert once.status == 0, once.output
    listed = await run(cli(url, "jobs", "list", "--json"), cwd=cwd)
    records = {r["name"]: r for r in map(json.loads, listed.out.decode().splitlines())}
    assert records["nightly"]["args"] == ["daily", 3] and records["nightly"]["kwargs"] == {"full": True}
    assert records["nightly"]["missed"] == "skip" and records["nightly"]["last_run"] is None
    assert records["soon"]["next_run"] == 1893553445.0
    table = await run(cli(url, "jobs", "list"), cwd=cwd)
    assert "nightly" in table.output and "2030-01-02T03:04:05Z" in table.output
    # another queue's schedules are its own
    other = await run(cli(url, "other", "list"), cwd=cwd)
    assert other.out.decode().strip() == "no schedules on other"
    removed = await run(cli(url, "jobs", "remove", "nightly"), cwd=cwd)
    assert removed.status == 0 and "removed schedule nightly" in removed.output
    again = await run(cli(url, "jobs", "remove", "nightly"), cwd=cwd)
    assert again.status == 1 and "no schedule named 'nightly' on jobs" in again.err.decode()


async def test_errors_are_clear(tmp_path: Any, redis_server: Any) -> None:
    cwd, queue = str(tmp_path), unique_name("sched")
    bad_cron = await run(cli(redis_server.url, queue, "add", "x", "app.x", "--cron", "61 * * * *"), cwd=cwd)
    assert bad_cron.status == 1 and "not a valid cron expression" in bad_cron.err.decode()
    assert "Traceback" not in bad_cron.output
    neither = await run(cli(redis_server.url, queue, "add", "x", "app.x"), cwd=cwd)
    assert neither.status == 2 and "one of the arguments --every --cron --at is required" in neither.err.decode()
    # on Redis: added, listed, removed
    added = await run(cli(redis_server.url, queue, "add", "tick", "app.tick", "--every", "30"), cwd=cwd)
    assert added.status == 0, added.output
    listed = await run(cli(redis_server.url, queue, "list"), cwd=cwd)
    assert "tick" in listed.output and "every 30s" in listed.output
    removed = await run(cli(redis_server.url, queue, "remove", "tick"), cwd=cwd)
    assert removed.status == 0, removed.output


def test_twistd_options_need_a_store_for_declared_schedules() -> None:
    import pytest
    from twisted.python.usage import UsageError

    from txqbroker.tap import Options

    base = ["--tasks=tests.schedules.every_tasks", "--backend=disque://127.0.0.1:7711"]
    with pytest.raises(UsageError, match=r"tasks declare schedules \(every.tick\) but the disque broker cannot hold them"):
        Options().parseOptions(base)
    for extra in (["--no-scheduler"], ["--stats=redis://127.0.0.1:1/0"]):
        options = Options()
        options.parseOptions([*base, *extra])
        assert [s.name for s in options["schedules"]] == ["every.tick"]
    assert options["schedule_store"].scheme == "redis"
    with pytest.raises(UsageError, match=r"workers \(or 'auto'\) must be an integer, not 'many'"):
        Options().parseOptions([*base, "--no-scheduler", "--workers=many"])
    auto = Options()
    auto.parseOptions([*base, "--no-scheduler", "--workers=auto"])
    assert auto["workers"] >= 1


def test_make_service_runs_a_scheduler_beside_the_consumer_when_there_is_a_store() -> None:
    from twisted.application.service import IServiceCollection

    from txqbroker.consumer import ConsumerService
    from txqbroker.schedules.service import SchedulerService
    from txqbroker.tap import Options, makeService

    def made(*args: str) -> list[Any]:
        options = Options()
        options.parseOptions(["--tasks=tests.schedules.every_tasks", *args])
        service = makeService(options)
        return list(IServiceCollection(service)) if not isinstance(service, ConsumerService) else [service]

    consumer, scheduler = made("--backend=memory://")
    assert isinstance(consumer, ConsumerService) and isinstance(scheduler, SchedulerService)
    assert [s.name for s in scheduler.declared] == ["every.tick"]
    [alone] = made("--backend=memory://", "--no-scheduler")
    assert isinstance(alone, ConsumerService)
    # schedules in memory come from code only: nothing to schedule without
    options = Options()
    options.parseOptions(["--tasks=tests.consumer.sample_tasks", "--backend=memory://"])
    assert isinstance(makeService(options), ConsumerService)
    # a broker that stores nothing schedules on the --stats store
    _, on_stats = made("--backend=disque://127.0.0.1:7711", "--stats=memory://")
    assert isinstance(on_stats, SchedulerService)
