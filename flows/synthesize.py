"""The `synthesize` flow: one config in, a checked synthetic Parquet dataset out.

    ingest -> split -> protect -> fit -> sample -> check (privacy, expectations, fidelity)
        -> write -> track -> publish

Each task is a thin call into `generators` or `validation`. Tasks pass tables and paths,
never live models: `fit` saves the generator into the run's staging folder and `sample`
loads it from there, so a retried or resumed task needs nothing from memory.

Everything of a run is staged under `<output.dir>/<name>/.staging/<run_id>/` and moved in
one rename once it is complete, so a path holds a whole run or nothing: to
`<output.dir>/<name>/<run_id>/` when every check passed (or the gate was overridden, which
is recorded), else to `<output.dir>/<name>/quarantine/<run_id>/`, and the flow run ends
Failed with the reasons.

An `output.dir` URL (s3://bucket/runs) is staged the same way in `output.local_dir`; a
published run is then uploaded to `<output.dir>/<name>/<run_id>/`, its `_SUCCESS` marker
last, and removed locally. A quarantined run stays in the local folder: rows the gate
rejected never leave the machine.
"""

from __future__ import annotations

import errno
import gzip
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import yaml
from prefect import flow, task, unmapped
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run
from prefect.states import Failed
from prefect.task_runners import ProcessPoolTaskRunner, ThreadPoolTaskRunner

from flows.config import DataConfig, RunConfig, RunnerConfig
from flows.tracking import RunTracker, reachable_tracking_uri
from generators.base import GENERATOR_FILE, DPBudget
from generators.data.parquet import write_parquet_atomic
from generators.data.remote import filesystem, is_remote, join_url, local_path, upload_folder
from generators.data.schema import Schema, infer_schema, normalize_dtypes
from generators.data.split import split_holdout
from generators.data.streaming import Holdout, ParquetSource, cast_to_schema
from generators.data.tables import check_finite, check_not_empty
from generators.errors import DataError, SynthpipeError
from generators.image.data import IMAGE_COLUMN, LABEL_COLUMN, frame_to_pixels, image_grid
from generators.registry import generator_class, load_generator, make_generator
from generators.sampling.augment import merge_augmented, rebalance_plan
from generators.sampling.conditions import Condition, check_values, matches, sample_conditioned
from generators.sampling.constraints import Constraints, sample_with_constraints
from generators.seeds import shard_seed
from generators.sequence.data import SequenceSettings, split_sequences
from generators.text.data import TEXT_COLUMN
from validation import Report
from validation.downstream import downstream_report
from validation.expectations import build_suite, validate_table
from validation.fidelity import fidelity_report
from validation.images import image_features, image_fidelity_report, image_privacy_report
from validation.plots import write_plots
from validation.privacy import PrivacyPolicy, check_policy_columns, privacy_report
from validation.protection import SimilarityFilter, merge_rare_categories, sample_filtered
from validation.sequences import (
    acf_plot,
    sequence_expectation_frame,
    sequence_fidelity_report,
    sequence_privacy_report,
)
from validation.text import (
    mask_pii,
    text_features,
    text_fidelity_report,
    text_privacy_report,
    vocabulary_of,
)

# Every task below has cache_policy=NO_CACHE: tasks take whole tables, which Prefect's
# default cache policy would hash on every call, for nothing.
SYNTHETIC_FILE = "synthetic.parquet"
# sample.shard_rows: synthetic/part-NNNNN.parquet and _manifest.json (readers skip _ files)
SHARDS_DIR = "synthetic"
# data.stream without sample.shard_rows: the synthetic rows are written in parts this big.
STREAM_SHARD_ROWS = 1_000_000
AUGMENTED_FILE = "augmented.parquet"  # augment.merge: real training rows + synthetic rows
SYNTHETIC_FLAG = "synthetic"
QUARANTINE_DIR = "quarantine"
# A run the gate published but the object store refused: kept locally, never lost.
UNSENT_DIR = "unsent"
PREVIEW_ROWS = 20
PERPLEXITY_DOCS = 2000  # holdout documents scored by a text model's perplexity
SAMPLES_FILE = "samples.txt"  # text runs: the first synthetic documents, for reading
EXPECTATIONS_DIR = "expectations"  # suite.json, validation_result.json, data_docs.html
SUITE_FILE = "suite.json"
PLOTS_DIR = "plots"
PRIVATE_DIR_MODE = 0o700
CHECKPOINTS_DIR = ".checkpoints"  # training state of unfinished fits, kept across runs
MAX_REASONS = 10  # failure lines in the Failed state's message; all of them in report.md
VERSIONED_PACKAGES = ["synthpipe", "pandas", "pyarrow", "torch", "sdv", "prefect", "mlflow"]


