"""Amazon SQS through ``sqs://`` URLs, against moto in server mode."""

from __future__ import annotations

from typing import Any

import txqbroker
from tests.harnesses import Harness
from tests.servers import free_port
from tests.sqs.motoserver import ACCESS_KEY, REGION, SECRET_KEY, shared_moto


class SQSHarness(Harness):
    name = "sqs"

    def __init__(self, request: Any) -> None:
        super().__init__(request)
        self.server = shared_moto(request.config)
        self.server.reset()

    async def connect(self, **options: Any) -> Any:
        options.setdefault("aws_access_key_id", ACCESS_KEY)
        options.setdefault("aws_secret_access_key", SECRET_KEY)
        return await txqbroker.connect(self.server.url(), **options)

    async def unreachable(self) -> Any:
        url = f"sqs://?region={REGION}&endpoint=http://127.0.0.1:{free_port()}"
        return await txqbroker.connect(
            url,
            name="nowhere",
            lazy="true",
            connect_timeout=1,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
        )


def make_harness(request: Any) -> Harness:
    return SQSHarness(request)
