"""The Data Docs page renders styled offline, says what report.md says, and is marked as
real-data metadata (as is the suite it shows)."""

from __future__ import annotations

import re

import pandas as pd
import pytest

from generators import infer_schema
from generators.data.split import split_holdout
from tests.browser import colour_share, dump_dom, screenshot
from tests.generators.conftest import make_mixed_frame
from validation.expectations import REAL_DATA_NOTE, build_suite, validate_table

PASS_GREEN, FAIL_RED = (0x1E, 0x7D, 0x32), (0xB3, 0x26, 0x1E)


@pytest.fixture(scope="module")
def validated():
    """A suite from a mixed table and a batch that fails some of it: (suite, Validation,
    GX's own page for the same result)."""
    from great_expectations.render.renderer import ValidationResultsPageRenderer
    from great_expectations.render.view import DefaultJinjaPageView

    frame = make_mixed_frame(600, seed=5)
    train, holdout = split_holdout(frame, 0.25, seed=0)
    suite = build_suite(train, infer_schema(frame), batch_rows=len(holdout), seed=0)
    shifted = holdout.copy()
    shifted["signup"] = holdout["signup"] + pd.Timedelta(days=365)
    shifted["income"] = holdout["income"] * 3
    validation = validate_table(shifted, suite)
    assert 0 < validation.report.metrics["failed"] < validation.report.metrics["evaluated"]
    gx_page = DefaultJinjaPageView().render(
        ValidationResultsPageRenderer().render(_gx_result(shifted, suite))
    )
    return suite, validation, gx_page


def _gx_result(frame, suite):
    from validation.expectations import _gx_batch_definition, _gx_config, _plain

    gx, batch_definition = _gx_batch_definition()
    gx_suite = gx.ExpectationSuite(
        name=suite["name"], expectations=[_gx_config(e) for e in suite["expectations"]]
    )
    result = batch_definition.get_batch(batch_parameters={"dataframe": frame}).validate(gx_suite)
    for item in result.results:  # as validate_table does: GX's renderer fails on NumPy scalars
        item.result = _plain(item.result)
    return result


def test_page_fetches_nothing(validated):
    _, validation, gx_page = validated
    assert re.search(r'(src|href)="https?://', gx_page)  # GX's own page uses CDNs
    page = validation.html
    assert not re.search(r"<script|<link|<img|@import|url\(|(src|href)=", page, flags=re.I)


def test_status_markers_and_counts_match_the_report(validated):
    _, validation, _ = validated
    report, page = validation.report, validation.html
    results = validation.result["results"]
    computed = validation.result["synthpipe_checks"]
    passed = sum(r["success"] for r in results) + sum(c["success"] for c in computed)
    failed = len(results) + len(computed) - passed
    # One marker per check, plus GX's overall status (failed) in its overview.
    assert page.count('class="sp-status sp-pass"') == passed
    assert page.count('class="sp-status sp-fail"') == failed + 1
    assert f'<span id="evaluated">{int(report.metrics["evaluated"])}</span>' in page
    assert f'<span id="failed">{int(report.metrics["failed"])}</span>' in page
    assert report.metrics["failed"] == failed


def test_suite_and_page_are_marked_real_data_metadata(validated):
    suite, validation, _ = validated
    assert suite["meta"]["synthpipe"]["real_data_note"] == REAL_DATA_NOTE
    assert "Real-data metadata" in validation.html


def test_page_renders_styled_offline_in_chromium(validated, tmp_path):
    _, validation, gx_page = validated
    page = tmp_path / "data_docs.html"
    page.write_text(validation.html)
    dom = dump_dom(page, tmp_path / "profile")
    assert dom.count("\u2714 passed") >= 1 and dom.count("\u2718 failed") >= 1
    pixels = screenshot(page, tmp_path / "profile", height=3000)
    assert colour_share(pixels, PASS_GREEN) > 0.001 and colour_share(pixels, FAIL_RED) > 0.0002
    # GX's page, offline, shows neither colour: its status column is blank.
    raw = tmp_path / "gx.html"
    raw.write_text(gx_page)
    raw_pixels = screenshot(raw, tmp_path / "profile", height=3000)
    assert colour_share(raw_pixels, PASS_GREEN) == 0 and colour_share(raw_pixels, FAIL_RED) == 0