class _NoTracebackForUserErrors(logging.Filter):
    """Prefect logs every task failure with its traceback; a user error needs only its line."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], SynthpipeError):
            record.exc_info, record.exc_text = None, None
        return True


for _name in ("prefect.task_runs", "prefect.flow_runs"):
    logging.getLogger(_name).addFilter(_NoTracebackForUserErrors())


def _retry_on_io_error(task, task_run, state) -> bool:
    """Retry reads and writes that failed for an I/O reason (a flaky network share), not for
    bad input: readers wrap OSError in a DataError, whose context keeps the OSError."""
    try:
        state.result()
    except Exception as error:
        cause = error.__context__ if isinstance(error, SynthpipeError) else error
        permanent = (FileNotFoundError, PermissionError, IsADirectoryError, gzip.BadGzipFile)
        # A full disk, an exceeded quota or a read-only filesystem stays so on a retry.
        lasting = {errno.ENOSPC, errno.EDQUOT, errno.EROFS}
        return (
            isinstance(cause, OSError)
            and not isinstance(cause, permanent)
            and cause.errno not in lasting
        )
    return False


@dataclass
class RunResult:
    """What a run reports: the CLI prints it, `--json` prints it as one object."""

    status: str  # published | quarantined | failed
    output: str | None
    rows: int
    generator: str
    modality: str
    metrics: dict[str, float] = field(default_factory=dict)
    mlflow_run_id: str | None = None
    flow_run_id: str | None = None
    model_uri: str | None = None
    registered_model: str | None = None
    registered_version: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


# -- tasks: each a thin call into the plain library -------------------------------------
@task(
    retries=2, retry_delay_seconds=2, retry_condition_fn=_retry_on_io_error, cache_policy=NO_CACHE
)
def ingest(data: DataConfig) -> tuple[pd.DataFrame, Schema]:
    """Read the input table and infer its schema (kinds overridden by data.schema)."""
    return data.read()


@task(retries=1, retry_condition_fn=_retry_on_io_error, cache_policy=NO_CACHE)
def open_stream(config: RunConfig) -> tuple[ParquetSource, pd.DataFrame, pd.DataFrame, Schema]:
    """data.stream: the training rows as a ParquetSource, never loaded whole, and seeded
    uniform samples of the training and holdout rows (stream.sample_rows each) that stand
    for them wherever rows must be in memory: the schema, the privacy gate, expectations
    and fidelity. Row r of the files is in the holdout when a hash of (seed, r) falls below
    data.holdout_fraction (generators.data.streaming.Holdout): unstratified, but the same rows on
    every run and machine. Returns (training source, train sample, holdout sample, schema).
    """
    data, settings = config.data, config.data.stream
    source = ParquetSource(data.path, holdout=Holdout(data.holdout_fraction, config.seed))
    unknown = [name for name in data.drop if name not in source.columns]
    if unknown:
        raise DataError(f"data.drop: column(s) {unknown} are not in {data.path}")
    source = source.select([name for name in source.columns if name not in data.drop])
    train = source.sample(settings.sample_rows, config.seed)
    # read_table's checks, on the sample: what the schema and the encoders learn from.
    check_not_empty(train, data.path, f"empty in a sample of {len(train)} rows")
    check_finite(train, data.path)
    schema = infer_schema(train, data.column_kinds, source.arrow_schema)
    source = source.select(source.columns, schema)
    holdout = source.holdout_part().sample(settings.sample_rows, config.seed)
    if len(train) < 2 or len(holdout) < 1:
        raise DataError(
            f"{data.path}: {len(source)} training and {len(holdout)} holdout rows; data.stream "
            "needs more rows (or a larger data.holdout_fraction)"
        )
    return source, cast_to_schema(train, schema), holdout, schema


@task(cache_policy=NO_CACHE)
def split(frame: pd.DataFrame, config: RunConfig) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Seeded train/holdout split; the holdout never reaches the generator."""
    try:
        if config.data.sequence is not None and config.data.modality == "sequence":
            return split_sequences(
                frame, config.data.sequence, config.data.holdout_fraction, config.seed
            )
        return split_holdout(frame, config.data.holdout_fraction, config.seed, config.data.target)
    except DataError as error:  # the split knows the rows, not the file they came from
        raise DataError(f"{config.data.path}: {error}") from None


def _retry_unless_user_error(task, task_run, state) -> bool:
    """Retry a crash (a lost GPU, memory, a killed worker thread), never bad input."""
    try:
        state.result()
    except SynthpipeError:
        return False
    except Exception:
        return True
    return False


# One retry: a resumable generator continues from its last epoch's checkpoint.
@task(retries=1, retry_condition_fn=_retry_unless_user_error, cache_policy=NO_CACHE)
def fit(
    train: pd.DataFrame,
    schema: Schema,
    config: RunConfig,
    model_dir: Path,
    checkpoints: Path,
    prefix_columns: list[str] | None = None,
    stream: ParquetSource | None = None,
) -> tuple[Path, dict[str, float]]:
    """Fit the configured generator (under DP-SGD when privacy.dp is set) and save it.

    Resumable generators checkpoint every epoch under `checkpoints/<key>`, the key a hash
    of the config and the training rows: a retried task, or the same job re-run after the
    process was killed, resumes there; new data or settings start afresh. Returns the
    model folder and figures of the fit (the epsilon spent under DP, the epoch resumed at).
    """
    params = dict(config.generator.params)
    cls = generator_class(config.generator.name, config.data.modality)
    if prefix_columns and "first_columns" in cls.Params.model_fields:
        # An autoregressive model conditions exactly on the columns it generates first:
        # put the conditioned ones there unless the config chose an order.
        params.setdefault("first_columns", prefix_columns)
    if config.data.modality == "sequence":
        generator = cls(device=config.generator.device, sequence=config.data.sequence, **params)
    else:
        generator = make_generator(
            config.generator.name, params, config.generator.device, config.data.modality
        )
    budget = config.privacy.dp
    dp = DPBudget(budget.epsilon, budget.delta, budget.max_grad_norm) if budget else None
    checkpoint_dir = None
    if generator.resumable and dp is None:
        # A stream's rows are its files: the sample alone could stay the same after an edit.
        rows = _rows_digest(train) + (stream.fingerprint() if stream is not None else "")
        key = hashlib.sha256((config.digest() + rows).encode()).hexdigest()[:16]
        checkpoint_dir = checkpoints / key
    if stream is not None:  # `train` is the stream's sample: it only keys the checkpoints
        generator.fit_stream(
            stream,
            schema,
            seed=config.seed,
            checkpoint_dir=checkpoint_dir,
            sample_rows=config.data.stream.sample_rows,
            chunk_rows=config.data.stream.chunk_rows,
            # open_stream's sample: the encoder learns the rows the schema was inferred from
            sample_seed=config.seed,
        )
    else:
        generator.fit(train, schema, seed=config.seed, dp=dp, checkpoint_dir=checkpoint_dir)
    generator.save(model_dir)
    if hasattr(generator, "top_words"):  # topic models: their topics travel with the model
        generator.top_words().to_csv(model_dir / "topics.csv", index=False)
    # Image generators keep sample grids of every few epochs: logged with the plots.
    for epoch, pixels in getattr(generator, "snapshots_", []):
        image_grid(pixels, model_dir.parent / PLOTS_DIR / "epochs" / f"epoch_{epoch:03d}.png")
    if checkpoint_dir is not None:
        shutil.rmtree(checkpoint_dir, ignore_errors=True)
        _remove_if_empty(checkpoints)
    figures = {}
    if dp is not None:
        figures["dp_epsilon_spent"] = float(generator.epsilon_spent_)
    if generator.resumed_from_ is not None:
        figures["resumed_from_epoch"] = float(generator.resumed_from_)
    return model_dir, figures


