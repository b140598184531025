"""What every config section model shares: the frozen, strict pydantic base and the keyed error.

Separate so the section modules (:mod:`multialpha.settings_model`, :mod:`multialpha.settings_redis`,
:mod:`multialpha.settings_strategies`) can all use them without importing one another.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _KeyedError(ValueError):
    """Raised inside validators to report an exact key path."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key
        self.message = message
