"""One exception family whose messages a person can act on."""

from __future__ import annotations


class StudioError(Exception):
    """Base of every error Studio shows to a person.

    Args:
        message: what went wrong, naming the file, row, field or setting.
        hint: what to do about it.
    """

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message}\n  hint: {self.hint}" if self.hint else self.message


class DataError(StudioError):
    """A dataset file cannot be read or holds no usable rows."""


class TemplateError(StudioError):
    """A chat template is missing, unknown or cannot render a conversation."""


class ModelError(StudioError):
    """A model or tokenizer folder cannot be loaded."""


class RunError(StudioError):
    """A run folder or the run registry is unusable."""


class ConfigError(StudioError):
    """A run configuration has one or more invalid fields.

    Attributes:
        errors: every (dotted field path, reason) found, not only the first.
    """

    def __init__(self, errors: list[tuple[str, str]], source: str = "") -> None:
        self.errors = list(errors)
        where = f" in {source}" if source else ""
        lines = [f"{len(self.errors)} problem(s) in the run configuration{where}:"]
        lines += [f"  - {path}: {reason}" for path, reason in self.errors]
        super().__init__("\n".join(lines), "fix the fields named above and try again")


class DiskError(RunError):
    """A file or folder could not be written: the disk is full, read-only or not ours."""


def disk_error(path, exc: OSError, doing: str, needed: int | None = None,
               then: str = "then try again") -> DiskError:
    """A :class:`DiskError` for an ``OSError`` met while writing ``path``.

    Args:
        doing: what was being written, e.g. ``"save checkpoint step-000004"``.
        needed: bytes the write needed, when known (said in the message).
        then: what to do once the cause is fixed.
    """
    import errno

    code = getattr(exc, "errno", None)
    if code in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):
        need = f" (about {needed / 2**20:,.0f} MiB needed)" if needed else ""
        return DiskError(f"no space left on the disk holding {path}: could not {doing}{need}",
                         f"free space on that disk, {then}")
    if code in (errno.EROFS, errno.EACCES, errno.EPERM):
        return DiskError(f"{path} is read-only or not writable by you: could not {doing}",
                         f"make it writable or use another folder, {then}")
    return DiskError(f"could not {doing}: {path}: {exc.strerror or exc}", f"check the disk, {then}")