def _rows_digest(frame: pd.DataFrame) -> str:
    """A digest of a table's rows; image cells count by their bytes."""
    hashable = frame.drop(columns=[IMAGE_COLUMN], errors="ignore")
    digest = hashlib.sha256(str(pd.util.hash_pandas_object(hashable).sum()).encode())
    for cell in frame.get(IMAGE_COLUMN, []):
        digest.update(cell["bytes"] if isinstance(cell, dict) else bytes(cell))
    return digest.hexdigest()


@task(cache_policy=NO_CACHE)
def protect(
    train: pd.DataFrame, schema: Schema, privacy: PrivacyPolicy
) -> tuple[pd.DataFrame, Schema, dict[str, int]]:
    """Merge rare categories before training, when privacy.rare_category_min_count is set;
    mask PII in text columns when privacy.text.mask_pii_input is set."""
    if privacy.text.mask_pii_input and schema.names_of("text"):
        train = train.copy()
        for name in schema.names_of("text"):
            train[name] = mask_pii(train[name])
        return train, schema, {}
    if privacy.rare_category_min_count <= 1:
        return train, schema, {}
    return merge_rare_categories(train, schema, privacy.rare_category_min_count)


@task(cache_policy=NO_CACHE)
def sample(
    model_dir: Path,
    rows: int,
    conditions: list[Condition],
    seed: int,
    train: pd.DataFrame,
    holdout: pd.DataFrame,
    schema: Schema,
    privacy: PrivacyPolicy,
    constraints: Constraints | None,
) -> tuple[pd.DataFrame, dict[str, float]]:
    """Draw synthetic rows from the saved generator: `rows` of them, or each condition's
    rows (natively where the generator can condition, else by rejection); through the
    similarity filter when set, keeping only rows that obey the constraints.

    Returns the rows and the figures of the filters (threshold, rows dropped).
    """
    generator = load_generator(model_dir)
    if conditions:
        return sample_conditioned(generator, conditions, seed, constraints=constraints), {}
    figures: dict[str, float] = {}
    similarity = None
    if privacy.similarity_filter_quantile is not None:
        similarity = SimilarityFilter(train, holdout, schema, privacy.similarity_filter_quantile)
        figures = {"similarity_threshold": similarity.threshold, "similarity_dropped": 0.0}

    def draw(n: int, draw_seed: int) -> pd.DataFrame:
        if similarity is None:
            return generator.sample(n, seed=draw_seed)
        kept, dropped = sample_filtered(generator, n, draw_seed, similarity)
        figures["similarity_dropped"] += dropped
        return kept

    if constraints is None or not len(constraints):
        return draw(rows, seed), figures
    synthetic = sample_with_constraints(draw, rows, seed, constraints)
    return generator.reissue_ids(synthetic), figures


@task(
    retries=2, retry_delay_seconds=2, retry_condition_fn=_retry_on_io_error, cache_policy=NO_CACHE
)
def sample_part(
    model_dir: Path,
    index: int,
    start: int,
    rows: int,
    seed: int,
    schema: Schema,
    parts_dir: Path,
    metadata: dict[str, str],
) -> Path:
    """Rows [start, start + rows) of a sharded sample, written as one Parquet part.

    Identifiers continue from `start`, so they are distinct across parts."""
    generator = load_generator(model_dir)
    frame = generator.reissue_ids(generator.sample(rows, seed=shard_seed(seed, index)), start)
    path = parts_dir / f"part-{index:05d}.parquet"
    try:
        return write_parquet_atomic(schema.to_arrow(frame), path, metadata)
    except OSError as error:
        raise DataError(
            f"output.dir: cannot write {path} ({error.strerror or error}); free space or "
            "choose a writable output.dir"
        ) from error


@flow(name="sample-shards")
def sample_shards(
    model_dir: Path,
    rows: int,
    shard_rows: int,
    seed: int,
    table_schema: Schema,
    parts_dir: Path,
    metadata: dict[str, str],
) -> list[Path]:
    """`rows` synthetic rows as parts of `shard_rows`, sampled by parallel tasks on the
    flow's task runner (runner.kind: threads, processes or dask)."""
    parts_dir.mkdir(parents=True, exist_ok=True)
    starts = list(range(0, rows, shard_rows))
    futures = sample_part.map(
        unmapped(model_dir),
        list(range(len(starts))),
        starts,
        [min(shard_rows, rows - start) for start in starts],
        unmapped(seed),
        unmapped(table_schema),
        unmapped(parts_dir),
        unmapped(metadata),
    )
    return [future.result() for future in futures]


def task_runner(runner: RunnerConfig):
    """The Prefect task runner `runner:` asks for."""
    if runner.kind == "processes":
        return ProcessPoolTaskRunner(max_workers=runner.workers)
    if runner.kind == "dask":
        from prefect_dask import DaskTaskRunner  # only runs that ask for Dask import it

        if runner.address:
            return DaskTaskRunner(address=runner.address)
        workers = runner.workers or os.cpu_count() or 1
        return DaskTaskRunner(
            cluster_kwargs={"n_workers": workers, "threads_per_worker": 1, "processes": True}
        )
    return ThreadPoolTaskRunner(max_workers=runner.workers)


def read_check_sample(parts: list[Path], size: int, seed: int, schema: Schema) -> pd.DataFrame:
    """A seeded sample of about `size` rows across the parts, in part order: what the
    checks judge when the output is too large to hold (each part gives its share)."""
    rng = np.random.default_rng(seed)
    counts = [pq.read_metadata(part).num_rows for part in parts]
    total = sum(counts)
    frames = []
    for part, count in zip(parts, counts, strict=True):
        take = min(count, max(1, round(size * count / total)))
        rows = np.sort(rng.choice(count, take, replace=False))
        frames.append(pq.read_table(part).take(rows).to_pandas())
    return schema.conform(normalize_dtypes(pd.concat(frames, ignore_index=True)))


