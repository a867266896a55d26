"""The `synthesize` flow: one config in, a checked synthetic Parquet dataset out.

    ingest -> split -> protect -> fit -> sample -> check (privacy, expectations, fidelity)
        -> gate -> write -> track -> publish

Each step below is a few lines over the tasks in `flows.tasks`, which are thin calls into
`generators` or `validation`; what differs by the shape of the data is asked of the run's
`Modality` (flows.modalities), chosen once. Tasks pass tables and paths, never live models:
`fit` saves the generator into the run's staging folder and `sample` loads it from there,
so a retried or resumed task needs nothing from memory.

Everything of a run is staged under `<output.dir>/<name>/.staging/<run_id>/` and moved in
one rename once it is complete, so a path holds a whole run or nothing: to
`<output.dir>/<name>/<run_id>/` when every check passed (or the gate was overridden, which
is recorded), else to `<output.dir>/<name>/quarantine/<run_id>/`, and the flow run ends
Failed with the reasons (flows.run_folder knows these paths).

An `output.dir` URL (s3://bucket/runs) is staged the same way in `output.local_dir`; a
published run is then uploaded to `<output.dir>/<name>/<run_id>/`, its `_SUCCESS` marker
last, and removed locally. A quarantined run stays in the local folder: rows the gate
rejected never leave the machine.
"""

from __future__ import annotations

import json
import time

import pandas as pd
from prefect import flow
from prefect.runtime import flow_run

from flows.approve import APPROVAL_TAG, alias_moves_on_publish
from flows.config import RunConfig
from flows.doctor import clean_up_dead_runs, process_tags
from flows.modalities import Fitted, Modality, Prepared, Sampled, modality_of
from flows.outputs import (
    Timings,
    run_metadata,
    shard_metadata,
    summary_artifact,
    write_certificate,
    write_manifest,
    write_reports,
)
from flows.result import MAX_REASONS, RunResult, quarantined_state
from flows.run_folder import (  # noqa: F401  (re-exported: the run folder's names)
    AUGMENTED_FILE,
    CHECKPOINTS_DIR,
    EXPECTATIONS_DIR,
    PLOTS_DIR,
    QUARANTINE_DIR,
    SAMPLES_FILE,
    SCHEMA_FILE,
    SHARDS_DIR,
    SUITE_FILE,
    SYNTHETIC_FILE,
    UNSENT_DIR,
    RunFolder,
    remove_staging,
)
from flows.shards import read_check_sample, sample_shards, task_runner
from flows.tasks import (
    check_constraints,
    check_downstream,
    check_expectations,
    check_fidelity,
    check_privacy,
    fit,
    ingest,
    open_stream,
    protect,
    publish,
    sample,
    split,
    track,
    upload,
    write_output,
)
from flows.tracking import RunTracker, start_run
from generators.data.schema import Schema
from generators.errors import DataError
from generators.sampling.augment import merge_augmented, rebalance_plan
from generators.sampling.conditions import Condition, check_values, matches
from generators.sampling.constraints import Constraints
from validation import Report
from validation.report import gate

__all__ = ["MAX_REASONS", "RunResult", "synthesize"]

# data.stream without sample.shard_rows: the synthetic rows are written in parts this big.
STREAM_SHARD_ROWS = 1_000_000


