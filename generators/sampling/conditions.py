"""Conditional sampling: rows with given values, as many as asked (rebalancing: `.augment`).

A condition fixes columns to *exact* values: a category, a boolean, or a number (useful
for integer or point-mass values such as `capital_gain: 0`; a continuous column almost
never produces an exact number, so such a condition ends in a DataError). Ranges, sets
and missing values are not conditions; use `constraints:` for rules of that kind.

Which generators condition natively (`Generator.supports_conditions`):
- `autoregressive`: exactly, by fixing the tokens of a prefix of its column order, when
  the conditioned columns are categorical/boolean and are the first columns of that order
  (put them there with the `first_columns` parameter); otherwise by rejection.
- `gaussian_copula`: SDV's conditional sampling of the copula (`sample_from_conditions`).
- `gan`: one categorical/boolean column, through the conditional vector it was trained
  with (CTGAN's), keeping the rows whose decoded category matches; several columns by
  rejection.
Every other generator (SDV's ctgan/tvae/copulagan, whose SDV conditional sampling is
rejection sampling anyway, vae, gmm, the Boltzmann machines, the baselines) samples
by rejection: draw, keep the matching rows, at most `max_tries_factor` draws per row asked
for, and a DataError naming the condition and its observed acceptance rate when too rare.

Rebalancing (`augment:` in a run config): `rebalance_plan` turns a target column's class
counts and an `AugmentConfig` into the conditions that produce the missing rows, and
`merge_augmented` stacks the real training rows and the synthetic ones with a boolean
`synthetic` column.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from generators.data.schema import Schema
from generators.data.values import as_float
from generators.errors import ConfigError, DataError
from generators.sampling.constraints import Constraints, draw_until, sample_with_constraints
from generators.seeds import round_seed

if TYPE_CHECKING:
    from generators.base import Generator

Value = bool | int | float | str
# Rejection sampling draws at most this many rows per row asked for (and at least
# MIN_DRAWS): a condition met by fewer than 1 row in 100 is reported, not ground through.
MAX_TRIES_FACTOR = 100
MIN_DRAWS = 10_000


class Condition(BaseModel):
    """`rows` rows whose columns equal `values` exactly, e.g. {income: ">50K"} x 5000."""

    model_config = ConfigDict(extra="forbid")

    values: dict[str, Value] = Field(min_length=1)
    rows: int = Field(gt=0)

    def describe(self) -> str:
        """`income = >50K`, `sex = Female, race = Black`."""
        return "`" + ", ".join(f"{k} = {v}" for k, v in self.values.items()) + "`"


def describe(values: Mapping[str, Any]) -> str:
    return Condition.model_construct(values=dict(values), rows=1).describe()


# What `sample.conditions` accepts in a config: one mapping (with `sample.rows`), or a list.
SampleConditions = dict[str, Value] | list[Condition] | None


def parse_conditions(
    conditions: Mapping[str, Any] | Sequence[Any] | None,
    rows: int | None = None,
    where: str = "sample.conditions",
) -> list[Condition]:
    """The config's `sample.conditions` as a list of Conditions.

    A single mapping {column: value} asks for `rows` rows (`sample.rows`); a list holds
    {values, rows} items (Conditions or dicts). None -> []. ConfigError names the key.
    """
    if conditions is None:
        return []
    if isinstance(conditions, Mapping):
        if rows is None:
            raise ConfigError(
                f"{where}: a single condition mapping needs sample.rows (how many rows to draw)"
            )
        items: list[Any] = [{"values": dict(conditions), "rows": rows}]
    elif isinstance(conditions, Sequence) and not isinstance(conditions, str):
        items = list(conditions)
    else:
        raise ConfigError(
            f"{where}: expected a mapping {{column: value}} or a list of {{values, rows}}, "
            f"got {conditions!r:.60}"
        )
    parsed = []
    for i, item in enumerate(items):
        if isinstance(item, Condition):
            parsed.append(item)
            continue
        try:
            parsed.append(Condition.model_validate(item))
        except ValidationError as error:
            problems = []
            for problem in error.errors():
                key = ".".join(str(p) for p in problem["loc"])
                path = f"{where}[{i}].{key}" if key else f"{where}[{i}]"
                problems.append(f"{path}: {problem['msg']} (got {problem.get('input')!r:.60})")
            raise ConfigError("; ".join(problems)) from None
    return parsed


def check_values(schema: Schema, values: Mapping[str, Any], where: str = "sample.conditions"):
    """`values` checked against the schema and normalised (categories as their string
    labels, numbers as floats, booleans as bools, datetimes as Timestamps).

    DataError for a column not in the table, an identifier or text column, a category never
    seen in the training data, a number outside the seen range, a wrong type or a missing
    value.
    """
    if not values:
        raise DataError(f"{where}: a condition needs at least one column")
    out: dict[str, Any] = {}
    for name, value in values.items():
        if name not in schema.names:
            raise DataError(
                f"{where}: column '{name}' is not in the table; columns: {', '.join(schema.names)}"
            )
        column = schema[name]
        label = f"{where}: {name} = {value!r}"
        if value is None or (isinstance(value, float) and math.isnan(value)):
            raise DataError(f"{label}: conditions take exact values, not missing ones")
        if column.kind in ("id", "text"):
            raise DataError(
                f"{where}: column '{name}' is {column.kind}; identifiers are issued fresh and "
                "text is not modelled, so neither can be conditioned on"
            )
        if column.kind == "categorical":
            text = str(value)
            if isinstance(value, bool) and column.categories and text not in column.categories:
                text = text.lower()
            if column.categories is not None and text not in column.categories:
                seen = ", ".join(column.categories[:20])
                more = "" if len(column.categories) <= 20 else f" (+{len(column.categories) - 20})"
                raise DataError(
                    f"{label}: this value never occurs in the training data; seen: {seen}{more}"
                )
            out[name] = text
        elif column.kind == "boolean":
            if not isinstance(value, bool | np.bool_):
                raise DataError(f"{label}: column '{name}' is boolean; give true or false")
            out[name] = bool(value)
        elif column.kind == "numeric":
            if isinstance(value, bool) or not isinstance(value, int | float | np.number):
                raise DataError(f"{label}: column '{name}' is numeric; give a number")
            number = float(value)
            if column.minimum is not None and not (column.minimum <= number <= column.maximum):
                raise DataError(
                    f"{label}: outside the range seen in the training data "
                    f"[{column.minimum:g}, {column.maximum:g}]"
                )
            if column.is_integer and number != round(number):
                raise DataError(f"{label}: column '{name}' holds integers")
            out[name] = number
        elif column.kind == "datetime":
            try:
                out[name] = pd.Timestamp(value)
            except (TypeError, ValueError):
                raise DataError(f"{label}: not a date/time") from None
        else:
            raise DataError(f"{where}: column '{name}' of kind {column.kind} cannot be conditioned")
    return out


def matches(frame: pd.DataFrame, values: Mapping[str, Any]) -> np.ndarray:
    """True for each row of `frame` (conformed to its schema) whose columns equal the
    normalised `values` (from `check_values`)."""
    keep = np.ones(len(frame), dtype=bool)
    for name, value in values.items():
        column = frame[name]
        if isinstance(value, bool):
            equal = column.astype("boolean") == value
        elif isinstance(value, float):
            equal = pd.Series(as_float(column) == value)
        elif isinstance(value, pd.Timestamp):
            equal = pd.to_datetime(column) == value
        else:
            equal = column.astype("string") == value
        keep &= equal.fillna(False).to_numpy(dtype=bool)
    return keep


def rejection_sample(
    draw,
    n: int,
    values: Mapping[str, Any],
    seed: int,
    *,
    max_tries_factor: int = MAX_TRIES_FACTOR,
    max_rounds: int = 30,
) -> pd.DataFrame:
    """`n` rows of `draw(rows, seed)` matching the normalised `values`, drawn in seeded
    rounds, at most max(max_tries_factor * n, MIN_DRAWS) rows in all. DataError naming the
    condition and its acceptance rate when it is too rare."""
    max_draws = max(max_tries_factor * n, MIN_DRAWS)

    def judge(candidate: pd.DataFrame, have: int) -> tuple[np.ndarray, dict[str, int]]:
        keep = matches(candidate.iloc[have:], values)
        return keep, {"condition": int((~keep).sum())}

    frame, stats = draw_until(
        draw, n, seed, judge, max_rounds=max_rounds, max_draws=max_draws, max_growth=max_draws
    )
    if len(frame) < n:
        rate = stats.acceptance
        needed = f"about {n / rate:,.0f}" if rate > 0 else "more than that"
        raise DataError(
            f"{describe(values)} was reached by {stats.accepted:,} of {stats.drawn:,} draws "
            f"({rate:.3%}), short of the {n:,} rows asked for; {n:,} rows would take {needed} "
            "draws. The model rarely or never produces it: check the value, ask for fewer "
            "rows, raise max_tries_factor, or use a generator that conditions natively "
            "(autoregressive with the column in first_columns, gaussian_copula)"
        )
    return frame


def sample_conditioned(
    generator: Generator,
    conditions: Sequence[Condition],
    seed: int,
    *,
    constraints: Constraints | None = None,
    max_tries_factor: int = MAX_TRIES_FACTOR,
) -> pd.DataFrame:
    """Every condition's rows, in order, as one frame with the generator's schema.

    Condition i is sampled with a seed derived from (`seed`, i) by
    `generator.sample_conditioned` (natively where the generator can, else by rejection);
    with `constraints` (fitted), rows that violate them are rejected too. Identifier
    columns are re-issued over the whole frame, so they are distinct. Same seed -> same
    output.
    """
    if not conditions:
        raise DataError("sample.conditions: no conditions to sample")
    frames = []
    for i, condition in enumerate(conditions):
        condition_seed = round_seed(seed, i) if i else seed

        def draw(rows: int, draw_seed: int, values=condition.values) -> pd.DataFrame:
            return generator.sample_conditioned(
                rows, values, seed=draw_seed, max_tries_factor=max_tries_factor
            )

        if constraints is not None and len(constraints):
            try:
                frames.append(
                    sample_with_constraints(draw, condition.rows, condition_seed, constraints)
                )
            except DataError as error:
                if str(error).startswith("`"):  # the condition itself was out of reach
                    raise
                raise DataError(f"{condition.describe()}: {error}") from None
        else:
            frames.append(draw(condition.rows, condition_seed))
    return generator.reissue_ids(pd.concat(frames, ignore_index=True))
