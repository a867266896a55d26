"""The release certificate: every privacy measure beside its threshold and the gate's verdict,
hashes of the released files, and one self-contained page that renders styled offline."""

from __future__ import annotations

import hashlib
import json
import re

import pytest

from generators.data.schema import infer_schema
from tests.browser import colour_share, dump_dom, screenshot
from tests.generators.conftest import make_mixed_frame
from validation.certificate import (
    FALLBACK_MEANING,
    RunFacts,
    build_certificate,
    certificate_json,
    render_html,
)
from validation.privacy import PrivacyPolicy, privacy_report
from validation.report import Report

PASS_GREEN, FAIL_RED = (0x1E, 0x7D, 0x32), (0xB3, 0x26, 0x1E)


def facts(**changes) -> RunFacts:
    values = dict(
        name="adult",
        dataset="s3://bucket/adult.csv?X-Amz-Signature=***",
        modality="table",
        run_id="0123456789abcdef0123456789abcdef",
        config_hash="31badb88a955934a",
        generator="gaussian_copula",
        status="published",
        gate_overridden=False,
        gate_failures=[],
        policy=PrivacyPolicy(),
        quasi_identifiers=["age", "sex"],
        secrets=["income"],
        train_rows=320,
        holdout_rows=80,
        seeds={"seed": 0, "sample_seed": 7},
        versions={"synthpipe": "0.1.0"},
    )
    return RunFacts(**{**values, **changes})


def privacy(failures=(), **extra) -> Report:
    """A privacy report as the gate writes it, plus measures other checks may add."""
    metrics = {
        "dcr_share": 0.51,
        "dcr_share_ci_low": 0.45,
        "dcr_share_ci_high": 0.57,
        "membership_auc": 0.52,
        "membership_auc_ci_low": 0.47,
        "linkability.risk": 0.01,
        "linkability.ci_low": 0.0,
        "linkability.ci_high": 0.03,
        "density_mia.random.auc": 0.55,
        "density_mia.random.auc_ci_low": 0.50,
        "density_mia.random.auc_ci_high": 0.60,
        "density_mia.random.auc_p_value": 0.2,
        "density_mia.random.tpr_at_fpr_0.01": 0.4,
        "density_mia.random.tpr_at_fpr_0.01_p_value": 1e-9,
        **extra,
    }
    details = {"density_mia": {"alpha": 0.001}}
    return Report("privacy", not failures, metrics, details, list(failures))


def measures_of(certificate) -> dict[str, dict]:
    return {m["key"]: m for m in certificate["privacy"]["measures"]}


def test_every_figure_is_a_measure_or_part_of_one_and_unknown_ones_are_listed():
    report = privacy(
        **{
            "shadow_mia.outliers.auc": 0.5,
            "shadow_mia.outliers.auc_p_value": 0.5,
            "novel_attack.score": 0.02,
        }
    )
    measures = measures_of(build_certificate(facts(), [report], {}))
    parts = {
        k
        for k in report.metrics
        if re.search(r"(_ci_low|\.ci_low|_ci_high|\.ci_high|_p_value|\.p_value)$", k)
    }
    assert set(measures) == set(report.metrics) - parts
    assert measures["dcr_share"]["ci_low"] == 0.45 and measures["dcr_share"]["ci_high"] == 0.57
    assert measures["linkability.risk"]["ci_high"] == 0.03
    assert measures["density_mia.random.auc"]["p_value"] == 0.2
    # A measure the certificate has no entry for is still listed, with the fallback meaning.
    assert measures["novel_attack.score"]["verdict"] == "recorded"
    assert measures["novel_attack.score"]["meaning"].endswith(FALLBACK_MEANING)
    assert measures["shadow_mia.outliers.auc"]["verdict"] == "pass"


def test_extreme_value_measures_carry_their_threshold_and_the_gate_verdict_per_column():
    extremes = {
        "extremes.age.share": 0.02,
        "extremes.age.train_share": 0.001,
        "extremes.age.holdout_share": 0.0,
        "extremes.age.p_value": 1e-12,
        "extremes.hours_per_week.share": 0.001,
        "extremes.hours_per_week.p_value": 0.4,
        "extremes.singular_share": 0.01,
        "extremes.singular_share_ci_low": 0.008,
        "extremes.singular_p_value": 0.3,
    }
    line = (
        "column 'age': 2% of synthetic rows carry a singular extreme value (beyond the "
        "holdout's range, near one training row), 20.0x the real rows' 0.1% (p = 1e-12)"
    )
    measures = measures_of(build_certificate(facts(), [privacy([line], **extremes)], {}))
    age = measures["extremes.age.share"]
    assert age["verdict"] == "fail" and age["p_value"] == 1e-12 and "2.0x" in age["threshold"]
    assert measures["extremes.hours_per_week.share"]["verdict"] == "pass"
    assert "share in the real training rows" in measures["extremes.age.train_share"]["meaning"]
    assert measures["extremes.singular_share"]["ci_low"] == 0.008
    assert measures["extremes.singular_share"]["p_value"] == 0.3
    assert "extremes.age.p_value" not in measures


