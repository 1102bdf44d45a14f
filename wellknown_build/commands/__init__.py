"""One module per command: the function its click command calls (as mkdocs' commands/)."""

from .render import check, render
from .validate import validate

__all__ = ["check", "render", "validate"]
