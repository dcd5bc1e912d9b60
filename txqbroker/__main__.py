"""``python -m txqbroker``: the command line (see :mod:`txqbroker.cli`)."""

from txqbroker.cli import main

if __name__ == "__main__":
    main()
