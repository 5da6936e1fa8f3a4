"""Scenes: the ordered parts of a project, each with a title and a narration script."""

__all__: list[str] = []