# -- the flow ----------------------------------------------------------------------------
@flow(name="synthesize", log_prints=True)
def synthesize(config: RunConfig) -> RunResult:
    """Train config.generator on config.data, sample, check, publish Parquet, log to MLflow."""
    started = time.perf_counter()
    flow_run_id = flow_run.get_id()
    modality = modality_of(config)
    folder = RunFolder.for_config(config)  # a URL output.dir's missing package fails here
    # probes the server; may fall back
    tracker = start_run(config, flow_run_id, process_tags(folder.root))
    try:
        folder.open(tracker.run_id)
        for repaired in clean_up_dead_runs(tracker.client, folder.root, tracker.run_id):
            print(f"repaired what a killed run left: {repaired}")
        tracker.log_params(config.flat())
        timings = Timings()
        with timings("ingest_seconds"):
            data = ingest_data(config, modality)
        data = plan_rows(data, config, modality)
        folder.write_config(config)
        describe(data)
        data = protect_data(data, config, modality)
        with timings("fit_seconds"):
            fitted = fit(data, config, modality, folder, prefix_columns(data))
        with timings("sample_seconds"):
            sampled = draw(fitted, data, config, folder)
        data.model_schema.save(folder.staging / SCHEMA_FILE)
        reports = run_checks(modality, data, sampled, fitted, config, folder)
        failures, overridden = gate(reports, config.privacy.override_gate)
        published = not failures
        status = "published" if published else "quarantined"
        metadata = run_metadata(config, folder.run_id, flow_run_id, status, overridden)
        write_outputs(folder, modality, data, sampled, reports, metadata, config)
        write_certificate(folder.staging, config, data, fitted, reports, (failures, overridden))
        result = RunResult(
            status=status,
            output=folder.output(published, sampled.sharded),
            rows=data.units_to_sample if sampled.sharded else len(sampled.frame),
            generator=config.generator.name,
            modality=config.data.modality,
            metrics=metrics(timings, data, sampled, fitted, reports, started),
            mlflow_run_id=folder.run_id,
            flow_run_id=str(flow_run_id),
        )
        finish(folder, tracker, result, reports, (failures, overridden), config, fitted)
        if not published:
            return quarantined_state(result, failures, folder.final(published))
        return result
    except BaseException as error:
        tracker.fail(error)
        folder.discard()
        raise


# -- the steps ---------------------------------------------------------------------------
def ingest_data(config: RunConfig, modality: Modality) -> Prepared:
    """Read the data (or open the stream), split off the holdout, check column settings."""
    if config.data.stream is not None:
        stream, train, holdout, schema = open_stream(config)
        shape = stream.num_rows, len(stream.columns)
    else:
        frame, schema = ingest(config.data, modality)
        stream, shape = None, frame.shape
        train, holdout = split(frame, config, modality)
    modality.check_schema(config.privacy, schema)
    return Prepared(train, holdout, schema, *shape, stream=stream)


def plan_rows(data: Prepared, config: RunConfig, modality: Modality) -> Prepared:
    """The conditions (augment plans its own) and how many rows (entities) to sample."""
    conditions = config.conditions
    if config.augment is not None:
        conditions = rebalance_plan(data.train, config.augment.target, config.augment, data.schema)
        if not conditions:
            raise DataError(
                f"augment: every class of '{config.augment.target}' already meets the "
                f"'{config.augment.strategy}' goal in {config.data.path}; nothing to generate"
            )
        print("augment: " + ", ".join(f"{c.describe()} x {c.rows}" for c in conditions))
    if data.stream is not None:
        data.train_rows, data.holdout_rows = len(data.stream), len(data.stream.holdout_part())
    else:
        data.train_rows, data.holdout_rows = len(data.train), len(data.holdout)
    # For sequences, sample.rows counts entities: by default as many as in training.
    real_units = data.train_rows if data.stream is not None else modality.units(data.train, config)
    data.conditions = conditions
    data.units_to_sample = (
        sum(c.rows for c in conditions) if conditions else config.sample.rows or real_units
    )
    return data


def describe(data: Prepared) -> None:
    shape = f"{data.input_rows} rows x {data.input_columns} columns"
    if data.stream is not None:
        print(
            f"{shape}, streamed: {data.train_rows} train, {data.holdout_rows} holdout; checks "
            f"use samples of {len(data.train)} and {len(data.holdout)}"
        )
    else:
        print(f"{shape}: {len(data.train)} train, {len(data.holdout)} holdout")


def protect_data(data: Prepared, config: RunConfig, modality: Modality) -> Prepared:
    """The training table the generator sees, and the constraints fitted on it."""
    privacy = config.privacy
    if data.stream is not None:
        # A stream trains from its files, not from this sample: the row-changing protections
        # cannot reach it (RunConfig refuses them when set explicitly).
        privacy = privacy.model_copy(update={"rare_category_min_count": 0, "clip_extremes": False})
    data.model_train, data.model_schema, data.protection = protect(
        data.train, data.schema, privacy, modality, config.seed
    )
    if config.constraints:
        data.constraints = Constraints(config.constraints).fit(data.model_train, data.model_schema)
    return data


