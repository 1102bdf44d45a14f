"""One exception base for the domain; the CLI maps it to exit codes."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

# Control characters (a file name or value with a newline, say) written as escapes, so that
# every problem stays on its one line: C0, DEL, C1 (NEL, U+0085, ends a line for
# str.splitlines and some terminals) and the Unicode line and paragraph separators.
_ESCAPES = {c: f"\\x{c:02x}" for c in (*range(0x20), *range(0x7F, 0xA0))} | {
    0x2028: "\\u2028",
    0x2029: "\\u2029",
}


def one_line(text: str) -> str:
    return text.translate(_ESCAPES)


def shown(value: object) -> str:
    """A value as a message quotes it: short, and never a 5,000-digit integer (which even
    repr() refuses to write)."""
    if type(value) is int and value.bit_length() > 64:
        return "a very large integer"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


class WellknownError(Exception):
    """Base of every error a user can cause; the CLI reports it without a traceback."""

    exit_code = 1


@dataclass(frozen=True, order=True)
class Problem:
    """One thing wrong with the configuration, located by its path in the YAML and its line."""

    path: str
    message: str
    instance: str | None = None
    line: int | None = None
    file: str | None = None  # an included file; None for the configuration file itself

    def __str__(self) -> str:
        where = f"{self.path}: " if self.path else ""
        who = f" [instance {self.instance}]" if self.instance else ""
        return one_line(f"{where}{self.message}{who}")

    def located(self, source: str) -> str:
        """`file:line: path: message`, the form editors and CI logs link to a line."""
        name = one_line(self.file or source)
        if self.line:
            return f"{name}:{self.line}: {self}"
        return f"{name}: {self}" if self.file else str(self)

    def in_file(self, file: str | None) -> Problem:
        return replace(self, file=file)

    def at_line(self, line: int | None) -> Problem:
        return replace(self, line=line)


class ConfigError(WellknownError):
    """Every problem found in a configuration, reported together."""

    def __init__(self, source: str, problems: Iterable[Problem]) -> None:
        self.source = source
        self.problems = list(problems)
        super().__init__(self._describe())

    def _describe(self) -> str:
        count = len(self.problems)
        head = f"{one_line(self.source)}: {count} problem{'s' if count != 1 else ''}"
        return "\n".join([head, *(f"  {p.located(self.source)}" for p in self.problems)])


class StrictError(ConfigError):
    """Warnings that --strict turns into a failed run."""

    def _describe(self) -> str:
        count = len(self.problems)
        head = f"{one_line(self.source)}: {count} warning{'s' if count != 1 else ''} (--strict)"
        return "\n".join([head, *(f"  {p.located(self.source)}" for p in self.problems)])


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
