"""The one interface every generator implements, and the machinery they share.

Subclasses set `name`, `modality` and a pydantic `Params` model, and implement the private
`_fit`, `_sample`, `_save` and `_load` on a frame that holds only the columns they model.
The public methods validate input, seed every RNG, strip identifier columns before the
model sees them (ids are re-issued fresh at sampling, so no real identifier is ever
released), and `conform` the output to the input's schema.
"""

from __future__ import annotations

import json
import pickle
import random
import threading
import zipfile
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar, Literal, Self

import numpy as np
import pandas as pd
import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from tqdm.auto import tqdm

from generators.data.schema import Schema
from generators.data.streaming import ParquetSource
from generators.errors import ConfigError, DataError, NotFittedError
from generators.sampling.conditions import MAX_TRIES_FACTOR, check_values, matches, rejection_sample
from generators.seeds import chunk_seed

Device = Literal["auto", "cpu", "cuda"]
# Large samples are drawn in shards of this many rows, each with its own derived seed, so
# memory stays bounded and the output for a given (n, seed) never depends on the machine.
SAMPLE_SHARD_ROWS = 100_000
# The most rows one sample (a run's sample.rows, one `sample` call) may ask for: far below
# FRESH_ID_ROOM, so fresh ids always fit; a larger number is a typo more often than a plan.
MAX_SAMPLE_ROWS = 1_000_000_000
GENERATOR_FILE = "generator.json"
CHECKPOINT_FILE = "checkpoint.pt"
SCHEMA_FILE = "schema.json"
# Streaming fits: rows of the seeded sample the encoding is fitted on (and the validation
# set is taken from), and rows per batch read from the source (see fit_stream).
STREAM_SAMPLE_ROWS = 100_000
STREAM_CHUNK_ROWS = 65_536


class PublicDomain(BaseModel):
    """A column's public domain under `privacy.dp`: its categories (categorical) or its
    [low, high] bounds (numeric; datetimes as ISO strings), e.g. from a codebook."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    categories: list[str] | None = None
    bounds: tuple[float, float] | tuple[str, str] | None = None

    @model_validator(mode="after")
    def _one_of(self) -> PublicDomain:
        if (self.categories is None) == (self.bounds is None):
            raise ValueError("give either categories or bounds")
        if self.bounds is not None:
            low, high = self.bounds
            if isinstance(low, str):
                low, high = pd.Timestamp(low), pd.Timestamp(high)
            elif not (np.isfinite(low) and np.isfinite(high)):
                raise ValueError(f"bounds must be finite numbers: {list(self.bounds)}")
            if not low < high:
                raise ValueError(f"bounds must be [low, high] with low < high: {list(self.bounds)}")
        return self


class DPBudget(BaseModel):
    """A differential-privacy budget for DP-SGD (Opacus): spend at most epsilon at this
    delta, clipping each example's gradient to max_grad_norm. It is also `privacy.dp` in
    the run config (validation.privacy.DPSettings is this class)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    epsilon: float = Field(gt=0)
    delta: float = Field(1e-5, gt=0, lt=1)
    max_grad_norm: float = Field(1.0, gt=0)
    # autoregressive only: the share of epsilon (and of delta) spent on the encoder's value
    # sets, ranges and bins, derived by DP mechanisms where `public_domain` does not give
    # them; DP-SGD gets the rest (simple composition: encoder + SGD <= epsilon, delta).
    encoder_share: float = Field(0.1, gt=0, lt=1)
    # autoregressive only: per column, a domain known without looking at the rows
    # ({categories: [...]} or {bounds: [low, high]}); such a column's categories or range
    # cost no budget. The vae takes ranges and category sets as public (see its _fit).
    public_domain: dict[str, PublicDomain] = {}


class Params(BaseModel):
    """Base for a generator's hyperparameters: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid")


def resolve_device(device: Device) -> str:
    """'auto' -> 'cuda' when a GPU is visible, else 'cpu'; 'cuda' without one is an error."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            "generator.device: 'cuda' was requested but torch sees no CUDA device; "
            "use 'auto' or 'cpu', or install a CUDA build of torch (see README)"
        )
    return device


