"""Rules every synthetic row must obey (`constraints:` in a run config), checked per row and
enforced by rejection.

Five kinds, one pydantic model each, told apart by `kind`:

- `fixed_combinations` {columns}: only combinations of these columns' values that occur in
  the training table are allowed (city <-> country). Learned by `fit(train)`.
- `inequality` {low, high, strict}: low <= high (low < high when strict), for two numeric
  or two datetime columns. A row with either value missing does not violate.
- `range` {column, min, max}: min <= value <= max (either bound optional), numeric or
  datetime (bounds as ISO strings). Missing values do not violate.
- `value_set` {column, values}: the value is one of `values`. Missing values do not violate.
- `unique` {column}: no value occurs twice; every occurrence after the first violates.
  Missing values do not violate.

`Constraints` holds a list of them: `fit(train, schema)` checks every column against the
schema (a ConfigError naming `constraints[i].<key>`) and learns what must be learned;
`violations(frame)` counts violating rows per constraint, `mask(frame)` marks rows that
violate any. `sample_with_constraints` draws from a generator in seeded rounds and keeps
only valid rows, up to a bound.

Identifier columns (schema kind `id`) are re-issued fresh by the generators on every
`sample` call, so rows drawn in different rounds share ids: while sampling, a `unique`
constraint on an identifier column is left to `Generator.reissue_ids`, which the caller
applies to the final frame (ids are then distinct by construction); `violations` still
counts it, so the published table is checked.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, Self

import numpy as np
import pandas as pd
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    TypeAdapter,
    ValidationError,
    model_validator,
)

from generators.data.schema import Schema
from generators.data.values import as_float, as_labels
from generators.errors import ConfigError, DataError, NotFittedError
from generators.seeds import round_seed

# Between two labels of a combination: a control character no real value holds.
_SEPARATOR = "\x1f"
ORDERED_KINDS = ("numeric", "datetime")


class _Constraint(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @property
    def name(self) -> str:
        """A readable key, safe as an MLflow metric name: `range.age`, `unique.id`, ..."""
        return ".".join([self.kind, *self.column_names()])  # type: ignore[attr-defined]

    def column_names(self) -> list[str]:
        raise NotImplementedError

    def fit(self, train: pd.DataFrame) -> Self:
        """Learn from the training table what must be learned (nothing, for most kinds)."""
        return self

    def check(self, schema: Schema, where: str = "constraints[0]") -> None:
        """Raise ConfigError naming `<where>.<key>` when a column is absent or of a kind this
        constraint cannot apply to."""
        raise NotImplementedError

    def violations(self, frame: pd.DataFrame) -> np.ndarray:
        """Boolean array, one per row of `frame`: True where the row violates."""
        raise NotImplementedError


def _require(schema: Schema, where: str, key: str, column: str, kinds: Sequence[str]) -> None:
    if column not in schema.names:
        raise ConfigError(
            f"{where}.{key}: column '{column}' is not in the table; columns: "
            f"{', '.join(schema.names)}"
        )
    kind = schema[column].kind
    if kind not in kinds:
        raise ConfigError(
            f"{where}.{key}: column '{column}' is {kind}; this constraint needs a "
            f"{' or '.join(kinds)} column"
        )


def _numbers(values: Any, like: pd.Series) -> np.ndarray:
    """Constraint bounds/values as floats on the same scale as `as_float(like)` (datetimes
    as ns since the epoch)."""
    if pd.api.types.is_datetime64_any_dtype(like.dtype):
        parsed = pd.to_datetime(pd.Series(values))
        if isinstance(like.dtype, pd.DatetimeTZDtype) and parsed.dt.tz is None:
            parsed = parsed.dt.tz_localize(like.dtype.tz)
        return as_float(parsed)
    return as_float(pd.Series(values, dtype="object"))


class FixedCombinations(_Constraint):
    """Only value combinations of `columns` seen in the training table are allowed."""

    kind: Literal["fixed_combinations"]
    columns: list[str] = Field(min_length=2)
    _allowed: frozenset[str] | None = PrivateAttr(None)

    def column_names(self) -> list[str]:
        return list(self.columns)

    def check(self, schema: Schema, where: str = "constraints[0]") -> None:
        for i, column in enumerate(self.columns):
            _require(schema, where, f"columns[{i}]", column, ("categorical", "boolean", "numeric"))

    def _keys(self, frame: pd.DataFrame) -> np.ndarray:
        labels = [as_labels(frame[c]).to_numpy(dtype=object) for c in self.columns]
        keys = labels[0].astype(str)
        for more in labels[1:]:
            keys = np.char.add(np.char.add(keys, _SEPARATOR), more.astype(str))
        return keys

    def fit(self, train: pd.DataFrame) -> Self:
        self._allowed = frozenset(np.unique(self._keys(train)).tolist())
        return self

    def violations(self, frame: pd.DataFrame) -> np.ndarray:
        if self._allowed is None:
            raise NotFittedError(f"{self.name}: call fit(train) before checking rows")
        if len(frame) == 0:
            return np.zeros(0, dtype=bool)
        return ~np.isin(self._keys(frame), list(self._allowed))


class Inequality(_Constraint):
    """low <= high (low < high when `strict`); rows missing either value do not violate."""

    kind: Literal["inequality"]
    low: str
    high: str
    strict: bool = False

    def column_names(self) -> list[str]:
        return [self.low, self.high]

    def check(self, schema: Schema, where: str = "constraints[0]") -> None:
        _require(schema, where, "low", self.low, ORDERED_KINDS)
        _require(schema, where, "high", self.high, ORDERED_KINDS)
        if schema[self.low].kind != schema[self.high].kind:
            raise ConfigError(
                f"{where}.high: column '{self.high}' is {schema[self.high].kind} but "
                f"'{self.low}' is {schema[self.low].kind}; compare columns of one kind"
            )

    def violations(self, frame: pd.DataFrame) -> np.ndarray:
        low, high = as_float(frame[self.low]), as_float(frame[self.high])
        with np.errstate(invalid="ignore"):
            bad = low >= high if self.strict else low > high
        return bad & ~np.isnan(low) & ~np.isnan(high)


class Range(_Constraint):
    """min <= value <= max, either bound optional; datetimes take ISO strings."""

    kind: Literal["range"]
    column: str
    min: float | str | None = None
    max: float | str | None = None

    @model_validator(mode="after")
    def _a_bound(self) -> Self:
        if self.min is None and self.max is None:
            raise ValueError("give min, max or both")
        return self

    def column_names(self) -> list[str]:
        return [self.column]

    def check(self, schema: Schema, where: str = "constraints[0]") -> None:
        _require(schema, where, "column", self.column, ORDERED_KINDS)
        kind = schema[self.column].kind
        for key in ("min", "max"):
            bound = getattr(self, key)
            if bound is None:
                continue
            try:
                if kind == "datetime":
                    pd.Timestamp(bound)
                else:
                    float(bound)
            except (TypeError, ValueError):
                expected = "a date/time" if kind == "datetime" else "a number"
                raise ConfigError(
                    f"{where}.{key}: {bound!r} is not {expected} (column '{self.column}' is {kind})"
                ) from None
        if self.min is not None and self.max is not None:
            low, high = (
                (pd.Timestamp(self.min), pd.Timestamp(self.max))
                if kind == "datetime"
                else (float(self.min), float(self.max))
            )
            if low > high:
                raise ConfigError(f"{where}.max: {self.max!r} is below min {self.min!r}")

    def violations(self, frame: pd.DataFrame) -> np.ndarray:
        values = as_float(frame[self.column])
        bad = np.zeros(len(values), dtype=bool)
        with np.errstate(invalid="ignore"):
            if self.min is not None:
                bad |= values < _numbers([self.min], frame[self.column])[0]
            if self.max is not None:
                bad |= values > _numbers([self.max], frame[self.column])[0]
        return bad


class ValueSet(_Constraint):
    """The value is one of `values`; missing values do not violate."""

    kind: Literal["value_set"]
    column: str
    values: list[bool | int | float | str] = Field(min_length=1)

    def column_names(self) -> list[str]:
        return [self.column]

    def check(self, schema: Schema, where: str = "constraints[0]") -> None:
        _require(schema, where, "column", self.column, ("categorical", "boolean", "numeric"))
        if schema[self.column].kind == "numeric":
            for i, value in enumerate(self.values):
                if isinstance(value, bool) or not isinstance(value, int | float):
                    raise ConfigError(
                        f"{where}.values[{i}]: {value!r} is not a number (column "
                        f"'{self.column}' is numeric)"
                    )

    def violations(self, frame: pd.DataFrame) -> np.ndarray:
        values = frame[self.column]
        present = values.notna().to_numpy(dtype=bool)
        if pd.api.types.is_numeric_dtype(values.dtype) and not pd.api.types.is_bool_dtype(
            values.dtype
        ):
            allowed = np.isin(as_float(values), np.asarray(self.values, dtype=float))
        else:
            labels = values.astype("string").to_numpy(dtype=object, na_value="")
            allowed = np.isin(labels.astype(str), [str(v) for v in self.values])
        return present & ~allowed


class Unique(_Constraint):
    """No value occurs twice: every occurrence after the first violates."""

    kind: Literal["unique"]
    column: str

    def column_names(self) -> list[str]:
        return [self.column]

    def check(self, schema: Schema, where: str = "constraints[0]") -> None:
        _require(
            schema,
            where,
            "column",
            self.column,
            ("id", "categorical", "numeric", "datetime", "boolean", "text"),
        )

    def violations(self, frame: pd.DataFrame) -> np.ndarray:
        values = frame[self.column]
        return (values.duplicated(keep="first") & values.notna()).to_numpy(dtype=bool)


Constraint = Annotated[
    FixedCombinations | Inequality | Range | ValueSet | Unique, Field(discriminator="kind")
]
_CONSTRAINT_LIST = TypeAdapter(list[Constraint])


def parse_constraints(items: Sequence[Any], where: str = "constraints") -> list[Constraint]:
    """Validate a config's `constraints:` list (dicts or models); a ConfigError names
    `constraints[i].<key>`."""
    try:
        return _CONSTRAINT_LIST.validate_python(list(items))
    except ValidationError as error:
        problems = []
        for item in error.errors():
            loc = list(item["loc"])
            path = f"{where}[{loc[0]}]" if loc else where
            # pydantic puts the union member's tag in the path: drop it
            rest = [str(p) for p in loc[2:]] if len(loc) > 1 else []
            key = ".".join(rest)
            path = f"{path}.{key}" if key else path
            problems.append(f"{path}: {item['msg']} (got {item.get('input')!r:.60})")
        raise ConfigError("; ".join(problems)) from None


class Constraints:
    """A run's constraints: `fit(train, schema)`, then `violations`/`mask` on any frame."""

    def __init__(self, items: Sequence[Any] = (), where: str = "constraints") -> None:
        self.items: list[Constraint] = parse_constraints(items, where)
        self.where = where
        self.names = _unique_names([c.name for c in self.items])
        self.schema_: Schema | None = None

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[Constraint]:
        return iter(self.items)

    def fit(self, train: pd.DataFrame, schema: Schema) -> Self:
        """Check every constraint against `schema` and learn from `train` (the real
        training rows). The training rows themselves may violate (a check of the data,
        not of the config): see `violations(train)`."""
        for i, constraint in enumerate(self.items):
            constraint.check(schema, f"{self.where}[{i}]")
        for constraint in self.items:
            constraint.fit(train)
        self.schema_ = schema
        return self

    def violations(self, frame: pd.DataFrame) -> dict[str, int]:
        """Rows of `frame` violating each constraint, by name (`range.age`, ...)."""
        self._require_fit()
        return {
            name: int(c.violations(frame).sum())
            for name, c in zip(self.names, self.items, strict=True)
        }

    def mask(self, frame: pd.DataFrame) -> np.ndarray:
        """True for each row that violates at least one constraint."""
        self._require_fit()
        bad = np.zeros(len(frame), dtype=bool)
        for constraint in self.items:
            bad |= constraint.violations(frame)
        return bad

    def _enforced(self) -> list[tuple[str, Constraint]]:
        """The constraints rejection sampling enforces: all but `unique` on identifier
        columns, which `Generator.reissue_ids` makes distinct by construction."""
        assert self.schema_ is not None
        return [
            (name, c)
            for name, c in zip(self.names, self.items, strict=True)
            if not (isinstance(c, Unique) and self.schema_[c.column].kind == "id")
        ]

    def _require_fit(self) -> None:
        if self.schema_ is None:
            raise NotFittedError("constraints: call fit(train, schema) before checking rows")


