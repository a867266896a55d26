"""`synthpipe`: run a config, sample a logged model, list generators.

User errors end in one line on stderr (`error: ...`) and a non-zero exit; with `--json`
the last line on stdout is one JSON object with the run's status, also on failure.
Exit codes: 0 published (or, for `validate`, passed), 1 failed, 3 quarantined (or
checks failed).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

import flows  # noqa: F401  (sets the embedded, offline defaults before Prefect/MLflow load)
from generators.errors import SynthpipeError

EXIT_FAILED, EXIT_QUARANTINED = 1, 3


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="synthpipe", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser(
        "run", help="train, sample, check and publish as one Prefect flow run"
    )
    run.add_argument("config", type=Path, help="YAML run config, e.g. configs/adult.yaml")
    run.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key, e.g. --set sample.rows=1000 (repeatable)",
    )
    run.add_argument(
        "--json", action="store_true", help="end with one JSON line describing the run"
    )
    run.add_argument(
        "--override-privacy-gate",
        action="store_true",
        help="publish even if a privacy check fails; recorded in MLflow tags and "
        "the Parquet metadata (same as privacy.override_gate: true)",
    )

    sample = commands.add_parser("sample", help="sample rows from a logged generator model")
    sample.add_argument(
        "model_uri", help="e.g. models:/adult/1, models:/adult@published, runs:/<id>/generator"
    )
    sample.add_argument("--rows", type=int, required=True)
    sample.add_argument("--output", type=Path, required=True, help="Parquet file to write")
    sample.add_argument("--seed", type=int, default=0)
    sample.add_argument(
        "--tracking-uri",
        default=None,
        help="default: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db",
    )

    validate = commands.add_parser(
        "validate", help="validate a table with a run's expectation suite (suite.json)"
    )
    validate.add_argument("suite", type=Path, help="a run's expectations/suite.json")
    validate.add_argument("table", type=Path, help="Parquet, CSV or JSON Lines file to check")
    validate.add_argument("--docs", type=Path, help="also write the Data Docs HTML page here")
    validate.add_argument("--json", action="store_true", help="print the report as JSON")

    commands.add_parser("generators", help="list the registered generators")

    args = parser.parse_args(argv)
    handlers = {"run": _run, "sample": _sample, "validate": _validate, "generators": _generators}
    return handlers[args.command](args)


def _run(args: argparse.Namespace) -> int:
    from flows.config import load_config

    try:
        overrides = list(args.overrides)
        if args.override_privacy_gate:
            overrides.append("privacy.override_gate=true")
        config = load_config(args.config, overrides)
    except SynthpipeError as error:
        return _fail(error, args.json, generator=None)

    problem = _prefect_api_problem()
    if problem:
        return _fail(problem, args.json, generator=config.generator.name)

    from flows.synthesize import RunResult, synthesize

    state = synthesize(config, return_state=True)
    # Prefect logs the ephemeral server's shutdown at exit; the run's own verdict (or its
    # error line) must stay the last thing printed.
    logging.getLogger("prefect").setLevel(logging.WARNING)
    if not state.is_completed():
        error = state.result(raise_on_failure=False)
        if isinstance(error, RunResult):  # quarantined: finished, but not published
            _print_summary(error)
            print(f"quarantined: {state.message}", file=sys.stderr)
            if args.json:
                print(json.dumps(error.to_dict()))
            return EXIT_QUARANTINED
        if isinstance(error, BaseException) and not isinstance(error, SynthpipeError):
            if args.json:  # a bug: still end with the status line, then keep its traceback
                _fail(f"internal error: {error!r}", True, config.generator.name)
            raise error
        return _fail(
            error, args.json, generator=config.generator.name, modality=config.data.modality
        )
    result = state.result()
    _print_summary(result)
    if args.json:
        print(json.dumps(result.to_dict()))
    return 0 if result.status == "published" else EXIT_QUARANTINED


def _prefect_api_problem(attempts: int = 3) -> str | None:
    """When PREFECT_API_URL names a server, check it answers before any work starts (with
    backoff: 1 s, 2 s); unset, runs use Prefect's embedded server and need no check."""
    import time
    import urllib.request

    url = os.environ.get("PREFECT_API_URL")
    if not url:
        return None
    problem = ""
    for attempt in range(attempts):
        if attempt:
            time.sleep(2 ** (attempt - 1))
        try:
            with urllib.request.urlopen(url.rstrip("/") + "/health", timeout=5):
                return None
        except (OSError, ValueError) as error:
            problem = " ".join(str(error).split())[:160]
    return (
        f"PREFECT_API_URL: cannot reach the Prefect server at {url} after {attempts} tries "
        f"({problem}); start it (prefect server start), or unset PREFECT_API_URL to run on "
        "the embedded server"
    )