# The RNGs `seeded` sets are process-wide: two threads inside it at once (Prefect's thread
# task runner, a batch of configs in threads) would draw from each other's streams and
# break "same seed, same output". Seeded sections therefore run one thread at a time;
# processes (runner.kind: processes or dask) run in parallel.
_RNG_LOCK = threading.RLock()


@contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Seed Python's, NumPy's and torch's global RNGs, restoring their state afterwards.

    Holds a process-wide lock meanwhile (see _RNG_LOCK)."""
    with _RNG_LOCK:
        python_state, numpy_state = random.getstate(), np.random.get_state()
        torch_state = torch.random.get_rng_state()
        random.seed(seed)
        np.random.seed(seed % 2**32)
        torch.manual_seed(seed)
        try:
            yield
        finally:
            random.setstate(python_state)
            np.random.set_state(numpy_state)
            torch.random.set_rng_state(torch_state)


def validate_params(params_model: type[Params], params: dict[str, Any], where: str) -> Params:
    """Validate a generator's params, turning pydantic errors into one ConfigError line."""
    try:
        return params_model(**params)
    except ValidationError as error:
        problems = []
        for item in error.errors():
            key = ".".join(str(part) for part in item["loc"])
            if item["type"] == "extra_forbidden":
                known = ", ".join(params_model.model_fields)
                problems.append(f"{where}.{key}: unknown parameter; known: {known}")
            else:
                problems.append(f"{where}.{key}: {item['msg']} (got {item.get('input')!r:.60})")
        raise ConfigError("; ".join(problems)) from None


