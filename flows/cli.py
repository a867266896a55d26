"""`synthpipe`: run a config, sample a logged model, list generators, deploy and serve.

User errors end in one line on stderr (`error: ...`) and a non-zero exit; with `--json`
the last line on stdout is one JSON object with the run's status, also on failure.
Exit codes: 0 published (or, for `validate`, passed), 1 failed, 3 quarantined (or
checks failed).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
from pathlib import Path

import flows  # noqa: F401  (sets the embedded, offline defaults before Prefect/MLflow load)
from flows.health import probe
from generators.data.secrets import redact
from generators.errors import SynthpipeError

EXIT_FAILED, EXIT_QUARANTINED = 1, 3
# `sample` draws its rows in memory (about rows x columns x 8 bytes, more for text) before
# writing one Parquet file; larger samples belong in a run with sample.shard_rows.
SAMPLE_MAX_ROWS = 10_000_000


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
    sample.add_argument(
        "--rows",
        type=int,
        required=True,
        help=f"rows to draw, at most {SAMPLE_MAX_ROWS:,} (they are held in memory)",
    )
    sample.add_argument(
        "--allow-pickle",
        action="store_true",
        help="also load models saved as pickles (SDV's gaussian_copula, ctgan, tvae, "
        "copulagan, par), which run code as they load: only from a store you trust",
    )
    sample.add_argument(
        "--output", required=True, help="Parquet file to write: a path or an fsspec URL"
    )
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
    _add_approve_command(commands)
    _add_deployment_commands(commands)
    _add_doctor_command(commands)

    args = parser.parse_args(argv)
    handlers = {
        "run": _run,
        "sample": _sample,
        "validate": _validate,
        "generators": _generators,
        "deploy": _deploy,
        "serve": _serve,
        "batch": _batch,
        "ui": _ui,
        "approve": _approve,
        "doctor": _doctor,
    }
    return handlers[args.command](args)


def _add_approve_command(commands) -> None:
    approve = commands.add_parser(
        "approve",
        help="approve a published run's release certificate and move its `published` alias",
        description="Record who approved which release certificate (the SHA-256 of the "
        "run's logged certificate.json) in MLflow tags of the run and its model version, "
        "and move the registered model's `published` alias to that version. Refuses a "
        "quarantined run, a run without a certificate, or a certificate that changed.",
    )
    approve.add_argument(
        "run", help="MLflow run id, or a model URI: models:/adult/3, runs:/<id>/generator"
    )
    approve.add_argument("--by", required=True, help="the approver's name, recorded in MLflow")
    approve.add_argument(
        "--certificate-sha256",
        default=None,
        help="the SHA-256 of the certificate.json you read; refused if it is not the run's",
    )
    approve.add_argument(
        "--tracking-uri",
        default=None,
        help="default: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db",
    )
    approve.add_argument("--json", action="store_true", help="end with one JSON line")


def _approve(args: argparse.Namespace) -> int:
    from flows.approve import PUBLISHED_ALIAS, approve

    try:
        approval = approve(
            args.run,
            args.by,
            tracking_uri=args.tracking_uri,
            certificate_sha256=args.certificate_sha256,
        )
    except SynthpipeError as error:
        return _fail(error, as_json=False, generator=None)
    print(
        f"approved run {approval.run_id} by {approval.approved_by} at {approval.approved_at} "
        f"(certificate SHA-256 {approval.certificate_sha256}); "
        f"models:/{approval.registered_model}@{PUBLISHED_ALIAS} -> version "
        f"{approval.model_version}"
    )
    if args.json:
        print(json.dumps(approval.to_dict()))
    return 0


def _add_deployment_commands(commands) -> None:
    _add_deploy_command(commands)
    _add_serve_command(commands)
    _add_batch_and_ui_commands(commands)


def _configs_and_overrides(command: argparse.ArgumentParser) -> None:
    command.add_argument("configs", type=Path, nargs="+", metavar="CONFIG")
    command.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a key in every config (repeatable); stored with the deployment",
    )


def _schedule_options(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--cron",
        help='e.g. "0 2 * * *" (02:00 daily); default: each config\'s schedule: block',
    )
    command.add_argument("--timezone", help="IANA zone for --cron (default UTC)")


def _add_deploy_command(commands) -> None:
    deploy = commands.add_parser(
        "deploy",
        help="create or update one Prefect deployment per config on a work pool",
        description="Create or update one Prefect deployment per config (named after the "
        "config's name) on a work pool, with its schedule; a worker runs them: "
        "prefect worker start --pool synthpipe. Talks to $PREFECT_API_URL (else the local "
        "database that synthpipe ui serves).",
    )
    _configs_and_overrides(deploy)
    _schedule_options(deploy)
    deploy.add_argument(
        "--pool", default=None, help="work pool (default synthpipe; a process pool is created)"
    )
    deploy.add_argument(
        "--working-dir",
        type=Path,
        default=None,
        help="process pools: folder runs start in (default: the current one)",
    )
    deploy.add_argument(
        "--job-variable",
        dest="job_variables",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override the pool's job template for these deployments, e.g. "
        "--job-variable image=registry/synthpipe:cu126 (value read as YAML; repeatable)",
    )
    deploy.add_argument("--paused", action="store_true", help="create with schedules paused")
    deploy.add_argument("--json", action="store_true", help="end with one JSON line")


def _add_serve_command(commands) -> None:
    serve = commands.add_parser(
        "serve",
        help="serve one deployment per config from this process until Ctrl-C",
        description="Serve one deployment per config from this process (no work pool, no "
        "worker): scheduled and triggered runs start as subprocesses. Needs a Prefect "
        "server: $PREFECT_API_URL, e.g. the one synthpipe ui starts.",
    )
    _configs_and_overrides(serve)
    _schedule_options(serve)
    serve.add_argument("--limit", type=int, default=None, help="most runs at once")


def _add_batch_and_ui_commands(commands) -> None:
    batch = commands.add_parser(
        "batch", help="run many configs as subflows of one batch flow run, in parallel"
    )
    _configs_and_overrides(batch)
    batch.add_argument("--parallel", type=int, default=None, help="configs at once (default 2)")
    batch.add_argument(
        "--gpu-slots",
        type=int,
        default=None,
        help="set the global concurrency limit 'gpu' to this many slots (default: create it "
        "with 1 when missing); runs that use CUDA each hold one",
    )
    batch.add_argument("--json", action="store_true", help="end with one JSON line")

    ui = commands.add_parser(
        "ui",
        help="start the Prefect UI and the MLflow UI on the local stores until Ctrl-C",
        description="Start the Prefect UI (on $PREFECT_HOME's database, where runs without "
        "PREFECT_API_URL are recorded) and the MLflow UI (on the local tracking store) on "
        "127.0.0.1, on free ports unless given; prints both URLs.",
    )
    ui.add_argument(
        "--tracking-uri",
        default=None,
        help="MLflow store to show (default: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db)",
    )
    ui.add_argument(
        "--artifacts",
        type=Path,
        default=Path("mlruns"),
        help="where the MLflow UI keeps artifacts of runs logged through it (default mlruns)",
    )
    ui.add_argument("--prefect-port", type=int, default=None)
    ui.add_argument("--mlflow-port", type=int, default=None)


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

    from flows.result import outcome_of
    from flows.synthesize import synthesize

    _stop_ephemeral_server_with_this_process()
    outcome = outcome_of(synthesize(config, return_state=True))
    # Prefect logs the ephemeral server's shutdown at exit; the run's own verdict (or its
    # error line) must stay the last thing printed.
    logging.getLogger("prefect").setLevel(logging.WARNING)
    if outcome.quarantined:  # finished, but not published
        _print_summary(outcome.value)
        print(f"quarantined: {outcome.message}", file=sys.stderr)
        if args.json:
            print(json.dumps(outcome.value.to_dict()))
        return EXIT_QUARANTINED
    if not outcome.completed:
        error = outcome.value
        if isinstance(error, BaseException) and not isinstance(error, SynthpipeError):
            if args.json:  # a bug: still end with the status line, then keep its traceback
                _fail(f"internal error: {error!r}", True, config.generator.name)
            raise error
        return _fail(
            error, args.json, generator=config.generator.name, modality=config.data.modality
        )
    result = outcome.value
    _print_summary(result)
    if args.json:
        print(json.dumps(result.to_dict()))
    return 0 if result.status == "published" else EXIT_QUARANTINED


def _stop_ephemeral_server_with_this_process() -> None:
    """Without PREFECT_API_URL, Prefect starts a temporary server as a child process and
    stops it at exit, which a kill -9 skips: make that server watch this process instead."""
    if not os.environ.get("PREFECT_API_URL"):
        from flows.prefect_server import watch_ephemeral_server

        watch_ephemeral_server()


def _prefect_api_problem(attempts: int = 3) -> str | None:
    """When PREFECT_API_URL names a server, check it answers before any work starts (with
    backoff: 1 s, 2 s); unset, runs use Prefect's embedded server and need no check."""
    url = os.environ.get("PREFECT_API_URL")
    if not url:
        return None
    problem = probe(url.rstrip("/") + "/health", attempts, timeout_s=5)
    if problem is None:
        return None
    return (
        f"PREFECT_API_URL: cannot reach the Prefect server at {url} after {attempts} tries "
        f"({problem}); start it (prefect server start), or unset PREFECT_API_URL to run on "
        "the embedded server"
    )