def draw(fitted: Fitted, data: Prepared, config: RunConfig, folder: RunFolder) -> Sampled:
    """The synthetic rows: in memory, or in parallel Parquet parts when there are more
    than sample.shard_rows (a stream's: STREAM_SHARD_ROWS) of them."""
    shard_rows = config.sample.shard_rows
    if data.stream is not None and shard_rows is None:
        # A streamed table's synthetic copy may not fit in memory either.
        shard_rows = STREAM_SHARD_ROWS
    rows = data.units_to_sample
    if not (shard_rows and rows > shard_rows):
        return sample(fitted.model_dir, data, config)
    parts = sample_shards.with_options(task_runner=task_runner(config.runner))(
        fitted.model_dir,
        rows,
        shard_rows,
        config.sample_seed,
        data.model_schema,
        folder.shards,
        shard_metadata(config, folder.run_id),
    )
    check_rows = max(len(data.holdout), config.validation.max_rows, config.privacy.max_rows)
    frame = read_check_sample(parts, check_rows, config.seed, data.model_schema)
    return Sampled(frame, parts=parts)


def run_checks(
    modality: Modality,
    data: Prepared,
    sampled: Sampled,
    fitted: Fitted,
    config: RunConfig,
    folder: RunFolder,
) -> list[Report]:
    """Privacy, expectations and fidelity (against real rows mixed as the conditions mix
    the synthetic ones), constraints, and the downstream model where it applies."""
    synthetic, seed, reports = sampled.frame, config.seed, []
    if config.privacy.enabled:
        privacy = check_privacy(modality, data, synthetic, config)
        privacy.details["protection"] = data.protection.to_dict()  # what changed before fit
        reports.append(privacy)
    if config.validation.expectations:
        reference = reference_rows(data.model_train, data.conditions, data.model_schema, seed)
        holdout_rows = len(data.holdout)
        reports.append(
            check_expectations(
                modality,
                reference,
                data.model_schema,
                synthetic,
                holdout_rows,
                config,
                folder.expectations,
            )
        )
    if config.validation.fidelity:
        train = reference_rows(data.train, data.conditions, data.schema, seed)
        holdout = reference_rows(data.holdout, data.conditions, data.schema, seed)
        reports.append(
            check_fidelity(modality, train, holdout, synthetic, data.schema, config, folder, fitted)
        )
    if data.constraints is not None:
        reports.append(check_constraints(synthetic, data.model_train, data.constraints))
    target = config.data.target or (config.augment.target if config.augment else None)
    if modality.downstream and config.validation.downstream and target:
        reports.append(
            check_downstream(data.train, data.holdout, synthetic, data.schema, target, config)
        )
    return reports


def write_outputs(
    folder: RunFolder,
    modality: Modality,
    data: Prepared,
    sampled: Sampled,
    reports: list[Report],
    metadata: dict[str, str],
    config: RunConfig,
) -> None:
    """Reports, preview and the synthetic data (file or shards' manifest) into staging."""
    write_reports(folder.staging, reports, sampled.frame, modality)
    # The published schema is the one the generator learned: it knows the rare placeholder.
    if sampled.sharded:
        rows, checked = data.units_to_sample, len(sampled.frame)
        write_manifest(folder.shards, metadata, rows, checked, sampled.parts)
    else:
        write_output(sampled.frame, data.model_schema, folder.staging, metadata)
    if config.augment is not None and config.augment.merge:
        write_output(
            merge_augmented(data.model_train, sampled.frame),
            data.model_schema,
            folder.staging,
            {**metadata, "synthpipe.contents": "real training rows + synthetic rows"},
            AUGMENTED_FILE,
        )


