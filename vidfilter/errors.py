"""Exceptions users can catch.

Every class derives from :class:`VidfilterError` *and* from the builtin it resembles, so
``except ValueError`` keeps working. The CLI turns any :class:`VidfilterError` into one line on
stderr and exit code 2 (a user mistake); anything else is exit code 1 (our bug).
Messages say what is wrong *and* what to do about it.
"""

from __future__ import annotations


class VidfilterError(Exception):
    """Base class of every error vidfilter raises on purpose."""

    exit_code = 2


class InputNotFoundError(VidfilterError, FileNotFoundError):
    """The input path does not exist."""


class UnreadableInputError(VidfilterError, ValueError):
    """The input exists but cannot be decoded (truncated, corrupt, not an image/video)."""


class UnsupportedInputError(VidfilterError, ValueError):
    """The input is readable but of a kind, dtype or shape vidfilter does not handle."""


class OutputExistsError(VidfilterError, FileExistsError):
    """A finished output is already there and ``overwrite`` was not requested."""


class OutputNotWritableError(VidfilterError, PermissionError):
    """The output location cannot be written (permissions, disk full, inside the input)."""


class OutputLockedError(VidfilterError, RuntimeError):
    """Another vidfilter process is writing the same output."""


class ConfigError(VidfilterError, ValueError):
    """A configuration value is invalid, unknown or inconsistent."""


class BundleError(VidfilterError, ValueError):
    """A model bundle is missing, truncated or from an incompatible version."""


class TrainingInputError(VidfilterError, ValueError):
    """Training cannot start with these inputs (too short for the lag, crop larger than frame...)."""


class DamagedInputError(UnreadableInputError):
    """Part of the input is damaged (truncated file, corrupt frame, missing chunk).

    ``frame`` is the first frame that cannot be trusted (frames before it read fine), or ``None``
    when the damage is known only for the file as a whole; ``reason`` says what is wrong in a few
    words, without the path or the advice. ``vidfilter run --salvage`` processes the frames before
    the damage instead of failing.
    """

    def __init__(self, message: str, *, frame: int | None = None, reason: str | None = None) -> None:
        super().__init__(message)
        self.frame = frame
        self.reason = reason or message

    @classmethod
    def unreadable_frame(cls, path: object, t: int, detail: str, advice: str) -> DamagedInputError:
        """``PATH: frame T cannot be read (DETAIL); ADVICE``, with ``frame=t``."""
        reason = f"frame {t} cannot be read ({detail})"
        return cls(f"{path}: {reason}; {advice}", frame=t, reason=reason)


class DiskFullError(VidfilterError, OSError):
    """The output's file system ran out of space (or quota) while writing."""


class ForeignOutputError(OutputNotWritableError):
    """The output path holds something vidfilter did not write, so it is never replaced or emptied."""


class FileTooLargeError(DiskFullError):
    """A file reached the largest size its file system (FAT32: 4 GiB) or the process's file-size
    limit (``ulimit -f``) allows; more free space does not help, another place or format does."""
