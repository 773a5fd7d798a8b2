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
