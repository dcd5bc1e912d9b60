"""
The status page in a real headless browser (Debian's ``chromium``;
``scripts/run-tests`` installs it): it renders, on a phone-sized window,
with the consumers listed.
"""

from __future__ import annotations

import shutil
from typing import Any

import pytest

from tests.consumer.processes import run
from tests.harnesses import unique_name
from tests.ops.support import consumer, records
from tests.ops.test_http import registry, serve
from tests.waiting import until

BROWSER = next(
    (path for path in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if path), None
)

pytestmark = pytest.mark.skipif(BROWSER is None, reason="no chromium here (scripts/run-tests installs it)")


def browser(profile: Any, *args: str) -> list[str]:
    assert BROWSER is not None
    return [
        BROWSER, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        "--no-first-run", "--hide-scrollbars", f"--user-data-dir={profile}", *args,
    ]


@pytest.mark.deadline(90)
async def test_the_status_page_lists_the_consumers(redis_server: Any, tmp_path: Any) -> None:
    queue = unique_name("page")
    service, top, base = serve(redis_server.url, queue)
    other = consumer(redis_server.url, queue, registry())
    top.startService()
    other.startService()
    try:
        await until(
            lambda: _count(records(service.broker, queue), 2) if service.broker else None,
            timeout=20,
            what="both consumers publishing",
        )
        dom = await run(browser(tmp_path / "profile", "--dump-dom", base + "/"), timeout=60)
        page = dom.out.decode()
        assert dom.status == 0 and "</html>" in page, dom.output[-2000:]
        for service_ in (service, other):
            assert f'id="consumer-{service_.stats.consumer_id}"' in page
        assert "<title>txqbroker " + service.queue in page and "ready" in page
        assert page.count('class="state-running"') >= 2

        shot = tmp_path / "phone.png"
        taken = await run(
            browser(tmp_path / "profile", "--window-size=412,900", f"--screenshot={shot}", base + "/"), timeout=60
        )
        assert taken.status == 0, taken.output[-2000:]
        data = shot.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    finally:
        await other.stopService()
        await top.stopService()


async def _count(d: Any, wanted: int) -> bool:
    return len(await d) == wanted
