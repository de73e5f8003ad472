"""The versions of a library an adapter of its private internals was written against.

An adapter that subclasses or reaches into a library's private code (Dramatiq's
RabbitMQ consumer, aiormq's channel) is right only for the releases it was read
against: a different major or minor version refuses to import, naming what to re-read,
instead of misbehaving in the fast path.
"""

from __future__ import annotations

from importlib.metadata import version


class UnsupportedLibraryVersion(RuntimeError):
    """An adapter of private internals met a library version it was not written for."""


def major_minor(text: str) -> tuple[int, int]:
    """(major, minor) of a version string such as ``2.2.1`` or ``7.2.4.post1``."""
    parts = text.split(".")
    try:
        return int(parts[0]), int(parts[1])
    except (IndexError, ValueError):
        raise UnsupportedLibraryVersion(f"cannot read a major.minor version in {text!r}") from None


def require_version(
    distribution: str,
    written_against: tuple[int, int],
    adapter: str,
    *,
    installed: str | None = None,
) -> None:
    """Refuse to run ``adapter`` unless ``distribution`` is at ``written_against``
    (major, minor); ``installed`` defaults to the installed version."""
    found = installed if installed is not None else version(distribution)
    if major_minor(found) != written_against:
        wanted = ".".join(map(str, written_against))
        raise UnsupportedLibraryVersion(
            f"{adapter} uses private internals of {distribution} {wanted}.x, and "
            f"{distribution} {found} is installed: re-read what {adapter} names in "
            f"{distribution}'s source, adapt it, then update its pinned version"
        )
