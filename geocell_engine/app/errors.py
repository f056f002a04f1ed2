"""Errors of the game: :class:`GameError` (setup: a data set too small, a bad database path; the
CLI prints it as one line) and :class:`RequestError` (a bad HTTP request: it carries the 4xx
status and the message the client gets as JSON)."""

from __future__ import annotations

from geocell.errors import GeocellError

__all__ = ["GameError", "GameNotFound", "GameConflict", "RequestError"]


class GameError(GeocellError, ValueError):
    """The game cannot start or report as asked (too few test images, unusable database file)."""


class GameNotFound(GameError):
    """No such game, or no such round in it (the server answers 404)."""


class GameConflict(GameError):
    """A guess out of turn: a round already guessed, not yet shown, or not the current one (409)."""


class RequestError(GeocellError, ValueError):
    """A request the server refuses; ``status`` is the HTTP status (4xx), the message is sent.

    Example:
        >>> RequestError(404, "no game 'x'").status
        404
    """

    def __init__(self, status: int, message: str):
        if not 400 <= status < 500:
            raise ValueError(f"RequestError status {status}; expected a 4xx code")
        super().__init__(message)
        self.status = status