class Generator(ABC):
    """A generative model of one modality, fitted on a table and sampled as a table."""

    name: ClassVar[str]
    modality: ClassVar[str] = "table"
    Params: ClassVar[type[Params]] = Params
    # True for generators that can train under DP-SGD (a `dp` budget passed to fit).
    supports_dp: ClassVar[bool] = False
    # True where loading must unpickle (SDV's synthesizers): load such models only from a
    # store you trust. Our own models are tensors and JSON; loading never runs code.
    unpickles_on_load: ClassVar[bool] = False
    # True for generators that checkpoint every epoch and resume (fit's checkpoint_dir).
    resumable: ClassVar[bool] = False
    # True for generators that can draw rows with given values directly (`_sample_conditioned`,
    # for the values `_conditions_natively` accepts); the others condition by rejection.
    supports_conditions: ClassVar[bool] = False
    # True for generators that train by minibatches from a stream of row batches
    # (`fit_stream` on a larger-than-memory Parquet source); the others load the whole table.
    supports_streaming: ClassVar[bool] = False

    def __init__(self, device: Device = "auto", **params: Any) -> None:
        self.device = device
        self.params = validate_params(self.Params, params, f"generator.params ({self.name})")
        self.schema_: Schema | None = None
        # Per-epoch training losses, e.g. [{"generator": 1.2, "discriminator": 0.3}, ...];
        # empty for models that do not train by epochs.
        self.losses_: list[dict[str, float]] = []

    # -- public API ----------------------------------------------------------------------
    def fit(
        self,
        data: pd.DataFrame,
        schema: Schema,
        *,
        seed: int = 0,
        dp: DPBudget | None = None,
        checkpoint_dir: Path | None = None,
    ) -> Self:
        """Fit on `data` (rows x the schema's columns, nullable dtypes). Returns self.

        With `dp`, train under differential privacy (generators with `supports_dp` only).
        With `checkpoint_dir`, resumable generators save their training state there after
        every epoch and, called again with the same data and seed, resume from the last
        one (other generators ignore it).
        """
        self._checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
        self.resumed_from_: int | None = None
        if dp is not None and not self.supports_dp:
            raise ConfigError(f"privacy.dp: generator '{self.name}' cannot train under DP-SGD")
        self.dp_ = dp
        if len(data) == 0:
            raise DataError("cannot fit a generator on an empty table")
        self._check_schema(schema, data.columns)
        self.schema_ = schema
        self._id_starts = {name: first_fresh_id(data[name]) for name in schema.names_of("id")}
        return self._seeded_fit(
            seed, lambda modelled: self._fit(data[modelled].reset_index(drop=True))
        )

    def fit_stream(
        self,
        source: ParquetSource,
        schema: Schema,
        *,
        seed: int = 0,
        checkpoint_dir: Path | None = None,
        sample_rows: int = STREAM_SAMPLE_ROWS,
        chunk_rows: int = STREAM_CHUNK_ROWS,
        sample_seed: int | None = None,
    ) -> Self:
        """Fit on the rows of `source` (a `generators.data.streaming.ParquetSource`, e.g. a
        Parquet file larger than memory) without loading them all. Returns self.

        Generators with `supports_streaming` fit their encoding on a seeded uniform sample
        of `sample_rows` rows and train on passes of `chunk_rows`-row batches (each
        generator's `_fit_stream` docstring says what differs from `fit`); at most a
        sample and a few chunks are in memory. Identifier columns are re-issued past the
        largest value in one pass over those columns. The others raise ConfigError. No DP
        (Opacus samples batches from the whole table). Same source and seed, same model.
        `sample_seed` picks the sample (`source.sample(sample_rows, sample_seed)`): give the
        seed the caller's own sample used (the schema's), so the encoder sees the same rows
        and learns no category the schema lacks; default: drawn from `seed`.
        """
        if not self.supports_streaming:
            # The list of streaming generators is RunConfig's (flows/config.py), checked
            # before any run; naming it here would import the registry (an import cycle).
            raise ConfigError(
                f"data.stream: generator '{self.name}' loads the whole table and cannot "
                "train from a stream; use a table generator that can (see "
                "docs/large-data.md), or read the table into memory"
            )
        if sample_rows < 1 or chunk_rows < 1:
            raise ConfigError(
                f"sample_rows and chunk_rows must be >= 1 ({sample_rows}, {chunk_rows})"
            )
        self._checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
        self.resumed_from_ = None
        self.dp_ = None
        self._check_schema(schema, source.columns)
        if len(source) == 0:
            raise DataError(f"{source.path}: no rows to fit a generator on")
        self.schema_ = schema
        ids = schema.names_of("id")
        self._id_starts = dict.fromkeys(ids, 0)
        if ids:  # one pass over the identifier columns only
            for frame in source.select(ids, schema).scan(chunk_rows):
                for name in ids:
                    self._id_starts[name] = max(self._id_starts[name], first_fresh_id(frame[name]))
        return self._seeded_fit(
            seed,
            lambda modelled: self._fit_stream(
                source.select(modelled, schema),
                sample_rows,
                chunk_rows,
                int(np.random.randint(2**31)) if sample_seed is None else sample_seed,
            ),
        )

    def _seeded_fit(self, seed: int, fit: Callable[[list[str]], None]) -> Self:
        """Run `fit(modelled columns)` with every RNG seeded; a failed fit leaves an unfitted
        generator, not a half-fitted one."""
        modelled = self.modelled_columns
        if not modelled:
            raise DataError("every column is an identifier; there is nothing to model")
        self.losses_ = []
        try:
            with seeded(seed):
                fit(modelled)
        except BaseException:
            self.schema_ = None
            raise
        return self

    def _check_schema(self, schema: Schema, columns) -> None:
        """The training columns hold the schema's, and no kind this generator cannot model."""
        missing = [name for name in schema.names if name not in columns]
        if missing:
            raise DataError(f"training data lacks the schema's columns {missing}")
        text = schema.names_of("text")
        if text and self.modality == "table":
            raise DataError(
                f"column(s) {text} hold free text, which table generators would copy verbatim; "
                "drop them (data.drop), or set data.schema.<column>: categorical to model them as "
                "categories"
            )
        images = schema.names_of("image")
        if images and self.modality != "image":
            raise DataError(
                f"column(s) {images} hold images, which {self.modality} generator "
                f"'{self.name}' cannot model; use an image generator (data.modality: image)"
            )

    def sample(self, n: int, *, seed: int) -> pd.DataFrame:
        """Draw `n` rows with the fitted schema's columns, order and dtypes."""
        if self.schema_ is None:
            raise NotFittedError(f"{self.name}: call fit() before sample()")
        if not isinstance(n, int | np.integer) or not 0 < n <= MAX_SAMPLE_ROWS:
            raise DataError(
                f"sample.rows must be a positive integer of at most {MAX_SAMPLE_ROWS:,}, got {n!r}"
            )
        shards = []
        with tqdm(
            total=n, unit="rows", desc=f"sampling {self.name}", disable=n <= SAMPLE_SHARD_ROWS
        ) as progress:
            for index, start in enumerate(range(0, n, SAMPLE_SHARD_ROWS)):
                rows = min(SAMPLE_SHARD_ROWS, n - start)
                with seeded(chunk_seed(seed, index)):
                    shards.append(self._sample(rows).reset_index(drop=True))
                progress.update(rows)
        frame = pd.concat(shards, ignore_index=True)
        for name, id_start in self._id_starts.items():
            frame[name] = fresh_ids(id_start, n, self.schema_[name].dtype)
        return self.schema_.conform(frame)

    def sample_conditioned(
        self,
        n: int,
        values: dict[str, Any],
        *,
        seed: int,
        max_tries_factor: int = MAX_TRIES_FACTOR,
    ) -> pd.DataFrame:
        """Draw `n` rows whose columns equal `values` exactly ({column: value}), with the
        fitted schema's columns, order and dtypes, like `sample`.

        Natively when the generator can (`supports_conditions` and `_conditions_natively`);
        otherwise by rejection from `sample`: seeded rounds, at most
        max(max_tries_factor * n, 10,000) rows drawn. DataError for a column not in the
        table, an identifier column, a category never seen in training, and a condition
        too rare to reach (naming it and its acceptance rate).
        """
        if self.schema_ is None:
            raise NotFittedError(f"{self.name}: call fit() before sample_conditioned()")
        if not isinstance(n, int | np.integer) or n <= 0:
            raise DataError(f"sample.conditions rows must be a positive integer, got {n!r}")
        checked = check_values(self.schema_, values)
        if self.supports_conditions and self._conditions_natively(checked):
            shards = []
            for index, start in enumerate(range(0, n, SAMPLE_SHARD_ROWS)):
                rows = min(SAMPLE_SHARD_ROWS, n - start)
                with seeded(chunk_seed(seed, index)):
                    shards.append(self._sample_conditioned(rows, checked).reset_index(drop=True))
            frame = pd.concat(shards, ignore_index=True)
            for name, id_start in self._id_starts.items():
                frame[name] = fresh_ids(id_start, n, self.schema_[name].dtype)
            frame = self.schema_.conform(frame)
            if not matches(frame, checked).all():  # a bug in a generator's native path
                raise AssertionError(f"{self.name}: native conditioning returned other rows")
            return frame
        frame = rejection_sample(
            lambda rows, draw_seed: self.sample(rows, seed=draw_seed),
            n,
            checked,
            seed,
            max_tries_factor=max_tries_factor,
        )
        return self.reissue_ids(frame)

    def reissue_ids(self, frame: pd.DataFrame, offset: int = 0) -> pd.DataFrame:
        """`frame` with its identifier columns issued afresh (past the largest real id, and
        `offset` further on), so rows gathered from several `sample` calls (or shards
        starting at `offset`) have distinct ids."""
        if self.schema_ is None:
            raise NotFittedError(f"{self.name}: call fit() before reissue_ids()")
        frame = frame.reset_index(drop=True).copy()
        for name, id_start in self._id_starts.items():
            if name in frame.columns:
                frame[name] = fresh_ids(id_start + offset, len(frame), self.schema_[name].dtype)
        return frame

    def reserve_ids(self, frames: pd.DataFrame | Iterable[pd.DataFrame]) -> Self:
        """Fresh identifiers also start past the largest in `frames` (a frame, or batches of
        one): real rows the model did not train on, such as the holdout. With every real row
        reserved, fresh ids are past every real id, so none can equal one. Returns self."""
        if self.schema_ is None:
            raise NotFittedError(f"{self.name}: call fit() before reserve_ids()")
        for frame in [frames] if isinstance(frames, pd.DataFrame) else frames:
            self._reserve_ids_of(frame)
        return self

    def _reserve_ids_of(self, frame: pd.DataFrame) -> None:
        for name, id_start in self._id_starts.items():
            if name in frame.columns:
                self._id_starts[name] = max(id_start, first_fresh_id(frame[name]))

    def save(self, path: Path) -> None:
        """Write the generator to folder `path`: parameters, schema and model state."""
        if self.schema_ is None:
            raise NotFittedError(f"{self.name}: call fit() before save()")
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        meta = {
            "name": self.name,
            "modality": self.modality,
            "device": self.device,
            "params": self.params.model_dump(mode="json"),
            "id_starts": self._id_starts,
            "losses": self.losses_,
        }
        (path / GENERATOR_FILE).write_text(json.dumps(meta, indent=2))
        self.schema_.save(path / SCHEMA_FILE)
        self._save(path)

    @classmethod
    def load(cls, path: Path, *, allow_pickle: bool = False) -> Self:
        """Read a generator written by `save`.

        A class that unpickles its state (`unpickles_on_load`: SDV's synthesizers) is
        refused unless the caller passes `allow_pickle=True`, saying it trusts whoever could
        write the folder: a pickle runs code as it loads."""
        path = Path(path)
        meta = json.loads((path / GENERATOR_FILE).read_text())
        if meta["name"] != cls.name:
            raise DataError(f"{path} holds a '{meta['name']}' generator, not '{cls.name}'")
        if cls.unpickles_on_load and not allow_pickle:
            raise DataError(
                f"{path}: a '{cls.name}' model is saved as a pickle, which runs code as it "
                "loads, and was not loaded; load it only from a store you trust, and then "
                "opt in (synthpipe sample --allow-pickle, or allow_pickle=True)"
            )
        device = meta["device"]
        if device == "cuda" and not torch.cuda.is_available():
            # Trained on a GPU worker, loaded where there is none (a CPU server, a laptop):
            # the state is saved as CPU tensors, so the model samples on the CPU.
            device = "cpu"
        generator = cls(device=device, **meta["params"])
        generator.schema_ = Schema.load(path / SCHEMA_FILE)
        generator._id_starts = meta["id_starts"]
        generator.losses_ = meta["losses"]
        try:
            generator._load(path)
        except pickle.UnpicklingError as error:
            # torch.load(weights_only=True) refuses anything but tensors and plain data.
            raise DataError(
                f"{path}: the model files hold objects other than tensors, which are never "
                f"loaded (they could run code); re-train or re-save the model "
                f"({' '.join(str(error).split())[:160]})"
            ) from None
        except (KeyError, ValueError, OSError, zipfile.BadZipFile) as error:
            # e.g. an .npz (read with allow_pickle=False) that lacks its arrays
            raise DataError(
                f"{path}: the model files are damaged or not this generator's, and were not "
                f"loaded ({type(error).__name__}: {' '.join(str(error).split())[:160]}); "
                "re-train or re-save the model"
            ) from None
        return generator

    # -- checkpoints, for generators that train by epochs ---------------------------------
    def _save_checkpoint(self, epoch: int, state: dict[str, Any]) -> None:
        """After `epoch` epochs: save `state` (tensors and plain values), the losses so far and
        every RNG's state, atomically, when fit was given a checkpoint_dir."""
        if self._checkpoint_dir is None:
            return
        self._checkpoint_dir.mkdir(parents=True, exist_ok=True)
        payload = {
            "epoch": epoch,
            "state": state,
            "losses": self.losses_,
            "rng": _rng_state(),
        }
        path = self._checkpoint_dir / CHECKPOINT_FILE
        temporary = path.with_name(f".{path.name}.tmp")
        torch.save(payload, temporary)
        temporary.replace(path)

    def _load_checkpoint(self, device: torch.device | str) -> tuple[int, dict[str, Any]] | None:
        """(epochs done, state) of the last checkpoint, with every RNG restored to where it
        was; None when there is none. Call it where a fresh run would start its first epoch:
        everything before that must follow from the data and the seed alone."""
        if self._checkpoint_dir is None or not (self._checkpoint_dir / CHECKPOINT_FILE).is_file():
            return None
        payload = torch.load(
            self._checkpoint_dir / CHECKPOINT_FILE, map_location=device, weights_only=True
        )
        self.losses_ = payload["losses"]
        _set_rng_state(payload["rng"])
        self.resumed_from_ = int(payload["epoch"])
        return self.resumed_from_, payload["state"]

    @property
    def modelled_columns(self) -> list[str]:
        """The schema's columns the model itself learns (identifiers are re-issued, not learned)."""
        assert self.schema_ is not None
        return [c.name for c in self.schema_.columns if c.kind != "id"]

    # -- what each model implements ------------------------------------------------------
    @abstractmethod
    def _fit(self, data: pd.DataFrame) -> None:
        """Learn from `data` (only `modelled_columns`, nullable dtypes); RNGs are seeded."""

    def _fit_stream(
        self, source: ParquetSource, sample_rows: int, chunk_rows: int, sample_seed: int
    ) -> None:
        """Learn from `source` (only `modelled_columns`, cast to the schema) in bounded
        memory; RNGs are seeded. Generators with `supports_streaming` implement it."""
        raise NotImplementedError(f"{self.name} does not stream")

    @abstractmethod
    def _sample(self, n: int) -> pd.DataFrame:
        """Return `n` rows of `modelled_columns`, in any dtypes `Schema.conform` can cast."""

    def _conditions_natively(self, values: dict[str, Any]) -> bool:
        """Whether `_sample_conditioned` can draw rows with these (checked) values; only
        asked when `supports_conditions`."""
        return self.supports_conditions

    def _sample_conditioned(self, n: int, values: dict[str, Any]) -> pd.DataFrame:
        """Return `n` rows of `modelled_columns` whose columns equal `values` (normalised by
        `generators.sampling.conditions.check_values`: categories as string labels, numbers as
        floats, booleans as bools); RNGs are seeded. Generators with `supports_conditions`
        implement it."""
        raise NotImplementedError(f"{self.name} does not condition natively")

    @abstractmethod
    def _save(self, path: Path) -> None: ...

    @abstractmethod
    def _load(self, path: Path) -> None: ...


