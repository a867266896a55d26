"""The flow's Prefect tasks: each a thin call into `generators`, `validation` or a Modality.

Tasks take tables, paths and small objects, never live models: `fit` saves the generator
into the run folder and `sample` loads it from there, so a retried or resumed task needs
nothing from memory. Retries are declared on the decorators, with predicates that tell an
I/O failure (retried) from bad input (never retried). Every task has cache_policy=NO_CACHE:
tasks take whole tables, which Prefect's default cache policy would hash on every call,
for nothing.
"""

from __future__ import annotations

import errno
import gzip
import hashlib
import json
import logging
import math
import shutil
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pyarrow as pa
from prefect import task
from prefect.cache_policies import NO_CACHE

from flows.approve import CERTIFICATE_SHA256_TAG
from flows.config import DataConfig, RunConfig
from flows.modalities import Fitted, Modality, Prepared, Sampled, modality_of
from flows.run_folder import (
    CERTIFICATE_DIR,
    CERTIFICATE_HTML,
    CERTIFICATE_JSON,
    CONFIG_FILE,
    EXPECTATIONS_DIR,
    GENERATOR_DIR,
    PLOTS_DIR,
    PREVIEW_FILE,
    REPORT_FILE,
    SAMPLES_FILE,
    SCHEMA_FILE,
    SUITE_FILE,
    SYNTHETIC_FILE,
    TOPICS_FILE,
    RunFolder,
    make_private_dirs,
    remove_if_empty,
)
from flows.tracking import RunTracker
from generators.data.parquet import write_parquet_atomic
from generators.data.remote import upload_folder
from generators.data.schema import Schema, infer_schema
from generators.data.streaming import Holdout, ParquetSource, cast_to_schema
from generators.data.tables import check_drop, check_finite, check_not_empty
from generators.errors import DataError, SynthpipeError
from generators.registry import generator_class, load_generator
from generators.sampling.augment import SYNTHETIC_COLUMN
from generators.sampling.conditions import sample_conditioned
from generators.sampling.constraints import Constraints, sample_with_constraints
from validation import Report
from validation.certificate import file_sha256
from validation.downstream import downstream_report
from validation.expectations import build_suite, validate_table
from validation.protection import Protection, SimilarityFilter, sample_filtered