def test_verdicts_follow_the_gate_lines_and_the_attack_bound():
    line = "DCR share 0.910 > 0.55: synthetic rows sit closer to training rows"
    measures = measures_of(build_certificate(facts(), [privacy([line])], {}))
    assert measures["dcr_share"]["verdict"] == "fail"
    assert "0.55" in measures["dcr_share"]["threshold"]
    assert measures["membership_auc"]["verdict"] == "pass"
    # Two p-values in the family: the bound is 0.001 / 2.
    assert measures["density_mia.random.tpr_at_fpr_0.01"]["verdict"] == "fail"
    assert measures["density_mia.random.auc"]["verdict"] == "pass"
    assert "0.0005" in measures["density_mia.random.tpr_at_fpr_0.01"]["threshold"]


def test_a_copy_of_the_training_data_fails_the_same_measures_in_the_certificate():
    frame = make_mixed_frame()
    train, holdout = (
        frame.iloc[:300].reset_index(drop=True),
        frame.iloc[300:].reset_index(drop=True),
    )
    schema = infer_schema(train)
    policy = PrivacyPolicy(n_attacks=50)
    honest = privacy_report(
        train, holdout, holdout.sample(len(holdout), random_state=1), schema, policy
    )
    copied = privacy_report(train, holdout, train.copy(), schema, policy)
    assert copied.failures and honest.passed
    failed = {}
    for name, report in (("honest", honest), ("copied", copied)):
        measures = build_certificate(facts(), [report], {})["privacy"]["measures"]
        failed[name] = {m["key"] for m in measures if m["verdict"] == "fail"}
    assert failed["honest"] == set()
    assert {"dcr_share", "ims", "membership_auc"} <= failed["copied"]


def test_released_files_are_hashed(tmp_path):
    data = tmp_path / "synthetic.parquet"
    data.write_bytes(b"not really parquet" * 1000)
    certificate = build_certificate(facts(), [privacy()], {"synthetic.parquet": data})
    [entry] = certificate["released_files"]
    assert entry == {
        "path": "synthetic.parquet",
        "bytes": 18000,
        "sha256": hashlib.sha256(data.read_bytes()).hexdigest(),
    }
    assert json.loads(certificate_json(certificate)) == certificate


def test_page_is_self_contained_and_escapes_what_it_shows():
    page = render_html(build_certificate(facts(name="<script>alert(1)</script>"), [privacy()], {}))
    assert "<script" not in page.replace("&lt;script&gt;", "")
    assert not re.search(r"<link|@import|url\(|src=|href=", page)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_page_renders_styled_offline_with_every_measure_and_verdict(tmp_path):
    line = "DCR share 0.910 > 0.55: synthetic rows sit closer to training rows"
    certificate = build_certificate(facts(), [privacy([line])], {})
    page = tmp_path / "certificate.html"
    page.write_text(render_html(certificate))
    dom = dump_dom(page, tmp_path / "profile")
    for measure in certificate["privacy"]["measures"]:
        row = re.search(rf'<tr data-measure="{re.escape(measure["key"])}">(.*?)</tr>', dom)
        assert row, measure["key"]
        assert f'class="verdict {measure["verdict"]}">{measure["verdict"].upper()}<' in row[1]
    pixels = screenshot(page, tmp_path / "profile")
    # Styled: the verdict cells' colours are on screen; the same page without its style
    # sheet (as a CDN-styled page renders offline) shows neither.
    assert colour_share(pixels, PASS_GREEN) > 0.002 and colour_share(pixels, FAIL_RED) > 0.0005
    bare = tmp_path / "bare.html"
    bare.write_text(re.sub(r"<style>.*?</style>", "", page.read_text(), flags=re.S))
    bare_pixels = screenshot(bare, tmp_path / "profile")
    assert colour_share(bare_pixels, PASS_GREEN) == 0 and colour_share(bare_pixels, FAIL_RED) == 0


@pytest.mark.parametrize("status", ["published", "quarantined"])
def test_banner_states_the_status(status):
    page = render_html(build_certificate(facts(status=status), [privacy()], {}))
    assert f"Status: {status.upper()}" in page
