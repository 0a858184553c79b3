"""The text of a generated function, as it is written."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class Source:
    """The function's text, and the objects it refers to (bound as closure cells)."""

    lines: list[str] = field(default_factory=list)
    cells: dict[str, Any] = field(default_factory=dict)

    def cell(self, prefix: str, obj: Any) -> str:
        """A cell name holding `obj` (the object itself: identity is kept)."""
        name = f"_{prefix}{len(self.cells)}"
        self.cells[name] = obj
        return name

    def add(self, indent: int, text: str) -> None:
        self.lines.append("    " * indent + text)