def _rng_state() -> dict[str, Any]:
    """Python's, NumPy's and torch's RNG states as tensors and plain values (what
    torch.load(weights_only=True) accepts)."""
    kind, keys, position, has_gauss, cached = np.random.get_state()
    version, internal, gauss = random.getstate()
    return {
        "python": [version, list(internal), gauss],
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), position, has_gauss, cached],
        "torch": torch.random.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def _set_rng_state(state: dict[str, Any]) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, position, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.cpu().numpy().astype(np.uint32), position, has_gauss, cached))
    torch.random.set_rng_state(state["torch"].cpu())
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


# Fresh integer ids need room above the largest real one: this many (a run never samples
# more rows in one call), or a 1/1024 of a narrow dtype's range.
FRESH_ID_ROOM = 2**40


def first_fresh_id(values: pd.Series) -> int:
    """Fresh integer ids start past the largest real one, so no real id is ever re-issued.

    An integer id column whose largest value leaves no room for fresh ids in its dtype
    (e.g. 2**63 - 1 in int64) is a DataError here, before training, not an overflow after.
    """
    if pd.api.types.is_numeric_dtype(values.dtype) and values.notna().any():
        largest = int(values.max())
        if pd.api.types.is_integer_dtype(values.dtype):
            top = int(np.iinfo(getattr(values.dtype, "numpy_dtype", values.dtype)).max)
            if largest > top - min(FRESH_ID_ROOM, (top + 1) // 1024):
                raise DataError(
                    f"column '{values.name}': identifier {largest} leaves no room for fresh "
                    f"ids below the {values.dtype} maximum {top}; declare "
                    f"data.schema.{values.name} categorical, or list it under data.drop"
                )
        return largest + 1
    return 0


def fresh_ids(start: int, n: int, dtype: str) -> pd.Series:
    numbers = np.arange(start, start + n)
    if "int" in dtype.lower():
        return pd.Series(numbers, dtype=dtype)
    width = len(str(start + n))
    return pd.Series([f"syn-{i:0{width}d}" for i in numbers], dtype=dtype)