@task(cache_policy=NO_CACHE)
def check_privacy(
    train: pd.DataFrame,
    holdout: pd.DataFrame,
    synthetic: pd.DataFrame,
    schema: Schema,
    privacy: PrivacyPolicy,
    seed: int,
    target: str | None,
    sequence: SequenceSettings | None = None,
) -> Report:
    """Disclosure risk of the synthetic table against the holdout: the privacy gate."""
    if schema.names_of("image"):
        return image_privacy_report(train, holdout, synthetic, privacy, seed=seed)
    if schema.names_of("text"):
        return text_privacy_report(train, holdout, synthetic, privacy.text, seed=seed)
    if sequence is not None:
        return sequence_privacy_report(
            train, holdout, synthetic, sequence, privacy, seed=seed, schema=schema
        )
    return privacy_report(train, holdout, synthetic, schema, privacy, seed=seed, target=target)


@task(cache_policy=NO_CACHE)
def check_expectations(
    model_train: pd.DataFrame,
    model_schema: Schema,
    synthetic: pd.DataFrame,
    holdout_rows: int,
    config: RunConfig,
    folder: Path,
) -> Report:
    """Build the Great Expectations suite from the training table the generator saw and
    validate the synthetic table with it; write suite.json, validation_result.json and
    data_docs.html into `folder`."""
    rows = len(synthetic)
    if config.data.modality in ("image", "text"):
        # Images and documents are checked through per-item figures (shape, pixel
        # statistics; lengths, vocabulary), a table like any other.
        model_train, model_schema, synthetic = _described(model_train, synthetic, model_schema)
    sequence = config.data.sequence if config.data.modality == "sequence" else None
    suite = build_suite(
        model_train,
        model_schema,
        # Bands as wide as a real sample's noise at the size of the holdout (the real
        # reference a reader can check) or of the synthetic table, whichever is smaller.
        batch_rows=min(rows, holdout_rows),
        row_count=None if sequence else rows,  # sequences: lengths are drawn, not fixed
        sigmas=config.validation.sigmas,
        seed=config.seed,
        name=config.name,
    )
    validation = validate_table(synthetic, suite)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / SUITE_FILE).write_text(json.dumps(suite, indent=1))
    (folder / "validation_result.json").write_text(json.dumps(validation.result, indent=1))
    (folder / "data_docs.html").write_text(validation.html)
    report = validation.report
    if sequence is not None:
        # Per entity (or window): length and each numeric column's lag-1 autocorrelation.
        real_units = sequence_expectation_frame(model_train, sequence, model_schema)
        synthetic_units = sequence_expectation_frame(synthetic, sequence, model_schema)
        unit_suite = build_suite(
            real_units,
            infer_schema(real_units),
            batch_rows=len(synthetic_units),
            sigmas=config.validation.sigmas,
            seed=config.seed,
            name=f"{config.name}-sequences",
        )
        units = validate_table(synthetic_units, unit_suite)
        (folder / "sequence_suite.json").write_text(json.dumps(unit_suite, indent=1))
        (folder / "sequence_data_docs.html").write_text(units.html)
        report.metrics.update({f"sequence.{k}": v for k, v in units.report.metrics.items()})
        report.failures += [f"sequence {line}" for line in units.report.failures]
        report.passed = report.passed and units.report.passed
    report.blocking = config.validation.on_failure == "fail"
    return report


@task(cache_policy=NO_CACHE)
def check_constraints(
    synthetic: pd.DataFrame, train: pd.DataFrame, constraints: Constraints
) -> Report:
    """Rows of the synthetic table violating each constraint: must be zero to publish.
    The training rows' own violations are recorded beside them (a rule the real data
    breaks is worth knowing about)."""
    violations = constraints.violations(synthetic)
    in_train = constraints.violations(train)
    failures = [
        f"constraint {name}: {count} of {len(synthetic)} synthetic rows violate it"
        for name, count in violations.items()
        if count
    ]
    return Report(
        "constraints",
        not failures,
        {f"violations.{name}": float(count) for name, count in violations.items()},
        {"training_violations": in_train},
        failures,
    )


@task(cache_policy=NO_CACHE)
def check_downstream(
    train: pd.DataFrame,
    holdout: pd.DataFrame,
    synthetic: pd.DataFrame,
    schema: Schema,
    target: str,
    config: RunConfig,
) -> Report:
    """The same model trained on real, real + synthetic and synthetic rows, scored on the
    holdout (informational)."""
    return downstream_report(
        train,
        holdout,
        synthetic,
        schema,
        target,
        seed=config.seed,
        max_rows=config.validation.max_rows,
    )


def _prefix_columns(conditions: list[Condition], schema: Schema) -> list[str]:
    """The categorical and boolean columns the conditions fix, in order of appearance."""
    names = dict.fromkeys(name for c in conditions for name in c.values)
    return [n for n in names if n in schema.names and schema[n].kind in ("categorical", "boolean")]


def _conditioned(
    frame: pd.DataFrame, conditions: list[Condition], schema: Schema, seed: int
) -> pd.DataFrame:
    """Real rows mixed as the conditions mix the synthetic ones: the reference that
    conditioned or rebalanced output is validated against. For each condition, rows of
    `frame` that meet it, drawn without replacement in proportion to the condition's rows.
    `frame` itself when there are no conditions (or none is met by a real row)."""
    pools = [(c.rows, frame[matches(frame, check_values(schema, c.values))]) for c in conditions]
    pools = [(rows, pool) for rows, pool in pools if len(pool)]
    if not pools:
        return frame
    total = sum(rows for rows, _ in pools)
    size = min(len(pool) * total / rows for rows, pool in pools)
    parts = [
        pool.sample(max(1, int(size * rows / total)), random_state=seed) for rows, pool in pools
    ]
    return pd.concat(parts, ignore_index=True)


