#!/usr/bin/env python
"""``python cli.py ...`` is the ``geocell`` console script run from a checkout: the parser and the
commands live in :mod:`geocell_engine.cli`."""

import sys

from geocell_engine.cli import main

if __name__ == "__main__":
    sys.exit(main())
