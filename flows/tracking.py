"""MLflow tracking for one run: the only module that talks to MLflow.

Default store: a SQLite file `mlflow.db` in the working directory (artifacts under
`mlruns/`), no server. `tracking.uri` in the config or `$MLFLOW_TRACKING_URI` points
elsewhere. Every call names the run id explicitly, so logging works from any thread
Prefect runs a task in.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import time
from collections import Counter
from collections.abc import Iterable
from importlib.metadata import version
from pathlib import Path
from urllib.parse import urlsplit

try:
    import fcntl
except ImportError:  # Windows: no flock; two first runs at once there may still collide
    fcntl = None

import mlflow
from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

import generators
from flows.config import TRACKING_SECRET_HINT
from flows.health import probe
from flows.model import GENERATOR_ARTIFACT, INPUT_EXAMPLE, SIGNATURE
from generators.data.remote import credential_in
from generators.data.secrets import redact
from generators.errors import ConfigError, SynthpipeError

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
MAX_PARAM_CHARS = 6000  # MLflow's limit for one param value
MAX_KEY_CHARS = 250  # MLflow's limit for a param or metric key (data.schema.<column>, ...)
DIGEST_CHARS = 8  # ends a key that had to be cut or told apart (mlflow_keys)
# A tracking server is probed before any work starts: a run should fail in seconds, not
# after an hour of training, when the server is down.
PROBE_ATTEMPTS = 3
PROBE_TIMEOUT_S = 5
REQUIREMENTS = [
    "pandas",
    "pyarrow",
    "numpy",
    "scipy",
    "sdv",
    "torch",
    "opacus",
    "mlflow",
    "scikit-learn",
    "pydantic",
    "tqdm",
]
# The logged model carries the code it needs, so it loads where synthpipe is not installed.
CODE_PATHS = [str(Path(__file__).resolve().parent), str(Path(generators.__file__).resolve().parent)]


def mlflow_keys(names: Iterable[str]) -> dict[str, str]:
    """Each name's MLflow key (params, metrics): `_key(name)`, unique and at most
    MAX_KEY_CHARS long. A key that is too long, or that a changed name shares with another
    name (`a?b` and `a!b` both sanitise to `a_b`), is cut and ends in `-` and a digest of
    the name instead, so no value is refused or silently overwrites another's."""
    plain = {name: _key(name) for name in names}
    shared = Counter(plain.values())
    keys = {}
    for name, key in plain.items():
        if len(key) > MAX_KEY_CHARS or (shared[key] > 1 and key != name):
            digest = hashlib.sha256(name.encode()).hexdigest()[:DIGEST_CHARS]
            key = f"{key[: MAX_KEY_CHARS - DIGEST_CHARS - 1]}-{digest}"
        keys[name] = key
    return keys


def _key(name: str) -> str:
    """MLflow accepts letters, digits, _ - . / space and :; column names may hold anything."""
    # Comparison signs are spelled out, so class labels such as "<=50K" and ">50K" (in
    # metric names like recall.<label>) stay distinct.
    for sign, word in (("<=", "le"), (">=", "ge"), ("<", "lt"), (">", "gt"), ("=", "eq")):
        name = name.replace(sign, word)
    return re.sub(r"[^\w./ :-]", "_", name)


def tracking_uri(configured: str | None) -> str:
    """The configured URI, else $MLFLOW_TRACKING_URI, else the local SQLite store. A URI
    from the environment with a credential in it is refused (ConfigError) like one in the
    config: the URI is printed, tagged and logged."""
    if configured:
        return configured
    from_env = os.environ.get("MLFLOW_TRACKING_URI")
    if from_env:
        held = credential_in(from_env)
        if held:
            raise ConfigError(f"MLFLOW_TRACKING_URI: holds {held}, {TRACKING_SECRET_HINT}")
        return from_env
    return DEFAULT_TRACKING_URI


class TrackingUnavailable(SynthpipeError):
    """The MLflow tracking server cannot be reached (and no fallback is configured)."""


def reachable_tracking_uri(
    configured: str | None, fallback: str | None, attempts: int = PROBE_ATTEMPTS
) -> tuple[str, str | None]:
    """The tracking URI to log to, checked before any work starts.

    A server URI (http/https) is probed at its /health endpoint, `attempts` times with
    exponential backoff (1 s, 2 s, ...). When it never answers, use `fallback` if given;
    else raise TrackingUnavailable. Returns (uri, the unreachable primary or None).
    """
    uri = tracking_uri(configured)
    if urlsplit(uri).scheme not in ("http", "https"):
        return uri, None
    problem = probe(uri.rstrip("/") + "/health", attempts, PROBE_TIMEOUT_S)
    if problem is None:
        return uri, None
    if fallback:
        return tracking_uri(fallback), uri
    raise TrackingUnavailable(
        f"tracking.uri: cannot reach the MLflow server at {redact(uri)} after {attempts} "
        f"tries ({problem}); start it, fix tracking.uri, or set tracking.fallback_uri (e.g. "
        "sqlite:///mlflow.db) to log locally when it is down"
    )


