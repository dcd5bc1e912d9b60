"""
The ``qbroker`` subcommand of ``twistd`` and ``twist``.

Lazy on purpose: :class:`~twisted.application.service.ServiceMaker` imports
``txqbroker.tap`` only when the subcommand is used, after twistd has
installed the reactor the user chose (``twistd --reactor=asyncio qbroker``).
Import nothing else here.
"""

from twisted.application.service import ServiceMaker

qbroker = ServiceMaker(
    "txqbroker consumer",
    "txqbroker.tap",
    "Run a txqbroker queue consumer.",
    "qbroker",
)
