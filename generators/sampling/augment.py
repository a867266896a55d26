"""Class rebalancing (`augment:` in a run config): `rebalance_plan` turns a target column's class
counts and an `AugmentConfig` into the conditions that produce the missing rows, and
`merge_augmented` stacks the real training rows and the synthetic ones with a boolean
`synthetic` column.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal, Self

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from generators.data.schema import Schema
from generators.errors import ConfigError, DataError

if TYPE_CHECKING:
    pass
from generators.sampling.conditions import Condition, Value

SYNTHETIC_COLUMN = "synthetic"


# -- rebalancing ----------------------------------------------------------------------------
class AugmentConfig(BaseModel):
    """`augment:` in a run config: which class distribution to reach with synthetic rows.

    - balance: every class up to the largest class's count.
    - ratio: every class up to `ratio` x the largest class's count (minority/majority).
    - counts: each listed class up to its count (final count, real + synthetic); classes
      not listed get no rows.
    `merge`: publish the real training rows and the synthetic ones together, with a
    boolean `synthetic` column.
    """

    model_config = ConfigDict(extra="forbid")

    target: str
    strategy: Literal["balance", "ratio", "counts"] = "balance"
    ratio: float | None = Field(None, gt=0, le=1)
    counts: dict[str, int] | None = None
    merge: bool = False

    @model_validator(mode="after")
    def _strategy_fields(self) -> Self:
        if self.strategy == "ratio" and self.ratio is None:
            raise ValueError("strategy 'ratio' needs ratio (minority/majority, in (0, 1])")
        if self.strategy == "counts" and not self.counts:
            raise ValueError("strategy 'counts' needs counts {class: final rows}")
        if self.strategy != "ratio" and self.ratio is not None:
            raise ValueError(f"ratio applies to strategy 'ratio', not '{self.strategy}'")
        if self.strategy != "counts" and self.counts is not None:
            raise ValueError(f"counts applies to strategy 'counts', not '{self.strategy}'")
        if self.counts and any(v < 0 for v in self.counts.values()):
            raise ValueError("counts must not be negative")
        return self

    @classmethod
    def parse(cls, data: Mapping[str, Any], where: str = "augment") -> AugmentConfig:
        """Validate a config's `augment:` mapping; a ConfigError names `augment.<key>`."""
        try:
            return cls.model_validate(dict(data))
        except ValidationError as error:
            problems = []
            for item in error.errors():
                key = ".".join(str(p) for p in item["loc"])
                path = f"{where}.{key}" if key else where
                problems.append(f"{path}: {item['msg']} (got {item.get('input')!r:.60})")
            raise ConfigError("; ".join(problems)) from None


def rebalance_plan(
    train: pd.DataFrame, target: str, config: AugmentConfig, schema: Schema | None = None
) -> list[Condition]:
    """The synthetic rows per class of `target` that reach `config`'s distribution, as
    Conditions (classes that need no rows are left out; none is ever negative).

    goal(class) = largest count (balance), ceil(ratio x largest count) (ratio), or
    counts[class] (counts); rows = max(0, goal - real count). With `schema`, a boolean
    target's class labels become booleans and a numeric one's numbers.
    """
    if target not in train.columns:
        raise ConfigError(
            f"augment.target: column '{target}' is not in the table; columns: "
            f"{', '.join(map(str, train.columns))}"
        )
    labels = train[target].dropna()
    counts = labels.astype("string").value_counts()
    if counts.empty:
        raise DataError(f"augment.target: column '{target}' has no values in the training rows")
    largest = int(counts.max())
    if config.strategy == "balance":
        goals = {label: largest for label in counts.index}
    elif config.strategy == "ratio":
        goal = math.ceil(config.ratio * largest - 1e-9)  # type: ignore[operator]
        goals = {label: goal for label in counts.index}
    else:
        unknown = [k for k in config.counts if k not in counts.index]  # type: ignore[union-attr]
        if unknown:
            raise DataError(
                f"augment.counts: class(es) {unknown} never occur in '{target}'; classes: "
                f"{', '.join(counts.index)}"
            )
        goals = dict(config.counts)  # type: ignore[arg-type]
    kind = schema[target].kind if schema is not None and target in schema.names else None
    plan = []
    for label in sorted(goals, key=lambda label: (-goals[label] + counts[label], label)):
        rows = max(0, int(goals[label]) - int(counts[label]))
        if rows:
            plan.append(Condition(values={target: _as_value(label, kind)}, rows=rows))
    return plan


def _as_value(label: str, kind: str | None) -> Value:
    if kind == "boolean":
        return label.lower() == "true"
    if kind == "numeric":
        number = float(label)
        return int(number) if number.is_integer() else number
    return label


def merge_augmented(train: pd.DataFrame, synthetic: pd.DataFrame) -> pd.DataFrame:
    """The real training rows, then the synthetic ones, with a boolean `synthetic` column
    (False for real rows) appended. Both frames need the same columns."""
    for name, frame in (("training", train), ("synthetic", synthetic)):
        if SYNTHETIC_COLUMN in frame.columns:
            raise DataError(
                f"augment.merge: the {name} table already has a column named "
                f"'{SYNTHETIC_COLUMN}'; rename or drop it (data.drop) to merge"
            )
    if list(train.columns) != list(synthetic.columns):
        raise DataError(
            "augment.merge: the synthetic rows' columns differ from the training rows': "
            f"{list(synthetic.columns)} vs {list(train.columns)}"
        )
    merged = pd.concat([train, synthetic], ignore_index=True)
    merged[SYNTHETIC_COLUMN] = pd.array(
        np.r_[np.zeros(len(train), bool), np.ones(len(synthetic), bool)], dtype="boolean"
    )
    return merged