def start_run(config, flow_run_id, process: dict[str, str] | None = None) -> RunTracker:
    """The MLflow run of one flow run, on the reachable tracking store (tracking.uri, else
    tracking.fallback_uri when its server is down), tagged with what the run is and with
    `process` (flows.doctor.process_tags: which process runs it, so a later doctor can
    tell a killed run from a live one)."""
    uri, unreachable = reachable_tracking_uri(config.tracking.uri, config.tracking.fallback_uri)
    if unreachable:
        print(
            f"MLflow at {redact(unreachable)} is unreachable: logging to {redact(uri)} "
            "(tracking.fallback_uri)"
        )
    return RunTracker(
        uri,
        config.tracking.experiment,
        config.name,
        tags={
            "synthpipe.flow_run_id": str(flow_run_id),
            "synthpipe.generator": config.generator.name,
            "synthpipe.config_hash": config.digest(),
            "synthpipe.modality": config.data.modality,
            **({"synthpipe.tracking_fallback_from": redact(unreachable)} if unreachable else {}),
            **(process or {}),
        },
    )


def private_local_store(uri: str) -> None:
    """A local SQLite store is created owner-only (0600), or made so when this user owns it:
    it holds every param, tag and metric of every run, as private as the run folder."""
    path = _sqlite_path(uri)
    if path is None:
        return
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
    _owner_only(path, 0o600)


@contextlib.contextmanager
def store_lock(uri: str):
    """For a local SQLite store, hold an exclusive lock on `<file>.lock` beside it (created
    owner-only), so only one process at a time creates or migrates its tables; for any
    other store, nothing."""
    path = _sqlite_path(uri)
    if path is None or fcntl is None:
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path.with_name(path.name + ".lock"), os.O_CREAT | os.O_RDWR, 0o600)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)  # releases the lock


def _sqlite_path(uri: str) -> Path | None:
    """The file of a local `sqlite:///` store, None for any other (or in-memory) store."""
    if not uri.startswith("sqlite:///"):
        return None
    path = Path(uri[len("sqlite:///") :])
    return None if not path.name or str(path) == ":memory:" else path


def private_artifact_root(location: str | None) -> None:
    """An experiment's local artifact folder (e.g. ./mlruns/1: the logged model, the
    expectation suite with real category values, plots) is owner-only (0700), so nothing
    below it can be read by others."""
    if not location:
        return
    if location.startswith("file:"):
        location = urlsplit(location).path
    elif "://" in location:
        return  # a server's or a store's artifacts: their own access control
    path = Path(location)
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    _owner_only(path, 0o700)


def _owner_only(path: Path, mode: int) -> None:
    try:
        info = path.stat()
        if info.st_uid == os.getuid() and info.st_mode & 0o077:
            path.chmod(mode)
    except OSError:  # someone else's file: leave it, and let MLflow report what it can't do
        pass


