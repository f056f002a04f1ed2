"""The engine of the geocell toolkit, split by concern; nothing heavy is imported here.

- :mod:`geocell_engine.data`: readers of users' data sets, data hygiene, splits, image decoding,
  the pre-resize cache and the bundled real-imagery data set ``bluemarble-v1``.
- :mod:`geocell_engine.engine`: the training configuration, the task classes, ``fit``,
  checkpoints, and the train / evaluate / predict entry points.
- :mod:`geocell_engine.evaluation`: predictions, scoring and reports, plots and baselines.
- :mod:`geocell_engine.cli`: the ``geocell`` command line (``python cli.py`` in a checkout).
- :mod:`geocell_engine.errors`: every exception class of the package.

The name: ``training``, the former name, is a top-level module name many projects use and would
collide in site-packages; ``geocell_engine`` cannot, and says which toolkit it belongs to.
"""
