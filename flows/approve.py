"""`synthpipe approve`: a person signs a run's release certificate, and the release goes out.

Every run logs its certificate (validation/certificate.py) to MLflow under `certificate/`
and tags the run with the SHA-256 of `certificate.json` (`synthpipe.certificate_sha256`).
`approve(run, approved_by)` checks that the run was published by the gate, that its logged
certificate is still the one the run wrote (same hash), and then records who approved
which certificate, and when, in MLflow tags of the run and of its model version
(`synthpipe.approved_by`, `synthpipe.approved_at`, `synthpipe.approved_certificate_sha256`,
`synthpipe.approved_model_version`, `synthpipe.approval: approved`), and moves the
registered model's `published` alias to the run's version.

With `output.require_approval: true` a passing run is written to its folder and its model
version registered, but the alias waits for this step (tag `synthpipe.approval: pending`);
by default (false) the alias moves when the run publishes, as scheduled jobs need.
"""

from __future__ import annotations

import hashlib
import json
import re
import tempfile
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from generators.errors import SynthpipeError

PUBLISHED_ALIAS = "published"
CERTIFICATE_ARTIFACT = "certificate/certificate.json"
CERTIFICATE_SHA256_TAG = "synthpipe.certificate_sha256"
APPROVAL_TAG = "synthpipe.approval"  # pending | approved
APPROVED_BY_TAG = "synthpipe.approved_by"
APPROVED_AT_TAG = "synthpipe.approved_at"
APPROVED_SHA256_TAG = "synthpipe.approved_certificate_sha256"
APPROVED_VERSION_TAG = "synthpipe.approved_model_version"
RUN_ID = re.compile(r"^[0-9a-f]{32}$")


class ApprovalError(SynthpipeError):
    """A run that cannot be approved: not published, no certificate, or a changed one."""


def alias_moves_on_publish(config) -> bool:
    """Whether a published run's model version gets the `published` alias at once (else it
    waits for `synthpipe approve`)."""
    return not config.output.require_approval


@dataclass
class Approval:
    """Who approved which certificate of which run, and the model version it published."""

    run_id: str
    approved_by: str
    approved_at: str
    certificate_sha256: str
    registered_model: str
    model_version: str

    def to_dict(self) -> dict:
        return asdict(self)


def approve(
    run_or_model: str,
    approved_by: str,
    *,
    tracking_uri: str | None = None,
    certificate_sha256: str | None = None,
) -> Approval:
    """Approve a run (its id, or a model URI: models:/name/version, models:/name@alias,
    runs:/<id>/generator) on the MLflow store at `tracking_uri` (default as for runs).

    `certificate_sha256`, when given, is the hash of the certificate the approver read; it
    must match the logged one. Raises ApprovalError, naming the run and what to do, for a
    run that is not published, has no certificate, or whose certificate changed.
    """
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    from flows.tracking import tracking_uri as resolve_uri

    approver = " ".join(approved_by.split())
    if not approver:
        raise ApprovalError("--by: give the approver's name, e.g. --by 'Ada Lovelace'")
    client = MlflowClient(resolve_uri(tracking_uri))
    try:
        run_id, version = _resolve(client, run_or_model)
        run = client.get_run(run_id)
    except MlflowException as error:
        raise ApprovalError(
            f"{run_or_model}: no such run or model on this MLflow store "
            f"({str(error).splitlines()[0]}); check the id and --tracking-uri"
        ) from None
    tags = run.data.tags
    status = tags.get("synthpipe.status")
    if status != "published":
        raise ApprovalError(
            f"run {run_id} is {status or 'not a finished synthpipe run'}: only a run the "
            "privacy gate published can be approved; fix what report.md lists and run again"
        )
    sha256 = _logged_certificate_sha256(client, run_id)
    logged = tags.get(CERTIFICATE_SHA256_TAG)
    if sha256 != logged:
        raise ApprovalError(
            f"run {run_id}: its logged certificate changed after the run wrote it (SHA-256 "
            f"{sha256[:16]}..., the run recorded {str(logged)[:16]}...); do not approve it: "
            "run the config again"
        )
    if certificate_sha256 is not None and certificate_sha256.strip().lower() != sha256:
        raise ApprovalError(
            f"run {run_id}: the certificate you name ({certificate_sha256.strip()[:16]}...) "
            f"is not the run's ({sha256[:16]}...); read the run's certificate.html again"
        )
    name, version = _model_version(client, run_id, version)
    approved_at = datetime.now(UTC).isoformat(timespec="seconds")
    approval = Approval(run_id, approver, approved_at, sha256, name, version)
    _record(client, approval)
    client.set_registered_model_alias(name, PUBLISHED_ALIAS, version)
    return approval


def _resolve(client, run_or_model: str) -> tuple[str, str | None]:
    """(run id, model version or None) of a run id or model URI."""
    text = run_or_model.strip()
    if text.startswith("models:/"):
        name, _, rest = text[len("models:/") :].partition("/")
        if "@" in name and not rest:
            name, alias = name.split("@", 1)
            found = client.get_model_version_by_alias(name, alias)
        else:
            found = client.get_model_version(name, rest)
        return found.run_id, str(found.version)
    if text.startswith("runs:/"):
        return text[len("runs:/") :].split("/")[0], None
    if not RUN_ID.match(text):
        raise ApprovalError(
            f"{run_or_model}: expected an MLflow run id (32 hex digits) or a model URI such "
            "as models:/adult/3"
        )
    return text, None


def _logged_certificate_sha256(client, run_id: str) -> str:
    from mlflow.exceptions import MlflowException

    with tempfile.TemporaryDirectory() as folder:
        try:
            path = client.download_artifacts(run_id, CERTIFICATE_ARTIFACT, folder)
        except (MlflowException, OSError):
            raise ApprovalError(
                f"run {run_id} has no release certificate ({CERTIFICATE_ARTIFACT} in MLflow); "
                "runs made before certificates cannot be approved: run the config again"
            ) from None
        data = Path(path).read_bytes()
    try:
        certificate = json.loads(data)
    except ValueError:
        certificate = {}
    if certificate.get("run", {}).get("run_id") != run_id:
        raise ApprovalError(
            f"run {run_id}: its {CERTIFICATE_ARTIFACT} is not this run's certificate; do not "
            "approve it: run the config again"
        )
    return hashlib.sha256(data).hexdigest()


def _model_version(client, run_id: str, version: str | None) -> tuple[str, str]:
    """(registered model name, version) logged by the run."""
    found = client.search_model_versions(f"run_id = '{run_id}'")
    if version is not None:
        found = [v for v in found if str(v.version) == version]
    if not found:
        raise ApprovalError(
            f"run {run_id} has no registered model version (tracking.register_model: false?), "
            "so there is no `published` alias to move"
        )
    latest = max(found, key=lambda v: int(v.version))
    return latest.name, str(latest.version)


def _record(client, approval: Approval) -> None:
    tags = {
        APPROVAL_TAG: "approved",
        APPROVED_BY_TAG: approval.approved_by,
        APPROVED_AT_TAG: approval.approved_at,
        APPROVED_SHA256_TAG: approval.certificate_sha256,
        APPROVED_VERSION_TAG: approval.model_version,
    }
    for key, value in tags.items():
        client.set_tag(approval.run_id, key, value)
        client.set_model_version_tag(approval.registered_model, approval.model_version, key, value)
