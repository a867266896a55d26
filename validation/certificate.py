"""The release certificate: what a privacy officer reads and signs, as JSON and as one HTML page.

`build_certificate(facts, reports)` gathers, from the run's facts and its check reports:
the title, dataset and run id, the config hash, the threat model (what the attacker is
assumed to know), every privacy measure the privacy report holds beside its threshold,
interval and verdict with a one-line meaning, the DP settings and epsilon, what is
protected, the fidelity summary, package versions and seeds, and the SHA-256 of every
released file. `render_html(certificate)` turns that dict into one self-contained page:
inline CSS, no script, no link to anything, so it renders styled offline from the file.

Measures are listed generically: every figure of the privacy report is a measure, except
the interval ends and p-values that belong to one (`<m>_ci_low`, `<m>.ci_high`,
`<m>_p_value`, ...), which are shown beside it. `KNOWN_MEASURES` gives the meaning and
threshold of the figures it knows; any other figure is listed as recorded, with a generic
meaning. A verdict comes from the gate itself: a measure fails when one of the privacy
report's failure lines names it (or, for a membership attack's figure, when its p-value
is below the gate's bound), so the certificate never contradicts the gate. The overall
verdict and every failure line are shown as well.

Nothing here reads data: only the reports' figures (never their rows or category values)
and the facts the flow passes in.
"""

from __future__ import annotations

import fnmatch
import hashlib
import html
import json
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from validation.membership import MEMBERSHIP_ALPHA
from validation.privacy import PrivacyPolicy
from validation.report import Report

CERTIFICATE_VERSION = 1
PASS, FAIL, RECORDED = "pass", "fail", "recorded"
# Suffixes of a figure that belongs to another one: (suffix, which part of it).
PART_SUFFIXES = (
    ("_ci_low", "ci_low"),
    (".ci_low", "ci_low"),
    ("_ci_high", "ci_high"),
    (".ci_high", "ci_high"),
    ("_p_value", "p_value"),
    (".p_value", "p_value"),
)
# A downstream report's keys such as `real.recall.<label>` name real class labels: the
# certificate keeps the label-free ones only.
DOWNSTREAM_KEYS = ("*.macro_f1", "*.accuracy", "*.roc_auc", "*.r2", "*.mae")


@dataclass(frozen=True)
class KnownMeasure:
    """What the certificate says about the figures matching `pattern` (fnmatch)."""

    pattern: str
    meaning: str
    # The threshold in words, from the policy; None: the figure is informational.
    threshold: Any = None  # Callable[[PrivacyPolicy, dict], str] | None
    # Text of the gate's failure line for this figure (matched case-insensitively).
    failure_text: Any = None  # Callable[[str], str] | str | None


def _attack(key: str) -> str:
    return key.split(".")[0].replace("_", " ")