def _described(
    train: pd.DataFrame, synthetic: pd.DataFrame, schema: Schema
) -> tuple[pd.DataFrame, Schema, pd.DataFrame]:
    """(train figures, their schema, synthetic figures) for a modality other than tables."""
    if schema.names_of("image"):
        train_figures, synthetic_figures = image_features(train), image_features(synthetic)
    elif schema.names_of("text"):
        labels = [n for n in schema.names if schema[n].kind in ("categorical", "boolean")]
        label = labels[0] if len(labels) == 1 else None
        vocabulary = vocabulary_of(train[TEXT_COLUMN].dropna())
        train_figures, synthetic_figures = (
            text_features(frame, vocabulary=vocabulary, label_column=label)
            for frame in (train, synthetic)
        )
    else:
        raise DataError(f"no expectations are defined for the columns {schema.names}")
    kinds = {name: "categorical" for name in (LABEL_COLUMN,) if name in train_figures.columns}
    return train_figures, infer_schema(train_figures, kinds), synthetic_figures


@task(cache_policy=NO_CACHE)
def check_fidelity(
    train: pd.DataFrame,
    holdout: pd.DataFrame,
    synthetic: pd.DataFrame,
    schema: Schema,
    config: RunConfig,
    plots_dir: Path,
) -> Report:
    """Fidelity scores (informational) and, when validation.plots is on, PNG plots."""
    if schema.names_of("image"):
        report = image_fidelity_report(
            train,
            holdout,
            synthetic,
            seed=config.seed,
            max_rows=min(config.validation.max_rows, 5000),
        )
        if config.validation.plots:
            written = [
                image_grid(frame_to_pixels(synthetic.head(100)), plots_dir / "synthetic_grid.png"),
                image_grid(frame_to_pixels(train.head(100)), plots_dir / "real_grid.png"),
            ]
            report.details["plots"] = [str(p.relative_to(plots_dir.parent)) for p in written]
        return report
    if config.data.modality == "sequence" and config.data.sequence is not None:
        sequence = config.data.sequence
        report = sequence_fidelity_report(
            train, holdout, synthetic, sequence, seed=config.seed, schema=schema
        )
        if config.validation.plots:
            plots_dir.mkdir(parents=True, exist_ok=True)
            path = acf_plot(train, synthetic, sequence, plots_dir / "acf.png", schema=schema)
            report.details["plots"] = [str(path.relative_to(plots_dir.parent))]
        return report
    if schema.names_of("text"):
        report = text_fidelity_report(
            train, holdout, synthetic, seed=config.seed, max_rows=config.validation.max_rows
        )
        report.details["samples"] = synthetic[TEXT_COLUMN].head(PREVIEW_ROWS).tolist()
        generator = load_generator(plots_dir.parent / "generator")
        if hasattr(generator, "perplexity"):
            # Units differ by model (hmm: its tokens; lda: words; char_lm: characters).
            texts = holdout[TEXT_COLUMN].dropna().head(PERPLEXITY_DOCS).tolist()
            report.metrics["holdout_perplexity"] = float(generator.perplexity(texts))
        return report
    report = fidelity_report(
        train,
        holdout,
        synthetic,
        schema,
        target=config.data.target,
        max_rows=config.validation.max_rows,
        seed=config.seed,
    )
    if config.validation.plots:
        sample_rows = config.validation.max_rows
        written = write_plots(
            train.sample(min(len(train), sample_rows), random_state=config.seed),
            synthetic.sample(min(len(synthetic), sample_rows), random_state=config.seed),
            schema,
            plots_dir,
        )
        report.details["plots"] = [str(path.relative_to(plots_dir.parent)) for path in written]
    return report


@task(
    retries=2, retry_delay_seconds=2, retry_condition_fn=_retry_on_io_error, cache_policy=NO_CACHE
)
def write_output(
    synthetic: pd.DataFrame,
    schema: Schema,
    staging_dir: Path,
    metadata: dict[str, str],
    file_name: str = SYNTHETIC_FILE,
) -> Path:
    """Write the synthetic table as Parquet, with the input's Arrow types, into staging.

    A `synthetic` flag column (augment.merge's real + synthetic table) is kept as bool.
    """
    path = staging_dir / file_name
    flag = synthetic.get(SYNTHETIC_FLAG) if SYNTHETIC_FLAG not in schema.names else None
    table = schema.to_arrow(synthetic)
    if flag is not None:
        table = table.append_column(SYNTHETIC_FLAG, pa.array(flag.to_numpy(bool), pa.bool_()))
    try:
        return write_parquet_atomic(table, path, metadata)
    except OSError as error:
        raise DataError(
            f"output.dir: cannot write {path} ({error.strerror or error}); free space or "
            "choose a writable output.dir"
        ) from error


@task(
    retries=2, retry_delay_seconds=2, retry_condition_fn=_retry_on_io_error, cache_policy=NO_CACHE
)
def publish(staging_dir: Path, final_dir: Path) -> Path:
    """Move the complete run folder into place in one rename: the last step of a run."""
    _make_private_dirs(final_dir.parent)
    staging_dir.rename(final_dir)
    return final_dir


@task(
    retries=2, retry_delay_seconds=2, retry_condition_fn=_retry_on_io_error, cache_policy=NO_CACHE
)
def upload(staging_dir: Path, url: str, register: Callable[[], None]) -> str:
    """Upload the complete run folder to the `output.dir` URL, then `register()` the run
    (MLflow), then write `_SUCCESS`; a failure at any step leaves nothing there, so a
    registered `published` model always has its data. The last step of a run published
    to a URL."""
    return upload_folder(staging_dir, url, "output.dir", before_marker=register)


def run_roots(config: RunConfig) -> tuple[Path, str | None]:
    """The local run root (`<output.dir>/<name>`: staging, checkpoints, quarantine), and
    for a URL output.dir the URL under which published runs are uploaded, else None."""
    if not is_remote(config.output.dir):
        return (Path(local_path(config.output.dir)) / config.name).resolve(), None
    filesystem(config.output.dir, "output.dir")  # a missing package fails now, before training
    local = config.output.local_dir or _default_local_dir()
    return (Path(local).expanduser() / config.name).resolve(), join_url(
        config.output.dir, config.name
    )


