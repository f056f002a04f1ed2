"""Data sets as the engine reads them: readers, hygiene, splits, images, bluemarble."""