KNOWN_MEASURES: tuple[KnownMeasure, ...] = (
    KnownMeasure(
        "dcr_share",
        "Share of synthetic rows closer to a training row than to an unseen real row: 0.5 "
        "means no memorisation, 1.0 a copy of the training data.",
        lambda p, m: f"fails above {p.dcr_share_max} when its 95% interval excludes 0.5",
        "DCR share",
    ),
    KnownMeasure(
        "membership_auc",
        "How well nearness to a synthetic row tells training rows from unseen ones (ROC "
        "AUC): 0.5 is a guess, 1.0 always right.",
        lambda p, m: f"fails above {p.membership_auc_max} when its 95% interval excludes 0.5",
        "membership AUC",
    ),
    KnownMeasure(
        "ims",
        "Share of synthetic rows identical to a training row, against real data's own "
        "share of duplicates.",
        lambda p, m: (
            f"fails above {m['ims_holdout_upper']:.4g} (the holdout's 95% upper bound)"
            if p.ims_check and "ims_holdout_upper" in m
            else None
        ),
        "identical ",
    ),
    KnownMeasure(
        "ims_holdout",
        "Share of unseen real rows identical to a training row: the baseline for the "
        "identical match share.",
    ),
    KnownMeasure(
        "ims_holdout_upper", "The 95% upper bound of the holdout's identical match share."
    ),
    KnownMeasure(
        "nndr_p05_*",
        "5th percentile of nearest over second-nearest neighbour distance; lower towards "
        "training than towards holdout rows hints at rows copied closely.",
    ),
    KnownMeasure(
        "dcr_baseline_protection",
        "Median distance of synthetic rows to training rows relative to random noise's: 1 "
        "means as far from real rows as noise.",
    ),
    KnownMeasure(
        "dcr_*_median", "Median distance of a synthetic row to its nearest real row of that set."
    ),
    KnownMeasure(
        "singling_out_*.risk",
        "Risk that an attacker singles out one real person from the synthetic data "
        "(anonymeter), above what chance gives.",
        lambda p, m: f"fails above {p.attack_risk_max} when its 95% interval excludes 0",
        lambda key: f"{_attack(key)} risk",
    ),
    KnownMeasure(
        "linkability.risk",
        "Risk that an attacker links two halves of a real person's quasi-identifiers "
        "through the synthetic data (anonymeter).",
        lambda p, m: f"fails above {p.attack_risk_max} when its 95% interval excludes 0",
        lambda key: f"{_attack(key)} risk",
    ),
    KnownMeasure(
        "inference_*.risk",
        "Risk that an attacker who knows a person's quasi-identifiers infers their secret "
        "column from the synthetic data (anonymeter).",
        lambda p, m: f"fails above {p.attack_risk_max} when its 95% interval excludes 0",
        lambda key: f"{_attack(key)} risk",
    ),
    KnownMeasure(
        "*_mia.*.auc",
        "Membership attack (ROC AUC) telling training rows from unseen ones among these "
        "targets: 0.5 is a guess.",
    ),
    KnownMeasure(
        "*_mia.*.tpr_at_fpr_*",
        "Share of training rows the attacker flags while wrongly flagging only this share "
        "of unseen rows (true-positive rate at a low false-positive rate).",
    ),
    KnownMeasure(
        "*_mia.*.fpr_resolution",
        "The smallest false-positive rate these targets can show (1 / non-member targets).",
    ),
    KnownMeasure(
        "near_duplicate_share",
        "Share of synthetic images nearer to a training image than most unseen real images.",
        lambda p, m: f"fails above {p.near_duplicate_share_max} when significantly so",
        "near-duplicate share",
    ),
    KnownMeasure("exact_copy_share*", "Share of images that are exact copies of a training image."),
    KnownMeasure(
        "memorised_share",
        "Share of synthetic documents containing a long run of training text.",
        lambda p, m: (
            f"fails when more than {p.text.memorised_excess_max:.0%} above the holdout's share"
        ),
        "contain a long run of training text",
    ),
    KnownMeasure(
        "duplicate_share",
        "Share of synthetic documents that repeat a training document exactly.",
        lambda p, m: (
            f"fails when more than {p.text.duplicate_excess_max:.0%} above the holdout's share"
        ),
        "repeat a training document exactly",
    ),
    KnownMeasure("*_holdout", "The same figure for unseen real data: its baseline."),
    KnownMeasure(
        "extremes.*train_share",
        "The same share in the real training rows: what a copy of them would give.",
    ),
    KnownMeasure(
        "extremes.*holdout_share",
        "The same share in unseen real rows: what a fresh sample of real people gives.",
    ),
    KnownMeasure(
        "extremes.*.share",
        "Share of synthetic rows carrying one of this column's singular extreme values (or "
        "categories seen on at most a few real rows), against the real rows' share.",
        lambda p, m: (
            f"fails above {p.extreme_share_ratio_max}x the real rows' share when significant "
            "(p < 0.001 / columns tested)"
            if p.extremes_check
            else None
        ),
        lambda key: f"column '{key[len('extremes.') : -len('.share')]}'",
    ),
    KnownMeasure(
        "extremes.*_share",
        "Share of synthetic rows carrying any singular extreme value (or rare category), all "
        "columns together; the gate judges each column.",
    ),
)
FAMILY_MEANINGS = {
    "density_mia": "density-ratio membership attack (DOMIAS)",
    "shadow_mia": "shadow-model membership attack",
    "extremes": "real extreme or rare values reproduced",
}
FALLBACK_MEANING = (
    "A privacy figure this certificate has no plain-language entry for; its definition is "
    "in privacy.json."
)
TARGETS = {"random": "random targets", "outliers": "outlier targets (the most isolated rows)"}


