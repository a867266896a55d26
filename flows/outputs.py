"""What a run writes beside its data: Parquet metadata, the shards' manifest, <check>.json,
report.md, the preview, the Prefect summary artifact, and the package versions."""

from __future__ import annotations

import json
import re
import time
from importlib.metadata import version
from pathlib import Path

import pandas as pd
from prefect.artifacts import create_markdown_artifact

from flows.run_folder import EXPECTATIONS_DIR, MANIFEST_FILE, REPORT_FILE
from validation import Report

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
