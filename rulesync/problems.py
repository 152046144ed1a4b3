"""Problems found by any stage: a severity, a location and a hint the user can act on."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    severity: str  # "error" | "warning"
    file: str
    line: int
    field: str
    message: str
    hint: str = ""

    def __str__(self) -> str:
        loc = f"{self.file}:{self.line}" if self.line else self.file
        where = f" {self.field}:" if self.field else ""
        hint = f" (hint: {self.hint})" if self.hint else ""
        return f"{loc}: {self.severity}:{where} {self.message}{hint}"


def has_errors(problems: list[Problem]) -> bool:
    return any(p.severity == "error" for p in problems)
