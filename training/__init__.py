"""Data layer of the geocell toolkit: readers for users' data sets, data hygiene, splits,
a pre-resize cache and the bundled real-imagery data set ``bluemarble-v1``.

Import the submodules you need (``training.readers``, ``training.hygiene``,
``training.splits``, ``training.resize``, ``training.render``, ``training.bluemarble``); this
package imports nothing heavy (no torch, no PIL, no geopandas) at import time.
"""
