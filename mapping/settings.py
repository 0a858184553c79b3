"""The base of every config model: unknown keys are errors, so typos never pass."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class StrictModel(BaseModel):
    """A config section: frozen, and an unknown key is a validation error."""

    model_config = ConfigDict(extra="forbid", frozen=True)