def _sample(args: argparse.Namespace) -> int:
    try:
        if not 0 < args.rows <= SAMPLE_MAX_ROWS:
            raise SynthpipeError(
                f"--rows must be a positive integer of at most {SAMPLE_MAX_ROWS:,} (the rows "
                f"are drawn in memory), got {args.rows:,}; for more, run a config with "
                "sample.rows and sample.shard_rows"
            )
        import mlflow

        from flows.model import load_logged_generator
        from flows.tracking import tracking_uri
        from generators.data.parquet import write_parquet
        from generators.data.remote import filesystem, is_remote, local_path

        if is_remote(args.output):  # a missing package or a bad URL fails before any work
            filesystem(args.output, "--output")
        else:  # a path or a file:// URL
            _check_writable_file(Path(local_path(args.output)), "--output")
        mlflow.set_tracking_uri(tracking_uri(args.tracking_uri))
        generator = load_logged_generator(args.model_uri, allow_pickle=args.allow_pickle)
        frame = generator.sample(args.rows, seed=args.seed)
        metadata = {
            "synthpipe.model_uri": args.model_uri,
            "synthpipe.seed": str(args.seed),
            "synthpipe.generator": generator.name,
        }
        write_parquet(generator.schema_.to_arrow(frame), args.output, metadata)
    except SynthpipeError as error:
        return _fail(error, as_json=False, generator=None)
    print(f"wrote {len(frame)} rows x {frame.shape[1]} columns to {args.output}")
    return 0