@dataclass
class RunFacts:
    """What the flow knows about a run that the reports do not say."""

    name: str
    dataset: str  # data.path, already redacted
    modality: str
    run_id: str
    config_hash: str
    generator: str
    status: str  # published | quarantined
    gate_overridden: bool
    gate_failures: list[str]
    policy: PrivacyPolicy
    quasi_identifiers: list[str]  # what the attacker knows (the policy's, or every usable)
    secrets: list[str]
    train_rows: int
    holdout_rows: int
    seeds: dict[str, int]
    versions: dict[str, str]
    dp_epsilon_spent: float | None = None
    protections: list[dict] = field(default_factory=list)
    require_approval: bool = False


# -- building ----------------------------------------------------------------------------
def build_certificate(
    facts: RunFacts, reports: list[Report], released: dict[str, Path]
) -> dict[str, Any]:
    """The certificate as a JSON-ready dict. `released`: {name in the run folder: path} of
    every released file, hashed here (call it once they are all written)."""
    privacy = next((r for r in reports if r.name == "privacy"), None)
    return {
        "certificate_version": CERTIFICATE_VERSION,
        "title": f"Release certificate: {facts.name}",
        "written_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "dataset": {
            "path": facts.dataset,
            "modality": facts.modality,
            "train_rows": facts.train_rows,
            "holdout_rows": facts.holdout_rows,
        },
        "run": {
            "run_id": facts.run_id,
            "name": facts.name,
            "generator": facts.generator,
            "config_hash": facts.config_hash,
            "status": facts.status,
            "gate_overridden": facts.gate_overridden,
            "gate_failures": list(facts.gate_failures),
            "approval_required": facts.require_approval,
        },
        "threat_model": threat_model(facts),
        "privacy": privacy_section(privacy, facts.policy),
        "differential_privacy": dp_section(facts),
        "protections": facts.protections,
        "fidelity": fidelity_summary(reports),
        "versions": facts.versions,
        "seeds": facts.seeds,
        "released_files": [
            {"path": name, "bytes": path.stat().st_size, "sha256": file_sha256(path)}
            for name, path in sorted(released.items())
        ],
    }


def threat_model(facts: RunFacts) -> dict[str, Any]:
    return {
        "attacker_knows": (
            "the synthetic release; the quasi-identifiers of the people they target; real "
            f"records from the same population as large as the holdout ({facts.holdout_rows} "
            "rows), never used for training; the generator's kind and settings"
        ),
        "quasi_identifiers": list(facts.quasi_identifiers),
        "secrets": list(facts.secrets),
        "holdout_rows": facts.holdout_rows,
        "unit_of_privacy": "an entity (all its rows)" if facts.modality == "sequence" else "a row",
    }


def privacy_section(report: Report | None, policy: PrivacyPolicy) -> dict[str, Any]:
    if report is None:
        return {"checked": False, "passed": None, "measures": [], "failures": []}
    measures = privacy_measures(report, policy)
    return {
        "checked": True,
        "passed": report.passed,
        "measures": measures,
        "failures": list(report.failures),
    }


def privacy_measures(report: Report, policy: PrivacyPolicy) -> list[dict[str, Any]]:
    """Every figure of the privacy report with its interval, p-value, threshold, verdict
    and meaning: [{key, value, ci_low, ci_high, p_value, threshold, verdict, meaning}]."""
    metrics = report.metrics
    parts = {key: _part_of(key, metrics) for key in metrics}
    measures = []
    for key, value in metrics.items():
        if parts[key] is not None:
            continue
        own = {part: metrics[k] for k, (base, part) in _owned(parts, key)}
        known = _known(key)
        threshold, verdict = _judge(key, own, known, report, policy)
        measures.append(
            {
                "key": key,
                "value": _number(value),
                "ci_low": _number(own.get("ci_low")),
                "ci_high": _number(own.get("ci_high")),
                "p_value": _number(own.get("p_value")),
                "threshold": threshold,
                "verdict": verdict,
                "meaning": _meaning(key, known),
            }
        )
    return measures


def _part_of(key: str, metrics: dict[str, float]) -> tuple[str, str] | None:
    """(the measure `key` belongs to, which part) for an interval end or p-value, else None."""
    for suffix, part in PART_SUFFIXES:
        if key.endswith(suffix):
            base = key[: -len(suffix)]
            for candidate in (base, f"{base}.risk", f"{base}.share", f"{base}_share"):
                if candidate in metrics and candidate != key:
                    return candidate, part
    return None