def _default_local_dir() -> Path:
    """`synthpipe-<uid>` in the system's temporary folder, created owner-only. The name is
    predictable in a shared /tmp, so a folder someone else made first (to read or plant
    checkpoints trained on real data) is refused, not used."""
    if not hasattr(os, "getuid"):  # no POSIX owners to check
        return Path(tempfile.gettempdir()) / "synthpipe"
    folder = Path(tempfile.gettempdir()) / f"synthpipe-{os.getuid()}"
    try:
        folder.mkdir(mode=PRIVATE_DIR_MODE)
        folder.chmod(PRIVATE_DIR_MODE)
    except FileExistsError:
        pass
    info = folder.lstat()
    if folder.is_symlink() or info.st_uid != os.getuid() or info.st_mode & 0o077:
        raise DataError(
            f"output.local_dir: {folder} exists but is not a private folder of this user "
            f"(owner uid {info.st_uid}, mode {oct(info.st_mode & 0o777)}); set "
            "output.local_dir to a folder of your own"
        )
    return folder


# -- the flow ----------------------------------------------------------------------------
@flow(name="synthesize", log_prints=True)
def synthesize(config: RunConfig) -> RunResult:
    """Train config.generator on config.data, sample, check, publish Parquet, log to MLflow."""
    started = time.perf_counter()
    flow_run_id = flow_run.get_id()
    run_root, remote_root = run_roots(config)
    uri, unreachable = reachable_tracking_uri(config.tracking.uri, config.tracking.fallback_uri)
    if unreachable:
        print(f"MLflow at {unreachable} is unreachable: logging to {uri} (tracking.fallback_uri)")
    tracker = RunTracker(
        uri,
        config.tracking.experiment,
        config.name,
        tags={
            "synthpipe.flow_run_id": str(flow_run_id),
            "synthpipe.generator": config.generator.name,
            "synthpipe.config_hash": config.digest(),
            "synthpipe.modality": config.data.modality,
            **({"synthpipe.tracking_fallback_from": unreachable} if unreachable else {}),
        },
    )
    run_id = tracker.run_id
    staging_dir = run_root / ".staging" / run_id
    try:
        _make_private_dirs(staging_dir)
        tracker.log_params(config.flat())
        timings: dict[str, float] = {}

        stream = None
        with _timed(timings, "ingest_seconds"):
            if config.data.stream is not None:
                stream, train, holdout, schema = open_stream(config)
                input_rows, input_columns = stream.num_rows, len(stream.columns)
            else:
                frame, schema = ingest(config.data)
                input_rows, input_columns = frame.shape
                train, holdout = split(frame, config)
            if config.data.modality == "table":
                check_policy_columns(config.privacy, schema)
        conditions = config.conditions
        if config.augment is not None:
            conditions = rebalance_plan(train, config.augment.target, config.augment, schema)
            if not conditions:
                raise DataError(
                    f"augment: every class of '{config.augment.target}' already meets the "
                    f"'{config.augment.strategy}' goal in {config.data.path}; nothing to generate"
                )
            print("augment: " + ", ".join(f"{c.describe()} x {c.rows}" for c in conditions))
        # For sequences, sample.rows counts entities: by default as many as in training.
        if stream is not None:
            real_units = len(stream)
        elif config.data.modality == "sequence":
            real_units = train[config.data.sequence.entity_column].nunique()
        else:
            real_units = len(train)
        rows = sum(c.rows for c in conditions) if conditions else config.sample.rows or real_units
        (staging_dir / "config.yaml").write_text(
            yaml.safe_dump(config.model_dump(mode="json", by_alias=True), sort_keys=False)
        )
        if stream is not None:
            train_rows, holdout_rows = len(stream), len(stream.holdout_part())
            print(
                f"{input_rows} rows x {input_columns} columns, streamed: {train_rows} train, "
                f"{holdout_rows} holdout; checks use samples of {len(train)} and {len(holdout)}"
            )
        else:
            train_rows, holdout_rows = len(train), len(holdout)
            print(
                f"{input_rows} rows x {input_columns} columns: "
                f"{len(train)} train, {len(holdout)} holdout"
            )

        model_train, model_schema, rare_merged = protect(train, schema, config.privacy)
        constraints = None
        if config.constraints:
            constraints = Constraints(config.constraints).fit(model_train, model_schema)
        with _timed(timings, "fit_seconds"):
            model_dir, fit_figures = fit(
                model_train,
                model_schema,
                config,
                staging_dir / "generator",
                run_root / CHECKPOINTS_DIR,
                _prefix_columns(conditions, model_schema),
                stream,
            )
        shard_rows = config.sample.shard_rows
        if stream is not None and shard_rows is None:
            # A streamed table's synthetic copy may not fit in memory either.
            shard_rows = STREAM_SHARD_ROWS
        sharded = bool(shard_rows and rows > shard_rows)
        with _timed(timings, "sample_seconds"):
            if sharded:
                parts = sample_shards.with_options(task_runner=task_runner(config.runner))(
                    model_dir,
                    rows,
                    shard_rows,
                    config.sample_seed,
                    model_schema,
                    staging_dir / SHARDS_DIR,
                    {
                        "synthpipe.run_id": run_id,
                        "synthpipe.generator": config.generator.name,
                        "synthpipe.seed": str(config.sample_seed),
                        "synthpipe.config_hash": config.digest(),
                    },
                )
                check_rows = max(len(holdout), config.validation.max_rows, config.privacy.max_rows)
                synthetic = read_check_sample(parts, check_rows, config.seed, model_schema)
                protection = {"checked_rows": float(len(synthetic))}
            else:
                synthetic, protection = sample(
                    model_dir,
                    rows,
                    conditions,
                    config.sample_seed,
                    train,
                    holdout,
                    schema,
                    config.privacy,
                    constraints,
                )
        protection["rare_category_rows_merged"] = float(sum(rare_merged.values()))
        if "resumed_from_epoch" in fit_figures:
            timings["resumed_from_epoch"] = fit_figures.pop("resumed_from_epoch")
        protection.update(fit_figures)
        model_schema.save(staging_dir / "schema.json")
        timings["rows_per_second"] = rows / max(timings["sample_seconds"], 1e-9)

        reports = []
        if config.privacy.enabled:
            reports.append(
                check_privacy(
                    train,
                    holdout,
                    synthetic,
                    schema,
                    config.privacy,
                    config.seed,
                    config.data.target,
                    config.data.sequence if config.data.modality == "sequence" else None,
                )
            )
        if config.validation.expectations:
            reports.append(
                check_expectations(
                    _conditioned(model_train, conditions, model_schema, config.seed),
                    model_schema,
                    synthetic,
                    len(holdout),
                    config,
                    staging_dir / EXPECTATIONS_DIR,
                )
            )
        if config.validation.fidelity:
            reports.append(
                check_fidelity(
                    _conditioned(train, conditions, schema, config.seed),
                    _conditioned(holdout, conditions, schema, config.seed),
                    synthetic,
                    schema,
                    config,
                    staging_dir / PLOTS_DIR,
                )
            )
        if constraints is not None:
            reports.append(check_constraints(synthetic, model_train, constraints))
        target = config.data.target or (config.augment.target if config.augment else None)
        if config.validation.downstream and target and config.data.modality == "table":
            reports.append(check_downstream(train, holdout, synthetic, schema, target, config))
        failures, overridden = _gate(reports, config.privacy.override_gate)
        status = "quarantined" if failures else "published"
        metrics = {
            **timings,
            "rows": float(rows),
            "train_rows": float(train_rows),
            "holdout_rows": float(holdout_rows),
        }
        if stream is not None:
            metrics["stream_sample_rows"] = float(len(train))
        metrics.update({f"privacy.{key}": value for key, value in protection.items()})
        for report in reports:
            metrics.update({f"{report.name}.{key}": value for key, value in report.metrics.items()})
        _write_reports(staging_dir, reports, synthetic)

        metadata = {
            "synthpipe.run_id": run_id,
            "synthpipe.flow_run_id": str(flow_run_id),
            "synthpipe.generator": config.generator.name,
            "synthpipe.seed": str(config.sample_seed),
            "synthpipe.config_hash": config.digest(),
            "synthpipe.status": status,
            "synthpipe.gate_overridden": str(overridden).lower(),
            "synthpipe.versions": json.dumps(_versions()),
        }
        final_dir = (
            run_root / run_id if status == "published" else run_root / QUARANTINE_DIR / run_id
        )
        # A URL output.dir receives published runs only; a quarantined one stays local.
        published_url = (
            join_url(remote_root, run_id) if remote_root and status == "published" else None
        )
        # The published schema is the one the generator learned: it knows the rare placeholder.
        if sharded:
            manifest = {
                **metadata,
                "rows": rows,
                "checked_rows": len(synthetic),
                "parts": [path.name for path in parts],
            }
            (staging_dir / SHARDS_DIR / "_manifest.json").write_text(json.dumps(manifest, indent=1))
        else:
            write_output(synthetic, model_schema, staging_dir, metadata)
        if config.augment is not None and config.augment.merge:
            write_output(
                merge_augmented(model_train, synthetic),
                model_schema,
                staging_dir,
                {**metadata, "synthpipe.contents": "real training rows + synthetic rows"},
                AUGMENTED_FILE,
            )
        metrics["total_seconds"] = time.perf_counter() - started

        result = RunResult(
            status=status,
            output=join_url(published_url, SHARDS_DIR if sharded else SYNTHETIC_FILE)
            if published_url
            else str(final_dir / (SHARDS_DIR if sharded else SYNTHETIC_FILE)),
            rows=rows if sharded else len(synthetic),
            generator=config.generator.name,
            modality=config.data.modality,
            metrics=metrics,
            mlflow_run_id=run_id,
            flow_run_id=str(flow_run_id),
        )

        def register() -> None:
            if result.model_uri is None:  # once: a retried upload must not log a 2nd model
                result.model_uri, result.registered_model, result.registered_version = track(
                    tracker.uri, run_id, config, staging_dir, reports, result
                )
                tracker.set_tags(
                    {
                        "synthpipe.gate_overridden": str(overridden).lower(),
                        "synthpipe.gate_failures": " | ".join(failures)[:5000],
                    }
                )
                _summary_artifact(config, result, reports)

        # Everything is logged from staging; only then does the run folder move into place
        # (or, for a URL, get its _SUCCESS marker), so a tracking failure leaves nothing on
        # the published (or quarantine) path.
        if published_url:
            try:
                upload(staging_dir, published_url, register)
            except DataError as error:  # the store failed: keep the run for another try
                kept = publish(staging_dir, run_root / UNSENT_DIR / run_id)
                raise DataError(f"{error}; the run is kept at {kept}") from error
            _remove_staging(staging_dir)
        else:
            register()
            publish(staging_dir, final_dir)
        tracker.end("FINISHED")
        if status == "quarantined":
            # The Prefect run fails with the reasons; the result still travels with the state.
            reasons = "; ".join(failures[:MAX_REASONS])
            if len(failures) > MAX_REASONS:
                reasons += f"; and {len(failures) - MAX_REASONS} more (see report.md)"
            return Failed(message=f"quarantined at {final_dir}: {reasons}", data=result)
        return result
    except BaseException as error:
        tracker.set_tags({"synthpipe.status": "failed", "synthpipe.error": str(error)[:5000]})
        tracker.end("FAILED")
        _remove_staging(staging_dir)
        raise


