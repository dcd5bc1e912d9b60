"""
txqbroker's benchmark suite: ``python -m benchmarks`` (see README.rst).

Speed is measured here, never by timed tests.  This package imports only the
standard library at the top, so that peers running in virtualenvs of their
own (pydisque needs ``redis<4``) can use :mod:`benchmarks.measure`.
"""