def _owned(parts: dict, key: str):
    return [(k, owner) for k, owner in parts.items() if owner is not None and owner[0] == key]


def _known(key: str) -> KnownMeasure | None:
    return next((m for m in KNOWN_MEASURES if fnmatch.fnmatchcase(key, m.pattern)), None)


def _judge(
    key: str, own: dict, known: KnownMeasure | None, report: Report, policy: PrivacyPolicy
) -> tuple[str | None, str]:
    """(threshold in words or None, verdict) of one measure."""
    family = key.split(".")[0]
    if family.endswith("_mia") and "p_value" in own:
        # The gate: any figure of the attack with a p-value under alpha / (their number).
        details = report.details.get(family, {})
        alpha = details.get("alpha", MEMBERSHIP_ALPHA) if isinstance(details, dict) else 0
        tests = sum(1 for k in report.metrics if k.startswith(family + ".") and "p_value" in k)
        bound = alpha / max(tests, 1)
        verdict = FAIL if own["p_value"] < bound else PASS
        return f"fails when p < {bound:.2g} ({alpha:g} over {tests} tests)", verdict
    if known is None or known.threshold is None:
        return None, RECORDED
    threshold = known.threshold(policy, report.metrics)
    if threshold is None:
        return None, RECORDED
    text = known.failure_text(key) if callable(known.failure_text) else known.failure_text
    named = any(text.lower() in line.lower() for line in report.failures)
    return threshold, FAIL if named else PASS


def _meaning(key: str, known: KnownMeasure | None) -> str:
    segments = key.split(".")
    family = FAMILY_MEANINGS.get(segments[0])
    targets = next((TARGETS[s] for s in segments[1:] if s in TARGETS), None)
    base = known.meaning if known is not None else FALLBACK_MEANING
    if family:
        where = f" on {targets}" if targets else ""
        return f"{family[0].upper()}{family[1:]}{where}. {base}"
    return base


def dp_section(facts: RunFacts) -> dict[str, Any]:
    dp = facts.policy.dp
    if dp is None:
        return {"enabled": False}
    return {
        "enabled": True,
        "mechanism": "DP-SGD (Opacus), RDP accountant",
        "epsilon_target": dp.epsilon,
        "epsilon_spent": _number(facts.dp_epsilon_spent),
        "delta": dp.delta,
        "max_grad_norm": dp.max_grad_norm,
        "unit": "an entity" if facts.modality == "sequence" else "a row",
    }


def fidelity_summary(reports: list[Report]) -> dict[str, dict[str, float | None]]:
    """{report name: figures} for the fidelity, expectations, constraints and downstream
    reports (downstream's per-class figures, named after real labels, are left out)."""
    summary = {}
    for report in reports:
        if report.name == "privacy":
            continue
        figures = report.metrics
        if report.name == "downstream":
            figures = {
                k: v
                for k, v in figures.items()
                if any(fnmatch.fnmatchcase(k, p) for p in DOWNSTREAM_KEYS)
            }
        summary[report.name] = {
            "passed": report.passed,
            "blocking": report.blocking,
            "figures": {k: _number(v) for k, v in figures.items()},
        }
    return summary


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _number(value: float | None) -> float | None:
    """JSON has no NaN or infinity: they are written as null."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def certificate_json(certificate: dict[str, Any]) -> str:
    return json.dumps(certificate, indent=1, sort_keys=False) + "\n"


# -- rendering ---------------------------------------------------------------------------
STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;
margin:0;background:#f4f5f7;color:#1d2330;line-height:1.45}
main{max-width:1100px;margin:0 auto;padding:24px 32px 48px;background:#fff;
box-shadow:0 0 12px rgba(0,0,0,.08)}
h1{font-size:1.7em;margin:.2em 0 .1em;color:#13294b}
h2{font-size:1.2em;margin:1.6em 0 .5em;padding-bottom:.2em;border-bottom:2px solid #13294b;
color:#13294b}
table{border-collapse:collapse;width:100%;margin:.4em 0 1em;font-size:.92em}
th,td{border:1px solid #c9cfd8;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#13294b;color:#fff;font-weight:600}
tr:nth-child(even) td{background:#f7f8fa}
td.num{font-family:ui-monospace,Menlo,Consolas,monospace;white-space:nowrap}
td.verdict{font-weight:700;text-align:center;white-space:nowrap}
td.verdict.pass{background:#1e7d32;color:#fff}
td.verdict.fail{background:#b3261e;color:#fff}
td.verdict.recorded{background:#e3e6ea;color:#3b4452}
.banner{padding:10px 14px;border-radius:4px;font-weight:700;margin:.8em 0}
.banner.pass{background:#d9f2dc;border:2px solid #1e7d32;color:#124d1f}
.banner.fail{background:#f9dedc;border:2px solid #b3261e;color:#6e1510}
.meta td:first-child{width:28%;font-weight:600;background:#eef1f5}
code,.hash{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:.9em;word-break:break-all}
ul.failures li{color:#6e1510}
.sign{margin-top:2em;border:1px dashed #8a94a6;padding:12px 16px}
"""

PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>{style}</style>
</head><body><main>
<h1>{title}</h1>
<p>Run <code>{run_id}</code> of <code>{name}</code>, written {written_at}.</p>
<div class="banner {banner_class}" id="overall">{banner}</div>
{sections}
<div class="sign"><strong>Approval.</strong> {approval}</div>
</main></body></html>
"""


def render_html(certificate: dict[str, Any]) -> str:
    """The certificate as one self-contained HTML page (inline CSS, no script, no links)."""
    run = certificate["run"]
    privacy = certificate["privacy"]
    published = run["status"] == "published"
    banner = f"Status: {run['status'].upper()}"
    if run["gate_overridden"]:
        banner += " (privacy gate overridden: recorded)"
    elif privacy["checked"]:
        banner += " - privacy gate " + ("passed" if privacy["passed"] else "FAILED")
    sections = [
        _section("Dataset and run", _meta_table(_run_rows(certificate))),
        _section("Threat model", _meta_table(_threat_rows(certificate["threat_model"]))),
        _section("Privacy measures", _measures_html(privacy)),
        _section("Differential privacy", _meta_table(_dp_rows(certificate))),
        _section("Protections", _protections_html(certificate["protections"])),
        _section("Fidelity summary", _fidelity_html(certificate["fidelity"])),
        _section("Versions and seeds", _meta_table(_versions_rows(certificate))),
        _section("Released files (SHA-256)", _files_html(certificate["released_files"])),
    ]
    approval = (
        "Publication waits for approval: <code>synthpipe approve "
        f"{_e(run['run_id'])} --by NAME</code> records the approver and the SHA-256 of "
        "certificate.json in MLflow and moves the model's <code>published</code> alias."
        if run["approval_required"]
        else "Approval is not required for this run; it may still be approved with "
        f"<code>synthpipe approve {_e(run['run_id'])} --by NAME</code>."
    )
    return PAGE.format(
        title=_e(certificate["title"]),
        style=STYLE,
        run_id=_e(run["run_id"]),
        name=_e(run["name"]),
        written_at=_e(certificate["written_at"]),
        banner_class="pass" if published and not run["gate_overridden"] else "fail",
        banner=_e(banner),
        sections="\n".join(sections),
        approval=approval,
    )


def _e(value: Any) -> str:
    return html.escape(str(value))


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _section(title: str, body: str) -> str:
    anchor = title.lower().split(" ")[0]
    return f'<h2 id="{anchor}">{_e(title)}</h2>\n{body}'


def _meta_table(rows: list[tuple[str, Any]]) -> str:
    cells = "".join(f"<tr><td>{_e(k)}</td><td>{_e(_fmt(v))}</td></tr>" for k, v in rows)
    return f'<table class="meta"><tbody>{cells}</tbody></table>'


def _run_rows(certificate: dict) -> list[tuple[str, Any]]:
    dataset, run = certificate["dataset"], certificate["run"]
    return [
        ("dataset", dataset["path"]),
        ("modality", dataset["modality"]),
        ("training rows / holdout rows", f"{dataset['train_rows']} / {dataset['holdout_rows']}"),
        ("run id", run["run_id"]),
        ("generator", run["generator"]),
        ("config hash", run["config_hash"]),
        ("status", run["status"]),
        ("privacy gate overridden", "yes" if run["gate_overridden"] else "no"),
        (
            "approval required before the published alias moves",
            "yes" if run["approval_required"] else "no",
        ),
    ]


def _threat_rows(threat: dict) -> list[tuple[str, Any]]:
    return [
        ("the attacker is assumed to know", threat["attacker_knows"]),
        ("quasi-identifiers", ", ".join(threat["quasi_identifiers"]) or "-"),
        ("secrets (inferred from the quasi-identifiers)", ", ".join(threat["secrets"]) or "-"),
        ("holdout rows (unseen real data)", threat["holdout_rows"]),
        ("unit of privacy", threat["unit_of_privacy"]),
    ]


def _measures_html(privacy: dict) -> str:
    if not privacy["checked"]:
        return "<p>The privacy checks were switched off for this run (privacy.enabled).</p>"
    head = (
        "<tr><th>measure</th><th>value</th><th>95% interval</th><th>p-value</th>"
        "<th>threshold</th><th>verdict</th><th>meaning</th></tr>"
    )
    rows = []
    for m in privacy["measures"]:
        interval = _interval(m["ci_low"], m["ci_high"])
        rows.append(
            f'<tr data-measure="{_e(m["key"])}"><td><code>{_e(m["key"])}</code></td>'
            f'<td class="num">{_e(_fmt(m["value"]))}</td><td class="num">{_e(interval)}</td>'
            f'<td class="num">{_e(_fmt(m["p_value"]))}</td>'
            f"<td>{_e(m['threshold'] or 'no threshold: informational')}</td>"
            f'<td class="verdict {m["verdict"]}">{m["verdict"].upper()}</td>'
            f"<td>{_e(m['meaning'])}</td></tr>"
        )
    table = f'<table class="measures"><thead>{head}</thead><tbody>{"".join(rows)}</tbody></table>'
    if privacy["failures"]:
        items = "".join(f"<li>{_e(line)}</li>" for line in privacy["failures"])
        table += f'<p>The privacy gate failed on:</p><ul class="failures">{items}</ul>'
    return table


def _interval(low: float | None, high: float | None) -> str:
    if low is not None and high is not None:
        return f"{_fmt(low)} - {_fmt(high)}"
    if low is not None:
        return f"from {_fmt(low)}"
    return f"up to {_fmt(high)}" if high is not None else "-"


def _dp_rows(certificate: dict) -> list[tuple[str, Any]]:
    dp = certificate["differential_privacy"]
    if not dp["enabled"]:
        return [("differential privacy", "not used (privacy.dp is not set)")]
    return [(key.replace("_", " "), value) for key, value in dp.items() if key != "enabled"]


def _protections_html(protections: list[dict]) -> str:
    head = "<tr><th>protection</th><th>setting</th><th>on</th><th>what it does</th></tr>"
    rows = "".join(
        f"<tr><td>{_e(p['name'])}</td><td><code>{_e(p['setting'])}</code></td>"
        f"<td>{'yes' if p['on'] else 'no'}</td><td>{_e(p['what'])}</td></tr>"
        for p in protections
    )
    return f"<table><thead>{head}</thead><tbody>{rows}</tbody></table>"


def _fidelity_html(fidelity: dict) -> str:
    if not fidelity:
        return "<p>No fidelity checks ran.</p>"
    parts = []
    for name, section in fidelity.items():
        verdict = "passed" if section["passed"] else "failed"
        if not section["blocking"]:
            verdict += " (informational)" if section["passed"] else " (warning, not blocking)"
        rows = "".join(
            f'<tr><td><code>{_e(k)}</code></td><td class="num">{_e(_fmt(v))}</td></tr>'
            for k, v in section["figures"].items()
        )
        parts.append(
            f"<h3>{_e(name)}: {_e(verdict)}</h3><table><thead><tr><th>figure</th>"
            f"<th>value</th></tr></thead><tbody>{rows}</tbody></table>"
        )
    return "\n".join(parts)


def _versions_rows(certificate: dict) -> list[tuple[str, Any]]:
    rows = [(f"seed: {k}", v) for k, v in certificate["seeds"].items()]
    return rows + [(f"package: {k}", v) for k, v in certificate["versions"].items()]


def _files_html(files: list[dict]) -> str:
    head = "<tr><th>file</th><th>bytes</th><th>SHA-256</th></tr>"
    rows = "".join(
        f'<tr><td><code>{_e(f["path"])}</code></td><td class="num">{f["bytes"]}</td>'
        f'<td class="hash">{_e(f["sha256"])}</td></tr>'
        for f in files
    )
    return f"<table><thead>{head}</thead><tbody>{rows}</tbody></table>"
