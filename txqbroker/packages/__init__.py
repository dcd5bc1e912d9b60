"""
Task packages: what travels inside the opaque bytes a broker moves.

A task is a mapping with the keys ``id`` (str), ``func`` (the registered
function name), ``args`` (list), ``kwargs`` (dict), ``enqueued`` (epoch
seconds), ``attempt`` (int, from 1) and optional ``meta`` (dict).  A codec
(:class:`txqbroker.interfaces.ICodec`) turns it into bytes and back.
"""

from txqbroker.packages.json_codec import JSONCodec

__all__ = ["JSONCodec"]