def _check_writable_file(path: Path, option: str) -> None:
    """`path` can be written as a file: not a folder, and its parent exists or can be made
    (checked before any work, so a mistyped path costs nothing)."""
    if path.is_dir():
        raise SynthpipeError(f"{option} {path}: is a folder; give a file path inside it")
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise SynthpipeError(f"{option} {path}: {parent} is a file, not a folder")


def _validate(args: argparse.Namespace) -> int:
    """Exit 0 when every check passes, 3 when some fail, 1 on bad input."""
    from generators.data.tables import read_table
    from validation.expectations import load_suite, validate_table

    try:
        if args.docs:
            _check_writable_file(args.docs, "--docs")
        suite = load_suite(args.suite)
        if not any(char in str(args.table) for char in "*?[") and not args.table.is_file():
            state = "is a folder" if args.table.is_dir() else "not found"
            raise SynthpipeError(
                f"{args.table}: table file {state}; give a Parquet, CSV or "
                "JSON Lines file (or a glob of them)"
            )
        frame, _ = read_table(str(args.table))
        validation = validate_table(frame, suite)
        if args.docs:
            _write_text_atomic(args.docs, validation.html, "--docs")
    except SynthpipeError as error:
        return _fail(error, as_json=False, generator=None)
    report = validation.report
    if args.json:
        print(json.dumps(report.to_dict(), default=str))
    else:
        print(report.to_markdown())
    return 0 if report.passed else EXIT_QUARANTINED


