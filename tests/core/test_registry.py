"""Choosing a provider by scheme, and third-party registration."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
from twisted.internet.defer import succeed
from zope.interface import implementer

import txqbroker
from txqbroker.errors import ConfigurationError, InvalidURL, UnknownScheme
from txqbroker.interfaces import IBroker, IBrokerProvider
from txqbroker.memory import MemoryBroker
from txqbroker.registry import provider_for, register, schemes


async def test_unknown_scheme_errbacks_with_typed_error() -> None:
    with pytest.raises(UnknownScheme) as e:
        await txqbroker.connect("amqp://localhost/")
    assert "amqp" in str(e.value)


async def test_malformed_url_errbacks_at_once() -> None:
    with pytest.raises(InvalidURL):
        await txqbroker.connect("not a url")


async def test_bad_option_errbacks_at_once() -> None:
    with pytest.raises(ConfigurationError):
        await txqbroker.connect("memory://", bulk=-1)


async def test_third_party_provider_by_registration() -> None:
    made: list[Any] = []

    @implementer(IBrokerProvider)
    class Provider:
        schemes = ("toyq",)

        def connect(self, options: Any, reactor: Any) -> Any:
            broker = MemoryBroker(options=options, clock=reactor)
            made.append(broker)
            return succeed(broker)

    register(Provider())
    assert "toyq" in schemes()
    broker = await txqbroker.connect("toyq://anywhere/", name="q1")
    assert IBroker.providedBy(broker) and broker.name == "q1"
    assert made == [broker]


def test_register_refuses_non_providers() -> None:
    with pytest.raises(ConfigurationError):
        register(object())  # type: ignore[arg-type]


def test_builtin_schemes_are_listed() -> None:
    for scheme in ("redis", "rediss", "unix", "disque", "sqlite", "sqs", "ironmq", "memory"):
        assert scheme in schemes()


def test_memory_provider_provides_the_interface() -> None:
    assert IBrokerProvider.providedBy(provider_for("memory"))


def run_with_distribution(tmp_path: Any, name: str, entry_point: str, code: str) -> str:
    """
    Run ``code`` in a subprocess that sees a fake installed distribution
    ``name`` (in ``tmp_path``) declaring the ``txqbroker.brokers`` entry
    point ``entry_point``; its standard output.
    """
    dist = tmp_path / f"{name}-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(f"[txqbroker.brokers]\n{entry_point}\n")
    script = f"import sys; sys.path.insert(0, {str(tmp_path)!r})\n" + code
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_entry_point_providers_are_found(tmp_path: Any) -> None:
    """A package that declares a ``txqbroker.brokers`` entry point is found
    without touching txqbroker (checked in a subprocess with a fake
    distribution on sys.path)."""
    (tmp_path / "toyprovider.py").write_text(
        "from zope.interface import provider as provides\n"
        "from twisted.internet.defer import succeed\n"
        "from txqbroker.interfaces import IBrokerProvider\n"
        "from txqbroker.memory import MemoryBroker\n"
        "@provides(IBrokerProvider)\n"
        "class provider:\n"
        "    schemes = ('toyep',)\n"
        "    @staticmethod\n"
        "    def connect(options, reactor):\n"
        "        return succeed(MemoryBroker(options=options, clock=reactor))\n"
    )
    out = run_with_distribution(
        tmp_path,
        "toyprovider",
        "toyep = toyprovider:provider",
        "from txqbroker.registry import provider_for, schemes\n"
        "assert 'toyep' in schemes(), schemes()\n"
        "print(provider_for('toyep').schemes)\n",
    )
    assert "toyep" in out


def test_import_installs_no_reactor() -> None:
    code = (
        "import sys, txqbroker, txqbroker.testing\n"
        "bad = [m for m in ('twisted.internet.reactor', 'txredisapi') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr


@pytest.mark.parametrize(
    "url, options, words",
    [
        ("redis://127.0.0.1:1/0", {"bogus": "1"}, "bogus"),
        ("redis://127.0.0.1:1/notadb", {}, "db"),
        ("sqlite:///", {}, "database file"),
        ("sqlite:///q.db", {"poll": "0"}, "poll"),
        ("sqs://bad name!", {"region": "eu-west-1"}, "queue name"),
        ("ironmq://tok@h/p/q", {"port": "abc"}, "port"),
        ("memory://", {}, None),
    ],
)
def test_check_options_without_connecting(url: str, options: dict, words: str | None) -> None:
    from txqbroker.registry import check_options, options_for

    parsed = options_for(url, **options)
    if words is None:
        check_options(parsed)
        return
    with pytest.raises(ConfigurationError) as e:
        check_options(parsed)
    assert words in str(e.value)


async def test_a_provider_that_raises_still_errbacks() -> None:
    @implementer(IBrokerProvider)
    class Broken:
        schemes = ("brokenq",)

        def connect(self, options: Any, reactor: Any) -> Any:
            raise ConfigurationError("no such queue")

    register(Broken())
    d = txqbroker.connect("brokenq://anywhere/")
    with pytest.raises(ConfigurationError, match="no such queue"):
        await d


def test_an_entry_point_that_cannot_load_is_a_typed_error(tmp_path: Any) -> None:
    out = run_with_distribution(
        tmp_path,
        "badprovider",
        "badep = missing_module_xyz:provider",
        "import txqbroker\n"
        "d = txqbroker.connect('badep://host/')\n"
        "d.addErrback(lambda f: print(f.type.__name__, f.getErrorMessage()))\n",
    )
    assert out.startswith("ConfigurationError") and "missing_module_xyz" in out