# No retries: logging a model twice would register two versions.
@task(cache_policy=NO_CACHE)
def track(
    tracking_uri: str,
    run_id: str,
    config: RunConfig,
    run_dir: Path,
    reports: list[Report],
    result: RunResult,
) -> tuple[str | None, str | None, str | None]:
    """Log metrics, losses and artifacts; for a published run, also the pyfunc model,
    registered under the config's name with the alias `published`.

    A quarantined run logs its reports only: no preview rows and no model, so MLflow cannot
    hand out data the gate rejected. Returns (model URI, registered name, version).
    """
    tracker = RunTracker.resume(tracking_uri, run_id)
    tracker.log_metrics(result.metrics)
    tracker.log_losses(json.loads((run_dir / "generator" / GENERATOR_FILE).read_text())["losses"])
    published = result.status == "published"
    names = ["config.yaml", "schema.json", "report.md", *(f"{r.name}.json" for r in reports)]
    shown = ["preview.csv", SAMPLES_FILE, "generator/topics.csv"] if published else []
    for name in names + [n for n in shown if (run_dir / n).is_file()]:
        tracker.log_artifact(run_dir / name)
    for folder in (EXPECTATIONS_DIR, PLOTS_DIR):  # figures and statistics, never rows
        if (run_dir / folder).is_dir():
            tracker.log_artifacts(run_dir / folder, folder)
    tracker.set_tags({"synthpipe.status": result.status, "synthpipe.output": result.output or ""})
    if not published:
        return None, None, None
    registered_name = config.name if config.tracking.register_model else None
    model_uri, version_number = tracker.log_generator(run_dir / "generator", registered_name)
    if registered_name and version_number:
        tracker.set_alias(registered_name, "published", version_number)
        model_uri = f"models:/{registered_name}/{version_number}"
    return model_uri, registered_name, version_number


