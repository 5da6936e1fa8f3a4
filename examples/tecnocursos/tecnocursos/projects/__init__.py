"""Projects: course videos, owned by an instructor, private or public."""

__all__: list[str] = []
