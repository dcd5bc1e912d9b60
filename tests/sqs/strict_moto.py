"""
moto's server with Amazon SQS's documented message limits enforced.

moto is lenient where AWS is not: it accepts an empty ``MessageBody``,
characters outside the XML set AWS allows, and counts the size in characters
without the message attributes.  A provider tested on plain moto can then
send what AWS refuses.  Run as ``python -m tests.sqs.strict_moto`` (the
arguments of ``python -m moto.server``): every ``SendMessage`` and
``SendMessageBatch`` entry is checked as AWS documents it (``SendMessage``
API reference):

* the body is at least one character;
* it holds only ``#x9 | #xA | #xD | #x20-#xD7FF | #xE000-#xFFFD |
  #x10000-#x10FFFF`` (else ``InvalidMessageContents``);
* the body's UTF-8 bytes plus each attribute's name, type and value are at
  most the queue's ``MaximumMessageSize``.
"""

from __future__ import annotations

import re
from typing import Any

#: the characters AWS accepts in a message body
NOT_ALLOWED = re.compile("[^\x09\x0a\x0d\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def message_size(body: str, attributes: dict[str, Any] | None) -> int:
    """A message's size as SQS counts it: body and attributes, in bytes."""
    size = len(body.encode("utf-8", "surrogatepass"))
    for name, attribute in (attributes or {}).items():
        size += len(name.encode("utf-8"))
        size += len(str(attribute.get("DataType") or attribute.get("data_type") or "").encode("utf-8"))
        for key in ("StringValue", "string_value"):
            if attribute.get(key) is not None:
                size += len(str(attribute[key]).encode("utf-8", "surrogatepass"))
        for key in ("BinaryValue", "binary_value"):
            if attribute.get(key) is not None:
                size += len(attribute[key])
    return size


def check(body: str, attributes: dict[str, Any] | None, maximum: int) -> None:
    """
    :raise moto's SQS errors: as AWS would for this message.
    """
    from moto.sqs.exceptions import InvalidParameterValue, SQSException

    if not body:
        raise InvalidParameterValue(
            "One or more parameters are invalid. Reason: Message must be at least one character."
        )
    bad = NOT_ALLOWED.search(body)
    if bad:
        raise SQSException(
            "InvalidMessageContents",
            f"Invalid characters found. Deleted message: {bad.group()!r} is not allowed",
        )
    size = message_size(body, attributes)
    if size > maximum:
        raise InvalidParameterValue(
            f"One or more parameters are invalid. Reason: Message must be shorter than {maximum} bytes."
        )


def install() -> None:
    """Wrap moto's ``SQSBackend.send_message`` with :func:`check`."""
    from moto.sqs.models import SQSBackend

    original = SQSBackend.send_message

    def send_message(self: Any, queue_name: str, message_body: str, *args: Any, **kwargs: Any) -> Any:
        queue = self.get_queue(queue_name)
        attributes = kwargs.get("message_attributes", args[0] if args else None)
        check(message_body, attributes, int(queue.maximum_message_size))
        return original(self, queue_name, message_body, *args, **kwargs)

    SQSBackend.send_message = send_message  # type: ignore[method-assign]


if __name__ == "__main__":
    from moto.server import main

    install()
    main()
