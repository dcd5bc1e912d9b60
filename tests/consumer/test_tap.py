"""
``twistd qbroker`` options, parsed in-process, and signed packages through
the consumer.
"""

from __future__ import annotations

from typing import Any

import pytest
from twisted.internet import task
from twisted.internet.defer import fail, succeed
from twisted.python import usage

from tests.consumer.support import Rig
from txqbroker.consumer import ConsumerService
from txqbroker.errors import BrokerUnavailable
from txqbroker.memory import MemoryBroker
from txqbroker.packages import JSONCodec, SignedCodec, make_codec, new_task
from txqbroker.tap import SECRET_ENV, Options, makeService, read_secrets
from txqbroker.tasks import TaskRegistry, registry as global_registry


def parse(*args: str) -> Options:
    options = Options()
    options.parseOptions(["--tasks=tests.consumer.sample_tasks", *args])
    return options


def test_defaults() -> None:
    options = parse()
    assert options["broker"].scheme == "sqlite" and options["broker"].path == "txqbroker.sqlite3"
    config = options["config"]
    assert (config.concurrency, config.prefetch, config.max_attempts) == (10, 10, 3)
    assert isinstance(options["codec_instance"], JSONCodec)
    assert config.log_tasks is False and parse("--log-tasks")["config"].log_tasks is True


def test_backend_names_urls_and_settings() -> None:
    options = parse("--backend=redis", "--queue=jobs", "-o", "wait=3", "--bulk=5", "--retry=90")
    broker = options["broker"]
    assert (broker.scheme, broker.host, broker.port(0), broker.path) == ("redis", "127.0.0.1", 6379, "0")
    assert (broker.name, broker.wait, broker.bulk, broker.retry) == ("jobs", 3.0, 5, 90.0)
    assert parse("--backend=memory://", "--name=x")["broker"].name == "x"
    assert parse("--concurrency=2", "--bulk=4")["config"].prefetch == 4


def test_bulk_defaults_to_the_concurrency_up_to_ten_unless_the_url_or_an_option_says() -> None:
    assert parse("--backend=redis")["broker"].bulk == 10
    assert parse("--backend=redis")["config"].prefetch == 10
    assert parse("--backend=redis", "--concurrency=3")["broker"].bulk == 3
    assert parse("--backend=redis", "--concurrency=3")["config"].prefetch == 3
    assert parse("--backend=redis", "--concurrency=100")["broker"].bulk == 10
    assert parse("--backend=redis", "--concurrency=100")["config"].prefetch == 100
    assert parse("--backend=redis://127.0.0.1:6379/0?bulk=1")["broker"].bulk == 1
    assert parse("--backend=redis", "-o", "bulk=2")["broker"].bulk == 2
    assert parse("--backend=redis", "--bulk=1")["broker"].bulk == 1
    assert parse("--log-tasks")["config"].log_tasks and not parse()["config"].log_tasks


def test_secret_from_environment_is_used_and_not_shown(monkeypatch: Any) -> None:
    monkeypatch.setenv(SECRET_ENV, "new-secret old-secret")
    options = parse("--queue=jobs")
    assert options["secrets"] == ["new-secret", "old-secret"]
    assert isinstance(options["codec_instance"], SignedCodec)
    assert "new-secret" not in repr(options["broker"])


def test_secret_file(tmp_path: Any) -> None:
    path = tmp_path / "secrets"
    path.write_text("one\n\ntwo\n")
    assert read_secrets([], str(path), environ={}) == ["one", "two"]
    assert read_secrets(["cli"], str(path), environ={}) == ["cli"]
    missing = str(tmp_path / "missing")
    with pytest.raises(usage.UsageError) as info:
        parse(f"--secret-file={missing}")
    # the message names the file and why
    assert f"cannot read the secret file {missing!r}: No such file or directory" in str(info.value)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--max-attempts=0"], "max-attempts must be at least 1"),
        (["--timeout=-1"], "timeout must be > 0 seconds"),
        (["--drain-timeout=x"], "drain-timeout must be a number of seconds"),
        (["-o", "novalue"], "--option takes KEY=VALUE"),
        (["--backend=redis://h:0"], "bad port"),
        (["--stats=nosuch://"], "no broker provider for scheme 'nosuch'"),
        (["--results=disque://h"], "no result store for scheme 'disque'"),
    ],
)
def test_invalid_options_name_the_problem(args: list[str], message: str) -> None:
    with pytest.raises(usage.UsageError, match=message):
        parse(*args)


def test_tasks_are_required() -> None:
    with pytest.raises(usage.UsageError, match="--tasks"):
        Options().parseOptions([])