def _sample(args: argparse.Namespace) -> int:
    try:
        if args.rows <= 0:
            raise SynthpipeError(f"--rows must be a positive integer, got {args.rows}")
        import mlflow

        from flows.tracking import tracking_uri
        from generators.tables import write_parquet_atomic

        mlflow.set_tracking_uri(tracking_uri(args.tracking_uri))
        try:
            model = mlflow.pyfunc.load_model(args.model_uri)
        except mlflow.exceptions.MlflowException as error:
            raise SynthpipeError(
                f"{args.model_uri}: cannot load model ({str(error).splitlines()[0]})"
            ) from None
        generator = model.unwrap_python_model().generator
        frame = generator.sample(args.rows, seed=args.seed)
        metadata = {
            "synthpipe.model_uri": args.model_uri,
            "synthpipe.seed": str(args.seed),
            "synthpipe.generator": generator.name,
        }
        write_parquet_atomic(generator.schema_.to_arrow(frame), args.output, metadata)
    except SynthpipeError as error:
        return _fail(error, as_json=False, generator=None)
    print(f"wrote {len(frame)} rows x {frame.shape[1]} columns to {args.output}")
    return 0


def _validate(args: argparse.Namespace) -> int:
    """Exit 0 when every check passes, 3 when some fail, 1 on bad input."""
    from generators.tables import read_table
    from validation.expectations import load_suite, validate_table

    try:
        suite = load_suite(args.suite)
        frame, _ = read_table(str(args.table))
        validation = validate_table(frame, suite)
    except SynthpipeError as error:
        return _fail(error, as_json=False, generator=None)
    if args.docs:
        args.docs.write_text(validation.html)
    report = validation.report
    if args.json:
        print(json.dumps(report.to_dict(), default=str))
    else:
        print(report.to_markdown())
    return 0 if report.passed else EXIT_QUARANTINED


def _generators(args: argparse.Namespace) -> int:
    from generators.registry import all_generators

    for cls in all_generators():
        summary = (cls.__doc__ or "").strip().splitlines()[0]
        print(f"{cls.name:<18} {cls.modality:<9} {summary}")
    return 0


def _print_summary(result) -> None:
    lines = [
        f"status:     {result.status}",
        f"output:     {result.output}",
        f"rows:       {result.rows}  generator: {result.generator}",
        f"mlflow:     run {result.mlflow_run_id}, model {result.model_uri}",
        f"prefect:    flow run {result.flow_run_id}",
    ]
    shown = (
        "fit_seconds",
        "sample_seconds",
        "rows_per_second",
        "fidelity.quality",
        "fidelity.quality_holdout",
        "expectations.success_percent",
        "privacy.dcr_share",
    )
    figures = ", ".join(f"{k}={result.metrics[k]:.3g}" for k in shown if k in result.metrics)
    print("\n".join(lines + [f"metrics:    {figures}"]))


def _fail(
    error: BaseException | object, as_json: bool, generator: str | None, modality: str = "table"
) -> int:
    message = " ".join(str(error).split())
    print(f"error: {message}", file=sys.stderr)
    if as_json:
        print(
            json.dumps(
                {
                    "status": "failed",
                    "error": message,
                    "output": None,
                    "rows": 0,
                    "generator": generator,
                    "modality": modality,
                    "metrics": {},
                    "mlflow_run_id": None,
                    "flow_run_id": None,
                    "model_uri": None,
                }
            )
        )
    return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