class RunTracker:
    """One MLflow run, created on construction and ended by `end`."""

    def __init__(self, uri: str | None, experiment: str, run_name: str, tags: dict[str, str]):
        self.uri = tracking_uri(uri)
        if not experiment.strip():
            raise ConfigError("tracking.experiment: is empty; name the MLflow experiment")
        mlflow.set_tracking_uri(self.uri)
        try:
            # Two runs starting at once on a fresh SQLite file would both create its tables
            # (MlflowClient does, on construction).
            with store_lock(self.uri):
                private_local_store(self.uri)
                self.client = MlflowClient(self.uri)
                experiment_id = self._experiment_id(experiment)
            private_artifact_root(self.client.get_experiment(experiment_id).artifact_location)
            self.run_id = self.client.create_run(
                experiment_id, run_name=run_name, tags=tags
            ).info.run_id
        except MlflowException as error:
            first = redact(" ".join(str(error).split())[:300])
            raise TrackingUnavailable(
                f"tracking.uri: cannot start an MLflow run in {redact(self.uri)} ({first}); "
                "check the store, or point tracking.uri at another"
            ) from None

    def _experiment_id(self, name: str) -> str:
        """The active experiment `name`, created when missing; a deleted one is refused:
        MLflow cannot log to it, and restoring it is the user's choice."""
        found = self.client.get_experiment_by_name(name)
        if found is not None and found.lifecycle_stage != "active":
            raise ConfigError(
                f"tracking.experiment: '{name}' is deleted in {redact(self.uri)}; restore it "
                f"(mlflow experiments restore --experiment-id {found.experiment_id}) or name "
                "another experiment"
            )
        if found is not None:
            return found.experiment_id
        try:
            return self.client.create_experiment(name)
        except MlflowException:  # another run (on a server) created it meanwhile
            found = self.client.get_experiment_by_name(name)
            if found is None:
                raise
            return found.experiment_id

    @classmethod
    def resume(cls, uri: str, run_id: str) -> RunTracker:
        tracker = cls.__new__(cls)
        tracker.uri, tracker.run_id = uri, run_id
        mlflow.set_tracking_uri(uri)
        tracker.client = MlflowClient(uri)
        return tracker

    def log_params(self, params: dict[str, str]) -> None:
        keys = mlflow_keys(params)
        items = [Param(keys[key], str(value)[:MAX_PARAM_CHARS]) for key, value in params.items()]
        for start in range(0, len(items), 100):  # MLflow caps a batch at 100 params
            self.client.log_batch(self.run_id, params=items[start : start + 100])

    def log_metrics(self, metrics: dict[str, float], step: int = 0) -> None:
        now = int(time.time() * 1000)
        keys = mlflow_keys(metrics)
        items = [Metric(keys[key], float(value), now, step) for key, value in metrics.items()]
        for start in range(0, len(items), 1000):
            self.client.log_batch(self.run_id, metrics=items[start : start + 1000])

    def log_losses(self, losses: list[dict[str, float]]) -> None:
        """Per-epoch losses as metrics `loss.<name>` with the epoch as step."""
        now = int(time.time() * 1000)
        keys = mlflow_keys(f"loss.{name}" for row in losses for name in row)
        items = [
            Metric(keys[f"loss.{name}"], float(value), now, epoch)
            for epoch, row in enumerate(losses)
            for name, value in row.items()
        ]
        for start in range(0, len(items), 1000):
            self.client.log_batch(self.run_id, metrics=items[start : start + 1000])

    def set_tags(self, tags: dict[str, str]) -> None:
        items = [RunTag(k, redact(str(v))) for k, v in tags.items()]
        self.client.log_batch(self.run_id, tags=items)

    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None:
        self.client.log_artifact(self.run_id, str(path), artifact_path)

    def log_artifacts(self, folder: Path, artifact_path: str | None = None) -> None:
        self.client.log_artifacts(self.run_id, str(folder), artifact_path)

    def log_generator(
        self, generator_dir: Path, registered_name: str | None
    ) -> tuple[str, str | None]:
        """Log the saved generator as a pyfunc model; register it when a name is given.

        Returns (model URI, registered version or None). Aliases are set separately, once
        the run's gate has decided whether its data was published.
        """
        # The fluent run ends the run (FINISHED) when the block exits; it is not over until
        # its folder is in place (flows.synthesize.finish), so it is set RUNNING again: a
        # kill before then must leave a run that flows.doctor can tell from a finished one.
        with mlflow.start_run(run_id=self.run_id):
            info = mlflow.pyfunc.log_model(
                name="generator",
                python_model=str(Path(__file__).with_name("pyfunc_entry.py")),
                artifacts={GENERATOR_ARTIFACT: str(generator_dir)},
                signature=SIGNATURE,
                input_example=INPUT_EXAMPLE,
                # Explicit: inferring requirements would re-load the model in a subprocess.
                pip_requirements=[f"{name}=={version(name)}" for name in REQUIREMENTS],
                registered_model_name=registered_name,
                code_paths=CODE_PATHS,
            )
        self.client.update_run(self.run_id, status="RUNNING")
        registered = info.registered_model_version
        return info.model_uri, (str(registered) if registered is not None else None)

    def set_alias(self, registered_name: str, alias: str, model_version: str) -> None:
        self.client.set_registered_model_alias(registered_name, alias, model_version)

    def end(self, status: str) -> None:
        """status: FINISHED or FAILED."""
        self.client.set_terminated(self.run_id, status=status)

    def fail(self, error: BaseException) -> None:
        """Tag the run failed with its error, and end it."""
        self.set_tags({"synthpipe.status": "failed", "synthpipe.error": redact(str(error))[:5000]})
        self.end("FAILED")