def test_only_tasks_defined_in_the_tasks_modules_run() -> None:
    options = Options()
    options.parseOptions(["--tasks=tests.consumer.importing_tasks"])
    allowed = options["registry"]
    assert allowed.names() == ["importing.own"]
    # registered in the process, but by a module that --tasks did not name
    assert "demo.add" in global_registry and "demo.add" not in allowed
    with pytest.raises(usage.UsageError, match="no task is registered in tests.waiting"):
        Options().parseOptions(["--tasks=tests.waiting"])


def test_make_service() -> None:
    service = makeService(parse("--backend=memory://", "--queue=jobs"))
    assert isinstance(service, ConsumerService)
    assert service.queue == "jobs" and "sample.record" in service.registry


def test_make_service_with_a_result_store() -> None:
    from twisted.application.service import IServiceCollection

    parent = makeService(parse("--backend=memory://", "--results=memory://"))
    [results, consumer] = list(IServiceCollection(parent))
    assert isinstance(consumer, ConsumerService)
    # the consumer is stopped (and saves its last outcomes) before the store
    assert consumer._result_store is results


def test_signed_packages_verified_and_bad_ones_dead_lettered() -> None:
    clock = task.Clock()
    ran: list[int] = []
    registry = TaskRegistry()
    registry.register(ran.append, name="note")
    rig = Rig(clock, registry)
    rig.service.codec = make_codec("json", ["s3cret"], "jobs")
    good = make_codec("json", ["s3cret"], "jobs").encode(new_task("note", [1], enqueued=0.0))
    forged = make_codec("json", ["other"], "jobs").encode(new_task("note", [2], enqueued=0.0))
    unsigned = JSONCodec().encode(new_task("note", [3], enqueued=0.0))
    rig.enqueue(good, forged, unsigned)
    rig.service.startService()
    rig.turn(0)
    assert ran == [1]
    assert rig.dead() == [forged, unsigned]
    assert rig.size() == 0 and rig.unacked() == 0
    rig.service.stopService()
    rig.turn(1)


def test_broker_unreachable_at_start_is_retried() -> None:
    clock = task.Clock()
    attempts: list[float] = []
    registry = TaskRegistry()

    def connect(name: str) -> Any:
        attempts.append(clock.seconds())
        if len(attempts) <= 3:
            return fail(BrokerUnavailable("refused"))
        return succeed(MemoryBroker(name=name, clock=clock))

    service = ConsumerService(connect, "jobs", registry, JSONCodec(), reactor=clock)
    service.startService()
    clock.advance(0)
    assert service.stats.state == "broker-down" and service.running
    for _ in range(40):
        clock.advance(0.1)
    assert [round(t, 6) for t in attempts[:4]] == [0.0, 0.5, 1.5, 3.5]
    assert service.stats.state == "running"
    d = service.stopService()
    clock.advance(1)
    assert d.called


def test_stats_on_a_separate_store() -> None:
    from txqbroker.consumer import stats_pattern
    from txqbroker.memory import MemoryStore

    clock = task.Clock()
    stats = MemoryBroker(name="stats", clock=clock, store=MemoryStore())
    service = ConsumerService(
        lambda name: succeed(MemoryBroker(name=name, clock=clock)),
        "jobs", TaskRegistry(), JSONCodec(), reactor=clock,
        connect_stats=lambda: succeed(stats),
    )
    service.startService()
    clock.advance(0)
    [record] = stats.get_stats(stats_pattern("jobs")).result
    assert b'"state":"running"' in record
    d = service.stopService()
    clock.advance(1)
    assert d.called and not stats.ping().result  # disconnected with the service


def test_salt_separate_from_the_queue_name(monkeypatch: Any) -> None:
    """
    Django Q signs with its ``name`` setting but may queue on another
    cluster's name (``ALT_CLUSTERS``): ``--salt`` gives the salt apart from
    ``--queue``, which stays the default salt.
    """
    from txqbroker.packages import BadSignature, DjangoQCodec

    package = DjangoQCodec(["k3y"], "default", max_size=1 << 20).encode(
        new_task("sample.record", [1], enqueued=0.0)
    )
    common = ("--backend=memory://", "--queue=long", "--codec=djangoq", "--secret=k3y")
    salted = parse(*common, "--salt=default")
    assert salted["codec_instance"].decode(package)["args"] == [1]
    service = makeService(salted)
    assert isinstance(service, ConsumerService)
    # the codec the consumer makes once the broker has resolved the queue
    assert service._make_codec is not None
    assert service._make_codec("long").decode(package)["args"] == [1]
    unsalted = makeService(parse(*common))
    assert isinstance(unsalted, ConsumerService) and unsalted._make_codec is not None
    with pytest.raises(BadSignature, match="salt 'long'"):
        unsalted._make_codec("long").decode(package)
    with pytest.raises(usage.UsageError, match="--salt must not be empty"):
        parse(*common, "--salt=")
    monkeypatch.delenv(SECRET_ENV, raising=False)
    with pytest.raises(usage.UsageError, match="--salt signs packages: give a secret"):
        parse("--salt=default")
