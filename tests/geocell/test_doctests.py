"""The examples in geocell's docstrings run and give what they show (CI runs no --doctest-modules)."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import geocell

MODULES = sorted(m.name for m in pkgutil.iter_modules(geocell.__path__) if not m.name.startswith("_"))


@pytest.mark.parametrize("name", ["__init__", *MODULES])
def test_docstring_examples(name):
    module = geocell if name == "__init__" else importlib.import_module(f"geocell.{name}")
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {module.__name__}"