def metrics(
    timings: Timings,
    data: Prepared,
    sampled: Sampled,
    fitted: Fitted,
    reports: list[Report],
    started: float,
) -> dict[str, float]:
    """Everything the run logs as metrics, in the order it always has."""
    rows = data.units_to_sample
    found = dict(timings)
    if fitted.resumed_from_epoch is not None:
        found["resumed_from_epoch"] = fitted.resumed_from_epoch
    found["rows_per_second"] = rows / max(timings["sample_seconds"], 1e-9)
    found["rows"] = float(rows)  # entities, for sequences
    found["train_rows"], found["holdout_rows"] = float(data.train_rows), float(data.holdout_rows)
    if data.stream is not None:
        found["stream_sample_rows"] = float(len(data.train))
    protection = {}
    if sampled.sharded:
        protection["checked_rows"] = float(len(sampled.frame))
    if sampled.similarity_threshold is not None:
        protection["similarity_threshold"] = sampled.similarity_threshold
        protection["similarity_dropped"] = sampled.similarity_dropped
    protection["rare_category_rows_merged"] = float(sum(data.protection.merged.values()))
    protection["extreme_rows_clipped"] = float(sum(data.protection.clipped.values()))
    if fitted.dp_epsilon_spent is not None:
        protection["dp_epsilon_spent"] = fitted.dp_epsilon_spent
    if fitted.dp_details is not None:  # the shares of a simple composition
        for key in (
            "epsilon_encoder",
            "epsilon_marginals",
            "epsilon_sgd",
            "delta_encoder",
            "delta_sgd",
        ):
            protection[f"dp_{key}"] = float(fitted.dp_details[key])
    found.update({f"privacy.{key}": value for key, value in protection.items()})
    for report in reports:
        found.update({f"{report.name}.{key}": value for key, value in report.metrics.items()})
    found["total_seconds"] = time.perf_counter() - started
    return found


def dp_tags(fitted: Fitted) -> dict[str, str]:
    """Under privacy.dp, where the generator records it: the unit of privacy, the batch
    sampling, the composition and each column's source (public or DP) as tags."""
    details = fitted.dp_details
    if details is None:
        return {}
    return {
        "synthpipe.dp.unit": str(details["unit"]),
        "synthpipe.dp.sampling": str(details["sampling"]),
        "synthpipe.dp.composition": str(details["composition"]),
        "synthpipe.dp.columns": json.dumps(details["columns"], sort_keys=True)[:5000],
    }


def finish(
    folder: RunFolder,
    tracker: RunTracker,
    result: RunResult,
    reports: list[Report],
    verdict: tuple[list[str], bool],
    config: RunConfig,
    fitted: Fitted,
) -> None:
    """Log the run (once), then move the run folder into place, or upload it to the URL
    output.dir with `_SUCCESS` last; then end the MLflow run."""
    failures, overridden = verdict

    def register() -> None:
        if result.model_uri is None:  # once: a retried upload must not log a 2nd model
            result.model_uri, result.registered_model, result.registered_version = track(
                tracker.uri, folder.run_id, config, folder.staging, reports, result, fitted.losses
            )
            tracker.set_tags(
                {
                    "synthpipe.gate_overridden": str(overridden).lower(),
                    "synthpipe.gate_failures": " | ".join(failures)[:5000],
                    **dp_tags(fitted),
                }
            )
            summary_artifact(config, result, reports)

    # Everything is logged from staging; only then does the run folder move into place
    # (or, for a URL, get its _SUCCESS marker), so a tracking failure leaves nothing on
    # the published (or quarantine) path. The alias moves last of all: a failed rename or
    # upload leaves `published` on the run before, whose data is where it says.
    published = result.status == "published"
    url = folder.url(published)
    if url:
        try:
            upload(folder.staging, url, register)
        except DataError as error:  # the store failed: keep the run for another try
            kept = publish(folder.staging, folder.unsent)
            raise DataError(f"{error}; the run is kept at {kept}") from error
        remove_staging(folder.staging)
    else:
        register()
        publish(folder.staging, folder.final(published))
    promote(tracker, config, result)
    tracker.end("FINISHED")


def promote(tracker: RunTracker, config: RunConfig, result: RunResult) -> None:
    """Point the registered model's alias `published` at this run's version. Called only
    once the run's data is on its published path (renamed into place, or uploaded with its
    `_SUCCESS` marker), so `models:/<name>@published` never names a model whose data is
    not there. A quarantined or unregistered run moves nothing; with
    output.require_approval the run is tagged pending and `synthpipe approve` moves it."""
    if result.status == "published" and result.registered_model and result.registered_version:
        if alias_moves_on_publish(config):
            tracker.set_alias(result.registered_model, "published", result.registered_version)
        else:
            tracker.set_tags({APPROVAL_TAG: "pending"})


# -- conditions --------------------------------------------------------------------------
def prefix_columns(data: Prepared) -> list[str]:
    """The categorical and boolean columns the conditions fix, in order of appearance."""
    schema = data.model_schema
    names = dict.fromkeys(name for c in data.conditions for name in c.values)
    return [n for n in names if n in schema.names and schema[n].kind in ("categorical", "boolean")]


def reference_rows(
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
