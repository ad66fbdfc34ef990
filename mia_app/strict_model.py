"""StrictModel: the base of every typed config (its own module so the config modules can share it freely)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class StrictModel(BaseModel):
    """Unknown keys are errors, and so is every NaN or ±inf float (a NaN loss weight would silently drop its
    term; ``1e309`` parses as inf)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)