def _gate(reports: list[Report], override_privacy: bool) -> tuple[list[str], bool]:
    """The failures that quarantine the run, and whether privacy failures were overridden.

    Only blocking reports gate (expectations with on_failure: warn do not); the override
    covers the privacy gate only, never a failed expectation.
    """
    privacy = [line for r in reports if r.name == "privacy" for line in r.failures]
    overridden = bool(privacy) and override_privacy
    failures = [
        line
        for report in reports
        if report.blocking and not (overridden and report.name == "privacy")
        for line in report.failures
    ]
    return failures, overridden


def _write_reports(run_dir: Path, reports: list[Report], synthetic: pd.DataFrame) -> None:
    """<check>.json for each report, report.md with all of them, and preview.csv."""
    for report in reports:
        (run_dir / f"{report.name}.json").write_text(
            json.dumps(report.to_dict(), indent=2, default=str)
        )
    sections = [r.to_markdown() for r in reports]
    if (run_dir / EXPECTATIONS_DIR / "data_docs.html").is_file():
        sections.append(
            f"Great Expectations Data Docs: [{EXPECTATIONS_DIR}/data_docs.html]"
            f"({EXPECTATIONS_DIR}/data_docs.html)"
        )
    plots = [path for r in reports for path in r.details.get("plots", [])]
    if plots:
        sections.append("### plots\n\n" + "\n".join(f"![{Path(p).stem}]({p})" for p in plots))
    (run_dir / "report.md").write_text("\n\n".join(sections) + "\n")
    if TEXT_COLUMN in synthetic.columns and synthetic[TEXT_COLUMN].dtype == "string":
        documents = synthetic[TEXT_COLUMN].head(PREVIEW_ROWS).fillna("").tolist()
        (run_dir / SAMPLES_FILE).write_text("\n\n---\n\n".join(documents) + "\n")
    # Image bytes are no preview: the grid in plots/ is.
    preview = synthetic.head(PREVIEW_ROWS).drop(columns=[IMAGE_COLUMN], errors="ignore")
    preview.to_csv(run_dir / "preview.csv", index=False)


def _make_private_dirs(folder: Path) -> None:
    """Create `folder` and missing parents as owner-only (0o700): a run holds a model
    trained on real data and its reports. Existing folders keep their modes."""
    missing = []
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    try:
        for created in reversed(missing):
            created.mkdir(mode=PRIVATE_DIR_MODE, exist_ok=True)
            created.chmod(PRIVATE_DIR_MODE)  # mkdir's mode is filtered by the umask
    except OSError as error:
        raise DataError(
            f"output.dir: cannot create {error.filename or created} ({error.strerror or error}); "
            "choose a writable output.dir"
        ) from None


def _remove_if_empty(folder: Path) -> None:
    try:
        folder.rmdir()
    except OSError:
        pass


def _remove_staging(staging_dir: Path) -> None:
    """Delete a failed run's staging folder, and its parents if that leaves them empty."""
    shutil.rmtree(staging_dir, ignore_errors=True)
    for parent in (staging_dir.parent, staging_dir.parent.parent):
        try:
            parent.rmdir()
        except OSError:
            break


def _summary_artifact(config: RunConfig, result: RunResult, reports: list[Report]) -> None:
    lines = [
        f"## synthpipe run `{config.name}`: **{result.status}**",
        "",
        f"- generator: `{result.generator}`, rows: {result.rows}",
        f"- output: `{result.output}`",
        f"- MLflow run: `{result.mlflow_run_id}`, model: `{result.model_uri}`",
        "",
        "| metric | value |",
        "|---|---|",
        *[f"| {key} | {value:.4g} |" for key, value in result.metrics.items()],
        "",
        *[report.to_markdown() for report in reports],
    ]
    samples = [t for r in reports for t in r.details.get("samples", [])][:5]
    if samples and result.status == "published":
        lines += ["", "### samples", ""] + [f"> {t[:300]!r}" for t in samples]
    key = re.sub(r"[^a-z0-9-]+", "-", f"synthpipe-{config.name}".lower()).strip("-")
    create_markdown_artifact("\n".join(lines), key=key, description=f"synthpipe run {config.name}")


class _timed:
    def __init__(self, into: dict[str, float], key: str):
        self.into, self.key = into, key

    def __enter__(self):
        self.start = time.perf_counter()

    def __exit__(self, *exc):
        self.into[self.key] = time.perf_counter() - self.start


def _versions() -> dict[str, str]:
    found = {}
    for name in VERSIONED_PACKAGES:
        try:
            found[name] = version(name)
        except Exception:
            found[name] = "unknown"
    return found
