"""What a run writes beside its data: Parquet metadata, the shards' manifest, <check>.json,
report.md, the preview, the release certificate, the Prefect summary artifact, and the
package versions."""

from __future__ import annotations

import json
import re
import time
from importlib.metadata import version
from pathlib import Path

import pandas as pd
from prefect.artifacts import create_markdown_artifact

from flows.run_folder import (
    AUGMENTED_FILE,
    CERTIFICATE_DIR,
    CERTIFICATE_HTML,
    CERTIFICATE_JSON,
    EXPECTATIONS_DIR,
    MANIFEST_FILE,
    PREVIEW_FILE,
    REPORT_FILE,
    SAMPLES_FILE,
    SHARDS_DIR,
    SYNTHETIC_FILE,
)
from generators.data.secrets import redact
from validation import Report
from validation.certificate import (
    RunFacts,
    build_certificate,
    certificate_json,
    file_sha256,
    render_html,
)

VERSIONED_PACKAGES = ["synthpipe", "pandas", "pyarrow", "torch", "sdv", "prefect", "mlflow"]


def run_metadata(config, run_id: str, flow_run_id, status: str, overridden: bool) -> dict:
    """The key-value metadata of the run's Parquet files."""
    return {
        "synthpipe.run_id": run_id,
        "synthpipe.flow_run_id": str(flow_run_id),
        "synthpipe.generator": config.generator.name,
        "synthpipe.seed": str(config.sample_seed),
        "synthpipe.config_hash": config.digest(),
        "synthpipe.status": status,
        "synthpipe.gate_overridden": str(overridden).lower(),
        "synthpipe.versions": json.dumps(versions()),
    }


def shard_metadata(config, run_id: str) -> dict[str, str]:
    """The metadata each sampled part carries (the run's status is not known yet)."""
    return {
        "synthpipe.run_id": run_id,
        "synthpipe.generator": config.generator.name,
        "synthpipe.seed": str(config.sample_seed),
        "synthpipe.config_hash": config.digest(),
    }


def write_manifest(shards_dir: Path, metadata: dict, rows: int, checked_rows: int, parts) -> None:
    manifest = {
        **metadata,
        "rows": rows,
        "checked_rows": checked_rows,
        "parts": [path.name for path in parts],
    }
    (shards_dir / MANIFEST_FILE).write_text(json.dumps(manifest, indent=1))


def write_reports(run_dir: Path, reports: list[Report], synthetic: pd.DataFrame, modality) -> None:
    """<check>.json for each report, report.md with all of them, and the preview."""
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
    (run_dir / REPORT_FILE).write_text("\n\n".join(sections) + "\n")
    modality.write_preview(synthetic, run_dir)


# -- the release certificate -------------------------------------------------------------
def write_certificate(
    run_dir: Path, config, data, fitted, reports: list[Report], verdict: tuple[list[str], bool]
) -> str:
    """certificate.json and certificate.html into the staged run folder, once every released
    file is written there (they are hashed). Returns the SHA-256 of certificate.json."""
    failures, overridden = verdict
    policy = config.privacy
    usable = [c.name for c in data.schema.columns if c.kind not in ("id", "text")]
    target = config.data.target
    facts = RunFacts(
        name=config.name,
        dataset=redact(config.data.path),
        modality=config.data.modality,
        run_id=run_dir.name,
        config_hash=config.digest(),
        generator=config.generator.name,
        status="quarantined" if failures else "published",
        gate_overridden=overridden,
        gate_failures=list(failures),
        policy=policy,
        quasi_identifiers=list(policy.quasi_identifiers or usable),
        secrets=list(policy.secrets or ([target] if target in usable else [])),
        train_rows=data.train_rows,
        holdout_rows=data.holdout_rows,
        seeds={"seed": config.seed, "sample_seed": config.sample_seed},
        versions=versions(),
        dp_epsilon_spent=fitted.dp_epsilon_spent,
        protections=protections(config, data),
        require_approval=config.output.require_approval,
    )
    certificate = build_certificate(facts, reports, released_files(run_dir))
    text = certificate_json(certificate)
    (run_dir / CERTIFICATE_JSON).write_text(text)
    (run_dir / CERTIFICATE_HTML).write_text(render_html(certificate))
    return file_sha256(run_dir / CERTIFICATE_JSON)


def released_files(run_dir: Path) -> dict[str, Path]:
    """The run's released files by their name in the run folder: the synthetic data (one
    file, or the shards and their manifest), augment.merge's table, the preview and text
    samples. The rest of the run folder (config, reports, the generator, the expectation
    suite) is the run's private record: it holds real-data metadata."""
    names = [SYNTHETIC_FILE, AUGMENTED_FILE, PREVIEW_FILE, SAMPLES_FILE]
    found = {name: run_dir / name for name in names if (run_dir / name).is_file()}
    shards = run_dir / SHARDS_DIR
    if shards.is_dir():
        for path in sorted(p for p in shards.rglob("*") if p.is_file()):
            found[path.relative_to(run_dir).as_posix()] = path
    return found