class _NoTracebackForUserErrors(logging.Filter):
    """Prefect logs every task failure with its traceback; a user error needs only its line."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], SynthpipeError):
            record.exc_info, record.exc_text = None, None
        return True


for _name in ("prefect.task_runs", "prefect.flow_runs"):
    logging.getLogger(_name).addFilter(_NoTracebackForUserErrors())


# OSErrors that stay on a retry: the file is missing or not a file, access is refused, the
# disk is full, over quota or read-only, the name is unusable.
LASTING_ERRNOS = {
    errno.ENOENT,
    errno.ENOTDIR,
    errno.EISDIR,
    errno.EACCES,
    errno.EPERM,
    errno.ENOSPC,
    errno.EDQUOT,
    errno.EROFS,
    errno.ENAMETOOLONG,
    errno.ELOOP,
    errno.EINVAL,
}


def lasting_os_error(error: BaseException | None) -> bool:
    """Whether `error` is an OSError that a retry cannot cure (LASTING_ERRNOS, a bad gzip
    stream), or one with no errno that is no network failure: a library's word for a bad
    format (pyarrow's "Couldn't deserialize thrift", Pillow's unidentified image)."""
    if not isinstance(error, OSError):
        return False
    if isinstance(error, gzip.BadGzipFile) or error.errno in LASTING_ERRNOS:
        return True
    return error.errno is None and not isinstance(error, (ConnectionError, TimeoutError))


def retry_on_io_error(task, task_run, state) -> bool:
    """Retry reads and writes that failed for a passing I/O reason (a flaky network share, a
    timeout), never for bad input or a lasting fault (lasting_os_error): readers wrap
    OSError in a DataError, whose context keeps the OSError."""
    try:
        state.result()
    except Exception as error:
        cause = error.__context__ if isinstance(error, SynthpipeError) else error
        return isinstance(cause, OSError) and not lasting_os_error(cause)
    return False


def retry_unless_user_error(task, task_run, state) -> bool:
    """Retry a crash (a lost GPU, memory, a killed worker thread), never bad input or a
    lasting fault such as a full disk."""
    try:
        state.result()
    except SynthpipeError:
        return False
    except Exception as error:
        return not lasting_os_error(error)
    return False


def write_parquet(table: pa.Table, path: Path, metadata: dict[str, str]) -> Path:
    """write_parquet_atomic, a failed write (full disk, no permission) as a DataError."""
    try:
        return write_parquet_atomic(table, path, metadata)
    except OSError as error:
        raise DataError(
            f"output.dir: cannot write {path} ({error.strerror or error}); free space or "
            "choose a writable output.dir"
        ) from error


IO_RETRIES = {"retries": 2, "retry_delay_seconds": 2, "retry_condition_fn": retry_on_io_error}


# -- ingest -----------------------------------------------------------------------------
@task(**IO_RETRIES, cache_policy=NO_CACHE)
def ingest(data: DataConfig, modality: Modality) -> tuple[pd.DataFrame, Schema]:
    """Read the input table and infer its schema (kinds overridden by data.schema)."""
    return modality.read(data)


@task(retries=1, retry_condition_fn=retry_on_io_error, cache_policy=NO_CACHE)
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
    check_drop(data.drop, source.columns, data.path)
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
    check_enough_for_privacy(len(train), len(holdout), config, modality_of(config))
    return source, cast_to_schema(train, schema), holdout, schema


@task(cache_policy=NO_CACHE)
def split(
    frame: pd.DataFrame, config: RunConfig, modality: Modality
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Seeded train/holdout split; the holdout never reaches the generator. A split too
    small for the privacy checks stops here, before any training."""
    try:
        train, holdout = modality.split(frame, config)
    except DataError as error:  # the split knows the rows, not the file they came from
        raise DataError(f"{config.data.path}: {error}") from None
    check_enough_for_privacy(
        modality.units(train, config), modality.units(holdout, config), config, modality
    )
    return train, holdout


def check_enough_for_privacy(
    train_units: int, holdout_units: int, config: RunConfig, modality: Modality
) -> None:
    """The privacy check compares at least `modality.privacy_min_units` training and holdout
    units (rows; entities of a sequence): a smaller split is a DataError naming the file,
    before training, not a failure after it. Nothing to check with privacy off."""
    least = modality.privacy_min_units
    if not config.privacy.enabled or min(train_units, holdout_units) >= least:
        return
    fraction = config.data.holdout_fraction
    unit = modality.unit_name
    # round(fraction * n) units are held out; both parts need `least`.
    needed = math.ceil(least / min(fraction, 1 - fraction))
    raise DataError(
        f"{config.data.path}: {train_units + holdout_units} {unit} split into "
        f"{train_units} for training and {holdout_units} held out (data.holdout_fraction "
        f"{fraction}); the privacy checks need at least {least} of each: give about "
        f"{needed} {unit} or more, change data.holdout_fraction, or turn the privacy checks "
        "off (privacy.enabled: false)"
    )


@task(cache_policy=NO_CACHE)
def protect(
    train: pd.DataFrame, schema: Schema, privacy, modality: Modality, seed: int
) -> tuple[pd.DataFrame, Schema, Protection]:
    """Before training: merge rare categories and clip isolated extremes (tables, on by
    default); mask PII in text columns when privacy.text.mask_pii_input is set."""
    return modality.protect(train, schema, privacy, seed=seed)


# -- fit and sample ---------------------------------------------------------------------
# One retry: a resumable generator continues from its last epoch's checkpoint.
@task(retries=1, retry_condition_fn=retry_unless_user_error, cache_policy=NO_CACHE)
def fit(
    data: Prepared,
    config: RunConfig,
    modality: Modality,
    folder: RunFolder,
    prefix_columns: list[str] | None = None,
) -> Fitted:
    """Fit the configured generator (under DP-SGD when privacy.dp is set) on the protected
    training table and save it into the run folder.

    Resumable generators checkpoint every epoch under `.checkpoints/<key>`, the key a hash
    of the config and the training rows: a retried task, or the same job re-run after the
    process was killed, resumes there; new data or settings start afresh.
    """
    params = dict(config.generator.params)
    cls = generator_class(config.generator.name, config.data.modality)
    if prefix_columns and "first_columns" in cls.Params.model_fields:
        # An autoregressive model conditions exactly on the columns it generates first:
        # put the conditioned ones there unless the config chose an order.
        params.setdefault("first_columns", prefix_columns)
    generator = cls(device=config.generator.device, **modality.generator_context(config), **params)
    dp = config.privacy.dp
    train, stream = data.model_train, data.stream
    checkpoint_dir = None
    if generator.resumable and dp is None:
        # A stream's rows are its files: the sample alone could stay the same after an edit.
        rows = modality.rows_digest(train) + (stream.fingerprint() if stream is not None else "")
        key = hashlib.sha256((config.digest() + rows).encode()).hexdigest()[:16]
        checkpoint_dir = folder.checkpoints / key
    if stream is not None:  # `train` is the stream's sample: it only keys the checkpoints
        generator.fit_stream(
            stream,
            data.model_schema,
            seed=config.seed,
            checkpoint_dir=checkpoint_dir,
            sample_rows=config.data.stream.sample_rows,
            chunk_rows=config.data.stream.chunk_rows,
            # open_stream's sample: the encoder learns the rows the schema was inferred from
            sample_seed=config.seed,
        )
    else:
        generator.fit(
            train, data.model_schema, seed=config.seed, dp=dp, checkpoint_dir=checkpoint_dir
        )
    # Fresh ids start past every real id, the holdout's too, so none equals a real one.
    if stream is not None:
        ids = data.model_schema.names_of("id")
        holdout = stream.holdout_part().select(ids, data.model_schema)
        generator.reserve_ids(holdout.scan(config.data.stream.chunk_rows) if ids else [])
    else:
        generator.reserve_ids(data.holdout)
    save_generator(generator, modality, folder)
    if checkpoint_dir is not None:
        shutil.rmtree(checkpoint_dir, ignore_errors=True)
        remove_if_empty(folder.checkpoints)
    return Fitted(
        folder.generator,
        list(generator.losses_),
        float(generator.epsilon_spent_) if dp is not None else None,
        float(generator.resumed_from_) if generator.resumed_from_ is not None else None,
        getattr(generator, "dp_details_", None) if dp is not None else None,
    )


def save_generator(generator, modality: Modality, folder: RunFolder) -> None:
    """Save the fitted generator (and what the modality adds) into the run folder; a failed
    write (full disk, quota, no permission) is one DataError naming the folder, which the
    fit task does not retry: training again would only fill the disk again."""
    try:
        generator.save(folder.generator)
        modality.after_fit(generator, folder)
    except OSError as error:
        raise DataError(
            f"output.dir: cannot save the trained model in {folder.generator} "
            f"({error.strerror or error}); free space there or choose another output.dir"
        ) from error


@task(cache_policy=NO_CACHE)
def sample(model_dir: Path, data: Prepared, config: RunConfig) -> Sampled:
    """Draw synthetic rows from the saved generator: data.units_to_sample of them, or each
    condition's rows (natively where the generator can condition, else by rejection);
    through the similarity filter when set, keeping only rows that obey the constraints."""
    # The model this run has just trained into its own owner-only staging folder: the
    # class comes from the config, and unpickling (SDV's models) is trusted here.
    expected = generator_class(config.generator.name, config.data.modality)
    generator = load_generator(model_dir, expected=expected, allow_pickle=True)
    seed, constraints = config.sample_seed, data.constraints
    if data.conditions:
        conditioned = sample_conditioned(generator, data.conditions, seed, constraints=constraints)
        return Sampled(conditioned)
    quantile = config.privacy.similarity_filter_quantile
    similarity = None
    if quantile is not None:
        similarity = SimilarityFilter(data.train, data.holdout, data.schema, quantile)
    dropped = [0.0]

    def draw(n: int, draw_seed: int) -> pd.DataFrame:
        if similarity is None:
            return generator.sample(n, seed=draw_seed)
        kept, count = sample_filtered(generator, n, draw_seed, similarity)
        dropped[0] += count
        return kept

    if constraints is None or not len(constraints):
        synthetic = draw(data.units_to_sample, seed)
    else:
        synthetic = sample_with_constraints(draw, data.units_to_sample, seed, constraints)
        synthetic = generator.reissue_ids(synthetic)
    if similarity is None:
        return Sampled(synthetic)
    return Sampled(
        synthetic, similarity_threshold=similarity.threshold, similarity_dropped=dropped[0]
    )


# -- checks -----------------------------------------------------------------------------
@task(cache_policy=NO_CACHE)
def check_privacy(
    modality: Modality, data: Prepared, synthetic: pd.DataFrame, config: RunConfig
) -> Report:
    """Disclosure risk of the synthetic table against the holdout: the privacy gate."""
    return modality.check_privacy(data.train, data.holdout, synthetic, data.schema, config)


@task(cache_policy=NO_CACHE)
def check_expectations(
    modality: Modality,
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
    real, real_schema, fake = modality.expectation_tables(model_train, synthetic, model_schema)
    suite = build_suite(
        real,
        real_schema,
        # Bands as wide as a real sample's noise at the size of the holdout (the real
        # reference a reader can check) or of the synthetic table, whichever is smaller.
        batch_rows=min(rows, holdout_rows),
        row_count=rows if modality.fixed_row_count else None,
        sigmas=config.validation.sigmas,
        seed=config.seed,
        name=config.name,
    )
    validation = validate_table(fake, suite)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / SUITE_FILE).write_text(json.dumps(suite, indent=1))
    (folder / "validation_result.json").write_text(json.dumps(validation.result, indent=1))
    (folder / "data_docs.html").write_text(validation.html)
    report = validation.report
    modality.more_expectations(report, model_train, synthetic, model_schema, config, folder)
    report.blocking = config.validation.on_failure == "fail"
    return report


@task(cache_policy=NO_CACHE)
def check_fidelity(
    modality: Modality,
    train: pd.DataFrame,
    holdout: pd.DataFrame,
    synthetic: pd.DataFrame,
    schema: Schema,
    config: RunConfig,
    folder: RunFolder,
    fitted: Fitted,
) -> Report:
    """Fidelity scores (informational) and, when validation.plots is on, PNG plots."""
    return modality.check_fidelity(train, holdout, synthetic, schema, config, folder, fitted)


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


# -- write, publish, track --------------------------------------------------------------
@task(**IO_RETRIES, cache_policy=NO_CACHE)
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
    flag = synthetic.get(SYNTHETIC_COLUMN) if SYNTHETIC_COLUMN not in schema.names else None
    table = schema.to_arrow(synthetic)
    if flag is not None:
        table = table.append_column(SYNTHETIC_COLUMN, pa.array(flag.to_numpy(bool), pa.bool_()))
    return write_parquet(table, staging_dir / file_name, metadata)


@task(**IO_RETRIES, cache_policy=NO_CACHE)
def publish(staging_dir: Path, final_dir: Path) -> Path:
    """Move the complete run folder into place in one rename: the last step of a run.

    A failed rename is a DataError naming both folders; its OSError stays the context, so
    a transient one is retried and a lasting one (no space, no permission) is not."""
    make_private_dirs(final_dir.parent)
    try:
        staging_dir.rename(final_dir)
    except OSError as error:
        raise DataError(
            f"output.dir: cannot move the run from {staging_dir} to {final_dir} "
            f"({error.strerror or error}); fix the output folder and run again"
        ) from error
    return final_dir


@task(**IO_RETRIES, cache_policy=NO_CACHE)
def upload(staging_dir: Path, url: str, register: Callable[[], None]) -> str:
    """Upload the complete run folder to the `output.dir` URL, then `register()` the run
    (MLflow), then write `_SUCCESS`; a failure at any step leaves nothing there. The
    `published` alias moves only after this returns (flows.synthesize.promote), so it
    always names a model whose data is there."""
    return upload_folder(staging_dir, url, "output.dir", before_marker=register)


# No retries: logging a model twice would register two versions.
@task(cache_policy=NO_CACHE)
def track(
    tracking_uri: str,
    run_id: str,
    config: RunConfig,
    run_dir: Path,
    reports: list[Report],
    result,
    losses: list[dict[str, float]],
) -> tuple[str | None, str | None, str | None]:
    """Log metrics, losses and artifacts (the release certificate under certificate/, its
    SHA-256 as a tag); for a published run, also the pyfunc model, registered under the
    config's name. The alias `published` is not moved here: it moves
    (flows.synthesize.promote) only once the run's data is on its published path, and with
    output.require_approval only when `synthpipe approve` signs the run off.

    A quarantined run logs its reports only: no preview rows and no model, so MLflow cannot
    hand out data the gate rejected. Returns (model URI, registered name, version).
    """
    tracker = RunTracker.resume(tracking_uri, run_id)
    tracker.log_metrics(result.metrics)
    tracker.log_losses(losses)
    published = result.status == "published"
    names = [CONFIG_FILE, SCHEMA_FILE, REPORT_FILE, *(f"{r.name}.json" for r in reports)]
    topics = f"{GENERATOR_DIR}/{TOPICS_FILE}"
    shown = [PREVIEW_FILE, SAMPLES_FILE, topics] if published else []
    for name in names + [n for n in shown if (run_dir / n).is_file()]:
        tracker.log_artifact(run_dir / name)
    for folder in (EXPECTATIONS_DIR, PLOTS_DIR):  # figures and statistics, never rows
        if (run_dir / folder).is_dir():
            tracker.log_artifacts(run_dir / folder, folder)
    for name in (CERTIFICATE_JSON, CERTIFICATE_HTML):
        tracker.log_artifact(run_dir / name, CERTIFICATE_DIR)
    tracker.set_tags(
        {
            "synthpipe.status": result.status,
            "synthpipe.output": result.output or "",
            # What `synthpipe approve` checks the logged certificate against.
            CERTIFICATE_SHA256_TAG: file_sha256(run_dir / CERTIFICATE_JSON),
        }
    )
    if not published:
        return None, None, None
    registered_name = config.name if config.tracking.register_model else None
    model_uri, version_number = tracker.log_generator(run_dir / GENERATOR_DIR, registered_name)
    if registered_name and version_number:
        model_uri = f"models:/{registered_name}/{version_number}"
    return model_uri, registered_name, version_number
