"""The human baseline game: a GeoGuessr-style page where people and the model guess the same images.

``cli.py play [--data bluemarble-v1|MANIFEST] [--checkpoint CKPT] [--rounds 5] [--port P]`` starts
a local server and prints its address; ``cli.py play --report`` prints and writes the human vs
model table. Each round shows a test image; the player clicks the world map (GeoGuessr:
``5000 exp(-km / 1492.7)`` points), picks up to five countries in order (seed 003's protocol, for
top-1/3/5), or both; the page then shows the true place, the distance, the score and the model's
guess.

Choices:

- **Web framework: the standard library** (:class:`http.server.ThreadingHTTPServer`). The game is
  one page and ten JSON routes for a few local players; a thread per request is plenty, and the
  standard library adds no dependency, starts in milliseconds and imports nothing heavy, so a
  game without ``--checkpoint`` never imports torch. Starlette/FastAPI under uvicorn would bring
  routing and validation helpers but also four or more packages (starlette, anyio, uvicorn, h11,
  pydantic for FastAPI) to install and keep compatible, for routes that fit in one table here.
  What the framework would have given us is done explicitly (:mod:`.server`): fixed route
  patterns matched on the undecoded path, JSON bodies with a size limit and a JSON content type,
  every refusal a 4xx with a message, a strict Content-Security-Policy. ``http.server`` is not
  meant for the open internet: the server binds 127.0.0.1 unless ``--host`` says otherwise.
- **Map: an SVG drawn on the server** from the Natural Earth admin-0 polygons shipped in geocell
  (:mod:`.worldmap`), simplified to 0.08 degrees, in the equirectangular projection (a click
  converts to lat/lon with two subtractions). No tile server, no CDN, no JavaScript library:
  the page's script, style and map all come from this server (the Content-Security-Policy
  ``default-src 'self'`` makes the browser refuse anything else), and it uses the system font.
- **Storage: SQLite** (:mod:`.store`), ``$GEOCELL_CACHE/game/games.sqlite`` by default.
- **Images**: bluemarble-v1 patches (64 x 64 px) are sent as PNG at their own size and enlarged
  by the page; manifest images are sent as JPEG, at most 1024 px. A client never names a file.

Modules: :mod:`.game` (the test split, its images, the model's guesses through
:meth:`Task.predict`), :mod:`.store`, :mod:`.server`, :mod:`.report`, :mod:`.worldmap`,
``static/`` (index.html, app.js, style.css).
"""

from geocell_engine.app.errors import GameConflict, GameError, GameNotFound, RequestError

__all__ = ["GameError", "GameNotFound", "GameConflict", "RequestError"]
