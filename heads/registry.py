"""Heads by name: a registry and a factory, after timm's ``register_model`` / ``create_model``.

Example:
    >>> from heads import create_head, list_heads
    >>> "country" in list_heads()
    True
    >>> head = create_head("country", 64, countries=("FRA", "DEU"))
    >>> head.num_classes
    2

A new head registers itself with the decorator::

    @register_head("elevation")
    class ElevationHead(Head):
        ...
"""

from __future__ import annotations

from typing import Any, Callable, ClassVar, TypeVar

from torch import nn

from geocell.errors import GeocellError

__all__ = ["Head", "UnknownHeadError", "register_head", "create_head", "list_heads", "get_head_class"]


class UnknownHeadError(GeocellError, KeyError):
    """A head name that is not registered."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class Head(nn.Module):
    """Base class of the heads: ``forward(features (B, F)) -> a frozen output dataclass``.

    Attributes:
        name: the registry name (set by :func:`register_head`).
        in_features: F, the backbone feature width.
    """

    name: ClassVar[str] = ""

    def __init__(self, in_features: int) -> None:
        super().__init__()
        if not isinstance(in_features, int) or in_features <= 0:
            raise ValueError(f"in_features must be a positive int, got {in_features!r}")
        self.in_features = in_features


_REGISTRY: dict[str, type[Head]] = {}
H = TypeVar("H", bound=type[Head])


def register_head(name: str) -> Callable[[H], H]:
    """Class decorator: make a :class:`Head` subclass available to :func:`create_head` as ``name``.

    Raises:
        ValueError: the name is taken by another class, or the class is not a Head.
    """

    def decorator(cls: H) -> H:
        if not (isinstance(cls, type) and issubclass(cls, Head)):
            raise ValueError(f"register_head({name!r}) expects a Head subclass, got {cls!r}")
        existing = _REGISTRY.get(name)
        if existing is not None and existing.__qualname__ != cls.__qualname__:
            raise ValueError(f"head name {name!r} is already registered by {existing.__qualname__}")
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return decorator


def list_heads() -> tuple[str, ...]:
    """Registered head names, sorted."""
    return tuple(sorted(_REGISTRY))


def get_head_class(name: str) -> type[Head]:
    """The class registered as ``name``.

    Raises:
        UnknownHeadError: naming the available heads.
    """
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownHeadError(f"unknown head {name!r}; registered heads: {list(list_heads())}") from None


def create_head(name: str, in_features: int, **kwargs: Any) -> Head:
    """Build the head registered as ``name`` for backbone features of width ``in_features``."""
    return get_head_class(name)(in_features, **kwargs)
