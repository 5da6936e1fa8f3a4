"""Media: images and audio uploaded by users, typed by their bytes, stored behind ``Storage``."""

__all__: list[str] = []
