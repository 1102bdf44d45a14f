"""One exception base for the domain; the CLI maps it to exit codes."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


class WellknownError(Exception):
    """Base of every error a user can cause; the CLI reports it without a traceback."""

    exit_code = 1


@dataclass(frozen=True, order=True)
class Problem:
    """One thing wrong with the configuration, located by its path in the YAML."""

    path: str
    message: str
    instance: str | None = None

    def __str__(self) -> str:
        where = f"{self.path}: " if self.path else ""
        who = f" [instance {self.instance}]" if self.instance else ""
        return f"{where}{self.message}{who}"


class ConfigError(WellknownError):
    """Every problem found in a configuration, reported together."""

    def __init__(self, source: str, problems: Iterable[Problem]) -> None:
        self.source = source
        self.problems = list(problems)
        super().__init__(self._describe())

    def _describe(self) -> str:
        count = len(self.problems)
        head = f"{self.source}: {count} problem{'s' if count != 1 else ''}"
        return "\n".join([head, *(f"  {p}" for p in self.problems)])


class StrictError(ConfigError):
    """Warnings that --strict turns into a failed run."""

    def _describe(self) -> str:
        count = len(self.problems)
        head = f"{self.source}: {count} warning{'s' if count != 1 else ''} (--strict)"
        return "\n".join([head, *(f"  {p}" for p in self.problems)])


class KeyLoadError(WellknownError):
    """A key file that cannot become a published JWK; raised inside keys/, located by config."""


class AlgError(KeyLoadError):
    """An alg that the key cannot sign with; located at the key's `alg` field."""


class TemplateError(WellknownError):
    """A template that is missing, fails to render, or renders an invalid document."""


class TreeError(WellknownError):
    """The output folder could not be read or written."""


class PublishError(WellknownError):
    """An upload, listing, delete or CDN call failed."""


class SafetyLimitError(WellknownError):
    """A safety limit refused the whole run before anything changed."""

    exit_code = 3
