"""The base of every stack-config model: camelCase keys (Pulumi's convention), unknown keys
refused, values frozen, and numbers that are numbers: pydantic would take `true` for 1 and
any size of integer, where the clouds and JetStream take 64-bit integers."""

from __future__ import annotations

import types
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator
from pydantic.alias_generators import to_camel

INT64_MAX = 2**63 - 1


class ConfigModel(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )

    @field_validator("*", mode="before")
    @classmethod
    def _numbers_are_numbers(cls, value: Any, info: ValidationInfo) -> Any:
        if info.field_name is None or not _numeric(cls.model_fields[info.field_name].annotation):
            return value
        if isinstance(value, bool):
            raise ValueError("must be a number, not true or false")
        if isinstance(value, int) and not -INT64_MAX - 1 <= value <= INT64_MAX:
            raise ValueError("does not fit a 64-bit integer")
        return value


def _numeric(annotation: Any) -> bool:
    if annotation in (int, float):
        return True
    if get_origin(annotation) in (Union, types.UnionType):
        return any(_numeric(a) for a in get_args(annotation))
    return False