def protections(config, data) -> list[dict]:
    """What protected this run's release, on or off: [{name, setting, on, what}]."""
    policy = config.privacy
    merged = sum(data.protection.merged.values())
    clipped = sum(data.protection.clipped.values())
    items = [
        (
            "holdout kept apart",
            "data.holdout_fraction",
            True,
            "real rows held out of training: the attacks' stand-in for people not in the data",
        ),
        (
            "privacy gate",
            "privacy.enabled",
            policy.enabled and not policy.override_gate,
            "a run failing a privacy measure is quarantined, never published"
            + (" (overridden: privacy.override_gate)" if policy.override_gate else ""),
        ),
        (
            "rare categories merged",
            "privacy.rare_category_min_count",
            policy.rare_category_min_count > 1,
            f"categories seen fewer than {policy.rare_category_min_count} times merged before "
            f"training ({merged} rows)"
            if policy.rare_category_min_count
            else "off: categories seen on few real rows can be reproduced",
        ),
        (
            "isolated extreme values clipped",
            "privacy.clip_extremes",
            policy.clip_extremes,
            f"numeric values beyond a noisy {policy.extreme_quantile} quantile that fewer than "
            f"{policy.extreme_min_rows} rows are near set to that bound before training "
            f"({clipped} rows)"
            if policy.clip_extremes
            else "off: a value only one real person has can be reproduced",
        ),
        (
            "similarity filter",
            "privacy.similarity_filter_quantile",
            policy.similarity_filter_quantile is not None,
            "synthetic rows too close to a training row dropped before release",
        ),
        (
            "differential privacy",
            "privacy.dp",
            policy.dp is not None,
            "DP-SGD bounds what the model can learn about any one row",
        ),
        (
            "owner-only run folder and MLflow store",
            "(always)",
            True,
            "the model, reports and expectation suite (real-data metadata) are private to "
            "the user who ran synthpipe",
        ),
    ]
    if config.data.modality == "text":
        items.append(
            (
                "PII masked in the input",
                "privacy.text.mask_pii_input",
                policy.text.mask_pii_input,
                "e-mail addresses, phone numbers and the like masked before training",
            )
        )
    return [{"name": n, "setting": s, "on": bool(on), "what": w} for n, s, on, w in items]


def certificate_location(result) -> str | None:
    """Where the run's certificate.html ended up, beside its data (None if no output)."""
    if not result.output:
        return None
    folder = result.output.rsplit("/", 1)[0] if "://" in result.output else None
    if folder is not None:
        return f"{folder}/{CERTIFICATE_HTML}"
    return str(Path(result.output).parent / CERTIFICATE_HTML)


def artifact_key(text: str) -> str:
    """A Prefect artifact key: lower-case letters, digits and dashes."""
    return re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")


def summary_artifact(config, result, reports: list[Report]) -> None:
    """The run's Markdown summary in the Prefect UI (key `synthpipe-<name>`)."""
    lines = [
        f"## synthpipe run `{config.name}`: **{result.status}**",
        "",
        f"- generator: `{result.generator}`, rows: {result.rows}",
        f"- output: `{result.output}`",
        f"- MLflow run: `{result.mlflow_run_id}`, model: `{result.model_uri}`",
        *_certificate_lines(config, result),
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
    key = artifact_key(f"synthpipe-{config.name}")
    create_markdown_artifact("\n".join(lines), key=key, description=f"synthpipe run {config.name}")


def _certificate_lines(config, result) -> list[str]:
    """The summary's link to the release certificate, and the approval it waits for."""
    location = certificate_location(result)
    if location is None:
        return []
    link = location if "://" in location else Path(location).as_uri()
    lines = [
        f"- release certificate: [{CERTIFICATE_HTML}]({link}) (`{location}`; MLflow artifact "
        f"`{CERTIFICATE_DIR}/{CERTIFICATE_HTML}`)"
    ]
    if result.status == "published" and config.output.require_approval:
        lines.append(
            f"- awaiting approval (output.require_approval): `synthpipe approve "
            f"{result.mlflow_run_id} --by NAME` moves the `published` alias"
        )
    return lines


class Timings(dict):
    """Seconds per step: `with timings("fit_seconds"): ...` records the block's duration."""

    def __call__(self, key: str):
        return _Timed(self, key)


class _Timed:
    def __init__(self, into: dict[str, float], key: str):
        self.into, self.key = into, key

    def __enter__(self):
        self.start = time.perf_counter()

    def __exit__(self, *exc):
        self.into[self.key] = time.perf_counter() - self.start


def versions() -> dict[str, str]:
    found = {}
    for name in VERSIONED_PACKAGES:
        try:
            found[name] = version(name)
        except Exception:
            found[name] = "unknown"
    return found