def _unique_names(names: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        out.append(name if seen[name] == 1 else f"{name}.{seen[name]}")
    return out


# -- drawing in rounds ----------------------------------------------------------------------
Draw = Callable[[int, int], pd.DataFrame]  # (rows, seed) -> frame
# (all rows kept so far followed by the new ones, how many were kept) -> (valid mask for the
# new rows, rejected new rows per reason)
Judge = Callable[[pd.DataFrame, int], tuple[np.ndarray, dict[str, int]]]


@dataclass
class DrawStats:
    """What a round-by-round draw did: rows drawn, rows kept, rounds, rejections by reason."""

    drawn: int = 0
    accepted: int = 0
    rounds: int = 0
    rejected: dict[str, int] = field(default_factory=dict)

    @property
    def acceptance(self) -> float:
        return self.accepted / self.drawn if self.drawn else float("nan")


def draw_until(
    draw: Draw,
    n: int,
    seed: int,
    judge: Judge,
    *,
    max_rounds: int,
    max_draws: int | None = None,
    max_growth: int = 64,
) -> tuple[pd.DataFrame, DrawStats]:
    """Draw in seeded rounds, keeping the rows `judge` accepts, until `n` are kept, or
    `max_rounds` rounds or `max_draws` drawn rows have passed. Returns the kept rows (at
    most `n`, in draw order) and the stats; the caller decides whether a shortfall is an
    error. Each round asks for the rows still needed divided by the acceptance rate so
    far (plus 10%), at most `max_growth` times the rows still needed."""
    stats = DrawStats()
    kept: pd.DataFrame | None = None
    while stats.rounds < max_rounds:
        have = 0 if kept is None else len(kept)
        need = n - have
        if need <= 0:
            break
        if stats.drawn == 0:
            ask = need
        elif stats.accepted == 0:
            ask = need * min(max_growth, 4**stats.rounds)
        else:
            ask = math.ceil(need / stats.acceptance * 1.1) + 1
        ask = min(ask, need * max_growth)
        if max_draws is not None:
            ask = min(ask, max_draws - stats.drawn)
            if ask <= 0:
                break
        new = draw(ask, round_seed(seed, stats.rounds)).reset_index(drop=True)
        stats.rounds += 1
        stats.drawn += len(new)
        candidate = new if kept is None else pd.concat([kept, new], ignore_index=True)
        valid, rejected = judge(candidate, have)
        for reason, count in rejected.items():
            stats.rejected[reason] = stats.rejected.get(reason, 0) + count
        stats.accepted += int(valid.sum())
        accepted = new[valid]
        kept = accepted if kept is None else pd.concat([kept, accepted], ignore_index=True)
    if kept is None:
        kept = draw(1, seed).iloc[:0]
    return kept.iloc[:n].reset_index(drop=True), stats


def sample_with_constraints(
    draw: Draw,
    n: int,
    seed: int,
    constraints: Constraints,
    *,
    max_rounds: int = 20,
    max_growth: int = 64,
) -> pd.DataFrame:
    """`n` rows that obey every constraint: draw `draw(rows, seed)` in rounds (round 0 with
    `seed`, later ones with seeds derived from it), keep rows that violate nothing (unique
    values across all rounds), stop at `n`. Same seed -> same output.

    `draw` is e.g. `lambda rows, seed: generator.sample(rows, seed=seed)`; apply
    `generator.reissue_ids` to the result. `constraints` must be fitted. With no
    constraints this is `draw(n, seed)`.

    Raises DataError after `max_rounds` rounds short of `n`, naming the constraints that
    rejected rows and the share of drawn rows each rejected.
    """
    if len(constraints) == 0:
        return draw(n, seed)
    constraints._require_fit()
    enforced = constraints._enforced()

    def judge(candidate: pd.DataFrame, have: int) -> tuple[np.ndarray, dict[str, int]]:
        bad = np.zeros(len(candidate) - have, dtype=bool)
        rejected = {}
        for name, constraint in enforced:
            violating = constraint.violations(candidate)[have:]
            rejected[name] = int(violating.sum())
            bad |= violating
        return ~bad, rejected

    frame, stats = draw_until(draw, n, seed, judge, max_rounds=max_rounds, max_growth=max_growth)
    if len(frame) < n:
        worst = sorted(stats.rejected.items(), key=lambda item: -item[1])
        shares = ", ".join(
            f"{name} rejected {count / stats.drawn:.1%}" for name, count in worst if count
        )
        raise DataError(
            f"constraints: only {stats.accepted:,} of {stats.drawn:,} sampled rows "
            f"({stats.acceptance:.2%}) met every constraint in {stats.rounds} rounds, short of "
            f"the {n:,} rows asked for ({shares}); check that these constraints hold in the "
            "training data and can hold together, loosen or drop them, or ask for fewer rows"
        )
    return frame