def _write_text_atomic(path: Path, text: str, option: str) -> None:
    """Write `text` to `path` through a temporary file and a rename: all of it or nothing."""
    temporary = path.with_name(f".{path.name}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary.write_text(text)
        temporary.replace(path)
    except OSError as error:
        with contextlib.suppress(OSError):
            temporary.unlink(missing_ok=True)
        raise SynthpipeError(f"{option} {path}: cannot write ({error.strerror or error})") from None


def _generators(args: argparse.Namespace) -> int:
    from generators.registry import all_generators

    for cls in all_generators():
        summary = (cls.__doc__ or "").strip().splitlines()[0]
        print(f"{cls.name:<18} {cls.modality:<9} {summary}")
    return 0


def _deploy(args: argparse.Namespace) -> int:
    from flows.deploy import DEFAULT_WORK_POOL, deploy_configs

    pool = args.pool or DEFAULT_WORK_POOL
    try:
        problem = _prefect_api_problem()
        if problem:
            raise SynthpipeError(problem)
        made = deploy_configs(
            args.configs,
            args.overrides,
            cron=args.cron,
            timezone=args.timezone,
            work_pool=pool,
            working_dir=args.working_dir,
            paused=True if args.paused else None,
            job_variables=_job_variables(args.job_variables),
        )
    except SynthpipeError as error:
        return _fail(error, as_json=False, generator=None)
    for item in made:
        print(f"deployed {item.describe()} (id {item.deployment_id}, pool {pool})")
    where = os.environ.get("PREFECT_API_URL") or "the local Prefect database (synthpipe ui)"
    print(
        f"runs are scheduled on {where}; start a worker to run them: "
        f"prefect worker start --pool {pool}"
    )
    if args.json:
        print(
            json.dumps(
                [
                    {
                        "deployment": item.full_name,
                        "deployment_id": item.deployment_id,
                        "config_path": item.config_path,
                        "overrides": item.overrides,
                        "cron": item.schedule.cron if item.schedule else None,
                        "timezone": item.schedule.timezone if item.schedule else None,
                        "work_pool": pool,
                    }
                    for item in made
                ]
            )
        )
    return 0


def _job_variables(items: list[str]) -> dict:
    """`--job-variable KEY=VALUE` items as {key: value}, each value read as YAML by the
    strict loader (a repeated key or an alias bomb is a ConfigError naming the option);
    a value that is not valid YAML is kept as the text given."""
    import yaml

    from flows.yaml_strict import load_yaml

    variables = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise SynthpipeError(
                f"--job-variable {item[:80]!r}: expected KEY=VALUE, e.g. image=registry/synthpipe:1"
            )
        try:
            variables[key.strip()] = (
                load_yaml(text, f"--job-variable {key.strip()}") if text else ""
            )
        except (yaml.YAMLError, ValueError, TypeError):
            # e.g. "a: b: c", or the date 2001-02-30 that PyYAML parses but cannot build
            variables[key.strip()] = text
    return variables


def _serve(args: argparse.Namespace) -> int:
    from flows.deploy import serve_configs

    if args.limit is not None and args.limit < 1:
        return _fail(f"--limit must be at least 1, got {args.limit}", False, None)
    if not os.environ.get("PREFECT_API_URL"):
        return _fail(
            "serve needs a Prefect server that outlives it: start one (synthpipe ui, or "
            "prefect server start) and set PREFECT_API_URL=http://127.0.0.1:PORT/api",
            False,
            None,
        )

    def ready(made) -> None:
        for item in made:
            print(f"serving {item.describe()}", flush=True)
        print("Ctrl-C (or SIGTERM) stops serving and pauses the schedules", flush=True)

    try:
        problem = _prefect_api_problem()
        if problem:
            raise SynthpipeError(problem)
        with _interrupted_by_signals():
            serve_configs(
                args.configs,
                args.overrides,
                cron=args.cron,
                timezone=args.timezone,
                limit=args.limit,
                on_ready=ready,
            )
    except SynthpipeError as error:
        return _fail(error, as_json=False, generator=None)
    _drain_prefect_or_exit(SERVE_DRAIN_TIMEOUT_S, 0)
    return 0


SERVE_DRAIN_TIMEOUT_S = 30.0


@contextlib.contextmanager
def _interrupted_by_signals():
    """SIGINT and SIGTERM both raise KeyboardInterrupt here, so a long-running command stops
    cleanly when a terminal, a service manager or a container runtime stops it. SIGINT is
    set explicitly: a process started in the background by a non-interactive shell
    inherits it ignored."""
    import signal

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = {
        signal.SIGINT: signal.signal(signal.SIGINT, signal.default_int_handler),
        signal.SIGTERM: signal.signal(signal.SIGTERM, interrupt),
    }
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _drain_prefect_or_exit(timeout_s: float, code: int) -> None:
    """Send Prefect's buffered logs and events now, waiting at most `timeout_s`; if they do
    not drain, end the process with `code` at once. Prefect otherwise drains them at
    interpreter exit without a time limit, and once (3.9.1, Ctrl-C of a serving process on
    a loaded machine) that wait never returned."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    pending = 0
    for service in (APILogWorker, EventsWorker):
        _, not_done = service.drain_all(timeout=timeout_s)
        pending += len(not_done)
    if pending:
        print(
            f"warning: Prefect's log and event workers did not drain in {timeout_s:.0f} s; "
            "exiting without them",
            file=sys.stderr,
        )
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _batch(args: argparse.Namespace) -> int:
    from flows.batch import DEFAULT_MAX_PARALLEL
    from flows.config import load_config

    parallel = args.parallel if args.parallel is not None else DEFAULT_MAX_PARALLEL
    try:
        if parallel < 1:
            raise SynthpipeError(f"--parallel must be at least 1, got {parallel}")
        if args.gpu_slots is not None and args.gpu_slots < 1:
            raise SynthpipeError(f"--gpu-slots must be at least 1, got {args.gpu_slots}")
        for path in args.configs:  # every config is checked before any work starts
            load_config(path, args.overrides)
        problem = _prefect_api_problem()
        if problem:
            raise SynthpipeError(problem)
    except SynthpipeError as error:
        return _fail(error, as_json=False, generator=None)

    from flows.batch import batch

    _stop_ephemeral_server_with_this_process()
    state = batch(
        [str(path) for path in args.configs],
        list(args.overrides),
        max_parallel=parallel,
        gpu_slots=args.gpu_slots,
        return_state=True,
    )
    logging.getLogger("prefect").setLevel(logging.WARNING)
    items = state.result(raise_on_failure=False)
    if isinstance(items, BaseException):
        raise items  # a bug in the batch flow itself: keep its traceback
    for item in items:
        where = item["output"] or item["error"]
        print(f"{item['status']:<12} {item['name'] or item['config_path']}: {where}")
    if args.json:
        print(json.dumps(items))
    statuses = {item["status"] for item in items}
    if "failed" in statuses:
        return EXIT_FAILED
    return EXIT_QUARANTINED if "quarantined" in statuses else 0


def _ui(args: argparse.Namespace) -> int:
    import time

    from flows.deploy import start_ui
    from flows.tracking import tracking_uri

    store = tracking_uri(args.tracking_uri)
    with _interrupted_by_signals():
        print("starting the Prefect and MLflow servers (a first start takes ~30 s)...", flush=True)
        try:
            ui = start_ui(store, args.artifacts, args.prefect_port, args.mlflow_port)
        except SynthpipeError as error:
            return _fail(error, as_json=False, generator=None)
        except KeyboardInterrupt:
            return 0
        from prefect.settings import get_current_settings

        home = get_current_settings().home
        print(f"Prefect UI: {ui.prefect_url}  (runs in {home})", flush=True)
        print(f"MLflow UI:  {ui.mlflow_url}  (store {store})", flush=True)
        print(
            f"send runs to this Prefect server with PREFECT_API_URL={ui.prefect_url}/api; "
            f"logs in {ui.log_dir}; Ctrl-C stops both",
            flush=True,
        )
        try:
            while ui.prefect.running() and ui.mlflow.running():
                time.sleep(1)
            stopped = ui.prefect if not ui.prefect.running() else ui.mlflow
            print(f"error: {stopped.name} stopped: {stopped.log_tail(300)}", file=sys.stderr)
            return EXIT_FAILED
        except KeyboardInterrupt:
            return 0
        finally:
            ui.stop()


def _add_doctor_command(commands) -> None:
    doctor = commands.add_parser(
        "doctor",
        help="find (and with --fix repair) what killed runs left: RUNNING runs, .staging/ "
        "folders, ephemeral Prefect servers",
        description="List what runs killed mid-way left behind: MLflow runs still RUNNING "
        "whose process is gone, staging folders of runs that are over, ephemeral Prefect "
        "servers whose parent is gone. Exits 1 when something needs repair; with --fix, "
        "repairs it (runs marked FAILED, folders removed, servers stopped). A live run, or "
        "one of another host, is never touched.",
    )
    doctor.add_argument(
        "configs",
        type=Path,
        nargs="*",
        metavar="CONFIG",
        help="check these configs' tracking stores, experiments and output folders "
        "(default: every experiment of --tracking-uri)",
    )
    doctor.add_argument(
        "--tracking-uri",
        default=None,
        help="without configs: default $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db",
    )
    doctor.add_argument("--fix", action="store_true", help="repair what was found")


def _doctor(args: argparse.Namespace) -> int:
    from mlflow.exceptions import MlflowException

    from flows.config import load_config
    from flows.doctor import existing_store, find_repairs
    from flows.run_folder import run_roots
    from flows.tracking import tracking_uri

    try:
        checks = []  # (store or None, run roots, experiment ids or None for all)
        for path in args.configs:
            config = load_config(path)
            client = existing_store(tracking_uri(config.tracking.uri))
            found = client.get_experiment_by_name(config.tracking.experiment) if client else None
            checks.append((client, [run_roots(config)[0]], [found.experiment_id] if found else []))
        if not args.configs:
            checks.append((existing_store(tracking_uri(args.tracking_uri)), [], None))
        repairs = list({r.what: r for c in checks for r in find_repairs(*c)}.values())
    except SynthpipeError as error:
        return _fail(error, as_json=False, generator=None)
    except MlflowException as error:  # an unreachable or broken store
        return _fail(f"tracking store: {str(error).splitlines()[0]}", False, None)
    for repair in repairs:
        if args.fix:
            repair.fix()
        print(f"{'repaired' if args.fix else 'would'}: {repair.what}")
    if not repairs:
        print("nothing to repair")
    return EXIT_FAILED if repairs and not args.fix else 0


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
    # redact: an error raised deep in a library may quote a URL with its credentials
    message = redact(" ".join(str(error).split()))
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
