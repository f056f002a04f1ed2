"""What a game plays: the test split of a data set, its images as the browser gets them, and the
model's guess for each (through the one prediction path, :meth:`Task.predict`).

:func:`load_game_data` reads the test split with :func:`geocell_engine.data.dataset.load_splits`
(bluemarble-v1 or a manifest) and never imports torch; :class:`ModelGuesser` loads a checkpoint
(torch is imported there) and guesses a batch of samples at the size the model was trained at.

Images reach the browser only through :meth:`GameData.image_bytes` of a sample index the server
chose: a client never names a file, so a path outside the data set cannot be asked for.
"""

from __future__ import annotations

import io
import threading
from dataclasses import dataclass, field
from typing import Optional, Sequence

import numpy as np

from geocell_engine.app.errors import GameError

__all__ = ["GameData", "ModelGuess", "ModelGuesser", "load_game_data", "MAX_IMAGE_SIDE"]

#: Longest side of a manifest image as served to the browser, px (larger files are shrunk).
MAX_IMAGE_SIDE = 1024


@dataclass(frozen=True)
class ModelGuess:
    """The model's answer for one image: a point (degrees) and up to five ``adm0_a3`` codes."""

    lat: float
    lon: float
    countries: tuple[str, ...]


@dataclass(eq=False)
class GameData:
    """The test split of one data set, as a game needs it.

    Attributes:
        name: ``"bluemarble-v1"`` or the manifest file name.
        source: what ``--data`` said (the data set name or the manifest path), stored with each game.
        split: the test :class:`~geocell_engine.data.dataset.GeoSplit` (in-memory patches or paths).
        caption: one line shown under each image (what the image is).
    """

    name: str
    source: str
    split: object
    caption: str
    _cache: dict = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __len__(self) -> int:
        return len(self.split)  # type: ignore[arg-type]

    def draw(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``(n,)`` distinct sample indices for a game of ``n`` rounds."""
        if n > len(self):
            raise GameError(f"{n} rounds asked, but the {self.name} test split has only {len(self)} images; "
                            f"use --rounds {len(self)} or fewer")
        return rng.choice(len(self), size=n, replace=False)

    def image_bytes(self, index: int) -> tuple[bytes, str]:
        """``(encoded image, MIME type)`` of sample ``index``: an in-memory patch as PNG at its own
        size (the page enlarges it), a file as JPEG with its longer side at most
        :data:`MAX_IMAGE_SIDE` and its EXIF orientation applied.

        Raises:
            GameError: the file cannot be read or decoded.
        """
        with self._lock:
            hit = self._cache.get(index)
        if hit is not None:
            return hit
        from PIL import Image

        split = self.split
        if split.images is not None:  # type: ignore[attr-defined]
            buf = io.BytesIO()
            Image.fromarray(np.asarray(split.images[index], dtype=np.uint8)).save(buf, format="PNG")  # type: ignore[attr-defined]
            out = (buf.getvalue(), "image/png")
        else:
            from geocell_engine.data.images import open_rgb

            path = str(split.paths[index])  # type: ignore[attr-defined]
            try:
                img = open_rgb(path)
            except (OSError, ValueError) as exc:
                raise GameError(f"image of test sample {index} cannot be read ({exc})") from exc
            img.thumbnail((MAX_IMAGE_SIDE, MAX_IMAGE_SIDE), Image.Resampling.LANCZOS)
            buf = io.BytesIO()
            img.save(buf, format="JPEG", quality=90)
            out = (buf.getvalue(), "image/jpeg")
        with self._lock:
            if len(self._cache) > 256:
                self._cache.clear()
            self._cache[index] = out
        return out


def load_game_data(data: str, seed: int = 0) -> GameData:
    """The test split of ``data`` (``"bluemarble-v1"`` or a manifest path); no torch import.

    Raises:
        DataError, InputFileError: see :func:`geocell_engine.data.dataset.load_splits`.
    """
    from pathlib import Path

    from geocell_engine.data.dataset import load_splits

    splits, info = load_splits(data, seed=seed)
    test = splits["test"]
    if test.images is not None:
        h, w = test.images.shape[1:3]
        caption = (f"{info.name}: a {w} x {h} px NASA Blue Marble satellite patch, 256 km across, north up, "
                   "shown enlarged")
    else:
        caption = f"{info.name}: a test image"
    source = data if data == "bluemarble-v1" else str(Path(data).resolve())
    return GameData(name=info.name, source=source, split=test, caption=caption)


class ModelGuesser:
    """A checkpoint's guesses for samples of a :class:`GameData`, made once and remembered.

    Loading imports torch and timm (seconds); :meth:`guess` is thread-safe (one batch at a time).

    Args:
        checkpoint: a ``best.pt`` / ``last.pt`` of ``cli.py train``.
        data: the game's data.
        device: torch device.
    """

    def __init__(self, checkpoint: str, data: GameData, device: str = "cpu"):
        from geocell_engine.engine.model import load_model

        self.checkpoint = str(checkpoint)
        self.loaded = load_model(checkpoint, device=device)
        self.data = data
        self.trained_on = str(self.loaded.checkpoint.get("dataset", {}).get("name", ""))
        self._guesses: dict[int, ModelGuess] = {}
        self._lock = threading.Lock()

    def guess(self, indices: Sequence[int]) -> list[ModelGuess]:
        """One :class:`ModelGuess` per sample index, in order."""
        indices = [int(i) for i in indices]
        with self._lock:
            todo = sorted({i for i in indices if i not in self._guesses})
            if todo:
                self._guesses.update(zip(todo, self._predict(np.asarray(todo, dtype=np.int64))))
            return [self._guesses[i] for i in indices]

    def _predict(self, index: np.ndarray) -> list[ModelGuess]:
        import torch

        from geocell.assign import assign_country
        from geocell_engine.data.dataset import iterate_batches

        loaded = self.loaded
        split = self.data.split.take(index)  # type: ignore[attr-defined]
        out: list[Optional[ModelGuess]] = [None] * len(index)
        with torch.no_grad():
            for images, idx in iterate_batches(split, np.arange(len(index)), 32, loaded.config.image_size):
                pred = loaded.task.predict(loaded.model, images.to(loaded.device), k=5)
                lat = pred.lat.double().cpu().numpy()
                lon = pred.lon.double().cpu().numpy()
                if pred.country is not None and pred.country.labels is not None:
                    labels = [tuple(str(c) for c in row) for row in pred.country.labels]
                else:  # a model without a country head: the country of its point
                    labels = [(str(c),) if c else () for c in np.atleast_1d(assign_country(lat, lon))]
                for j, i in enumerate(idx.tolist()):
                    out[i] = ModelGuess(float(lat[j]), float(lon[j]), labels[j][:5])
        return out  # type: ignore[return-value]
