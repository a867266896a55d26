"""The Great Expectations suite built from the training table, and validation against it.

Calibration, as the issue states it: a fresh real sample of the suite's batch size (the
holdout) passes the suite built from train, while the `uniform` baseline, a table with one
column shuffled across rows, a table with one numeric column's rank order reversed, a table
of the wrong length and a table with a missing or reordered column each fail, and the
failures name the column or pair. On a 3000-row seeded sample of the shipped Adult file and
a small mixed table built in code; the same calibration on the whole of
../shared/data/adult and nyc_taxis where ../shared is present.
"""

from __future__ import annotations

import functools
import json
import math
from dataclasses import dataclass
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest
from scipy.stats import chi2, spearmanr

from generators import infer_schema, make_generator
from generators.data.schema import Schema
from generators.data.split import split_holdout
from generators.data.tables import read_table
from tests.conftest import SHARED_DATA
from tests.generators.conftest import make_mixed_frame
from tests.validation.conftest import read_adult
from validation.expectations import (
    Validation,
    build_suite,
    cramers_v,
    spearman_matrix,
    validate_table,
)

# -- helpers -------------------------------------------------------------------------------


def _shuffle_column(frame: pd.DataFrame, name: str, seed: int) -> pd.DataFrame:
    """`name`'s values permuted across rows: its marginal is intact, its associations gone."""
    out = frame.copy()
    order = np.random.default_rng(seed).permutation(len(frame))
    out[name] = frame[name].iloc[order].to_numpy()
    return out


def _reverse_ranks(frame: pd.DataFrame, name: str) -> pd.DataFrame:
    """`name`'s smallest value where its largest was, and so on: the same multiset of values
    (missing ones stay where they are), every rank correlation with it negated."""
    out = frame.copy()
    values = frame[name]
    present = values.notna().to_numpy()
    ascending = np.sort(values[present].to_numpy())
    ranks = values[present].rank(method="first").to_numpy().astype(int) - 1
    flipped = values.copy()
    flipped[present] = ascending[::-1][ranks]
    out[name] = flipped
    return out


def _computed(suite: dict, check: str | None = None) -> list[dict]:
    checks = suite["meta"]["synthpipe"]["computed_checks"]
    return [c for c in checks if check is None or c["check"] == check]


def _assert_passes(validation: Validation, suite: dict) -> None:
    report = validation.report
    assert report.passed, report.failures
    assert report.failures == [] and report.details["failed_columns"] == []
    evaluated = len(suite["expectations"]) + len(_computed(suite))
    assert report.metrics == {
        "success_percent": 100.0,
        "evaluated": float(evaluated),
        "failed": 0.0,
    }


def _assert_fails_only_on_pairs_of(validation: Validation, suite: dict, column: str, check: str):
    """Every failure is a `check` pair check that names `column` (nothing else changed), and
    the pair with the strongest real association among them is one of the failures."""
    report = validation.report
    assert not report.passed
    assert report.failures
    for line in report.failures:
        assert f"'{column}'" in line and f": {check} failed:" in line, line
    pairs = [c for c in _computed(suite, check) if column in c["columns"]]
    strongest = max(pairs, key=lambda c: abs(c["real"]))
    assert any(
        all(f"'{name}'" in line for name in strongest["columns"]) for line in report.failures
    )
    failed = set(report.details["failed_columns"])
    assert column in failed and set(strongest["columns"]) <= failed
    assert failed <= {name for c in pairs for name in c["columns"]}
    assert report.metrics["failed"] == len(report.failures)


def _uniform_sample(train: pd.DataFrame, schema: Schema, rows: int) -> pd.DataFrame:
    return make_generator("uniform", device="cpu").fit(train, schema).sample(rows, seed=1)


def _assert_uniform_fails_naming_every_column(validation: Validation, schema: Schema) -> None:
    report = validation.report
    assert not report.passed
    # Each column is either far from uniform on its own (skewed categories, long tails) or
    # tied to another column by a pair check that independence breaks: every one is named.
    assert report.details["failed_columns"] == sorted(schema.names)
    for line in report.failures:
        assert line.startswith(("column '", "columns '")), line
    assert report.metrics["failed"] == len(report.failures)
    assert report.metrics["success_percent"] < 100.0


# -- Adult: a seeded 3000-row sample of the shipped file -----------------------------------


@pytest.fixture(scope="module")
def adult(adult_table, adult_parts) -> tuple[pd.DataFrame, pd.DataFrame, Schema, dict]:
    _, schema = adult_table
    train, holdout = adult_parts["train"], adult_parts["holdout"]
    suite = build_suite(train, schema, batch_rows=len(holdout), seed=0)
    return train, holdout, schema, suite


def test_suite_has_every_kind_of_check_for_adult(adult) -> None:
    train, holdout, schema, suite = adult
    meta = suite["meta"]["synthpipe"]
    assert meta["batch_rows"] == len(holdout) and meta["train_rows"] == len(train)
    kinds = {e["type"] for e in suite["expectations"]}
    assert "expect_table_columns_to_match_ordered_list" in kinds
    assert "expect_table_row_count_to_equal" not in kinds  # only when row_count is given
    for name in schema.names_of("numeric"):
        mine = {e["type"] for e in suite["expectations"] if e["kwargs"].get("column") == name}
        assert "expect_column_quantile_values_to_be_between" in mine, name
    for name in schema.names_of("categorical"):
        mine = {e["type"] for e in suite["expectations"] if e["kwargs"].get("column") == name}
        assert "expect_column_kl_divergence_to_be_less_than" in mine, name
    # 6 numeric columns: every pair has a Spearman check; some categorical pairs are dense
    # enough for Cramer's V at 1000 rows.
    assert len(_computed(suite, "spearman_correlation")) == 15
    assert _computed(suite, "cramers_v")


def test_training_table_passes_its_own_suite(adult) -> None:
    train, _, _, suite = adult
    _assert_passes(validate_table(train, suite), suite)


def test_holdout_passes_the_suite_built_from_train(adult) -> None:
    _, holdout, _, suite = adult
    _assert_passes(validate_table(holdout, suite), suite)


def test_uniform_baseline_fails_and_names_the_columns(adult) -> None:
    train, holdout, schema, suite = adult
    validation = validate_table(_uniform_sample(train, schema, len(holdout)), suite)
    _assert_uniform_fails_naming_every_column(validation, schema)


def test_one_column_shuffled_across_rows_fails_on_its_pairs(adult) -> None:
    _, holdout, _, suite = adult
    shuffled = _shuffle_column(holdout, "relationship", seed=3)
    _assert_fails_only_on_pairs_of(
        validate_table(shuffled, suite), suite, "relationship", "cramers_v"
    )


def test_reversed_rank_order_breaks_correlations_and_names_the_pair(adult) -> None:
    _, holdout, _, suite = adult
    flipped = _reverse_ranks(holdout, "age")
    assert sorted(flipped["age"]) == sorted(holdout["age"])  # the marginal is untouched
    validation = validate_table(flipped, suite)
    _assert_fails_only_on_pairs_of(validation, suite, "age", "spearman_correlation")


# -- a small mixed table: structure, JSON, Data Docs, datetimes ----------------------------

MIXED_ROWS = 1200


@pytest.fixture(scope="module")
def mixed() -> tuple[pd.DataFrame, pd.DataFrame, Schema, dict]:
    """Train (900) and holdout (300) of a seeded mixed table with an id, a datetime, numeric,
    categorical and boolean columns; the suite requires exactly the holdout's row count."""
    frame = make_mixed_frame(MIXED_ROWS, seed=5)
    schema = infer_schema(frame)
    train, holdout = split_holdout(frame, 0.25, seed=0)
    suite = build_suite(train, schema, batch_rows=len(holdout), row_count=len(holdout), seed=0)
    return train, holdout, schema, suite


@pytest.fixture(scope="module")
def mixed_holdout_validation(mixed) -> Validation:
    _, holdout, _, suite = mixed
    return validate_table(holdout, suite)


def test_holdout_of_the_mixed_table_passes(mixed, mixed_holdout_validation) -> None:
    _, _, _, suite = mixed
    _assert_passes(mixed_holdout_validation, suite)


def test_identifier_column_must_stay_unique(mixed) -> None:
    _, holdout, _, suite = mixed
    assert any(
        e["type"] == "expect_column_values_to_be_unique"
        and e["kwargs"].get("column") == "customer_id"
        for e in suite["expectations"]
    )
    repeated = holdout.copy()
    repeated.loc[1, "customer_id"] = repeated.loc[0, "customer_id"]
    report = validate_table(repeated, suite).report
    assert report.details["failed_columns"] == ["customer_id"]
    assert [line.split(" failed")[0] for line in report.failures] == [
        "column 'customer_id': expect_column_values_to_be_unique"
    ]


def test_wrong_row_count_fails_only_when_a_row_count_is_set(mixed) -> None:
    train, holdout, schema, suite = mixed
    short = holdout.iloc[:-1].reset_index(drop=True)
    report = validate_table(short, suite).report
    assert not report.passed
    assert report.failures == [
        f"table: expect_table_row_count_to_equal failed: observed {len(short)}, "
        f'expected {{"value": {len(holdout)}}}'
    ]
    assert report.details["failed_columns"] == []  # a table-level failure names no column
    # The control: the same suite without a row count takes the short table.
    any_length = build_suite(train, schema, batch_rows=len(holdout), seed=0)
    assert validate_table(short, any_length).report.passed


def test_reordered_columns_fail_on_the_column_order_only(mixed) -> None:
    _, holdout, schema, suite = mixed
    names = schema.names
    reordered = holdout[[names[1], names[0], *names[2:]]]
    report = validate_table(reordered, suite).report
    assert not report.passed
    assert len(report.failures) == 1
    assert report.failures[0].startswith(
        "table: expect_table_columns_to_match_ordered_list failed: observed"
    )


def test_missing_column_fails_and_is_named(mixed) -> None:
    _, holdout, _, suite = mixed
    report = validate_table(holdout.drop(columns=["region"]), suite).report
    assert not report.passed
    assert any(
        line.startswith("table: expect_table_columns_to_match_ordered_list failed")
        for line in report.failures
    )
    assert "region" in report.details["failed_columns"]
    # Its per-column expectations and its pair check fail too, each naming it.
    per_column = [e for e in suite["expectations"] if e["kwargs"].get("column") == "region"]
    named = [line for line in report.failures if "'region'" in line]
    assert len(named) == len(per_column) + len(
        [c for c in _computed(suite) if "region" in c["columns"]]
    )
    assert any("missing column(s) ['region']" in line for line in named)


def test_suite_round_trips_through_json_and_validates_a_later_batch_identically(mixed) -> None:
    import great_expectations as gx

    train, holdout, schema, suite = mixed
    loaded = json.loads(json.dumps(suite))
    assert loaded == suite
    assert len(gx.ExpectationSuite(**loaded).expectations) == len(suite["expectations"])
    # A later batch that fails some checks, so that failures are compared too.
    later = _uniform_sample(train, schema, len(holdout))
    first, again = validate_table(later, suite), validate_table(later, loaded)
    assert not first.report.passed
    assert again.report.to_dict() == first.report.to_dict()

    def outcomes(validation: Validation) -> list:
        return [
            (
                item["expectation_config"]["type"],
                item["expectation_config"]["kwargs"].get("column"),
                item["success"],
                item["result"].get("observed_value"),
            )
            for item in validation.result["results"]
        ]

    assert outcomes(again) == outcomes(first)
    assert again.result["synthpipe_checks"] == first.result["synthpipe_checks"]


def test_datetime_shift_fails_the_datetime_checks(mixed) -> None:
    train, holdout, schema, suite = mixed
    signup = train["signup"]
    # One interquartile range: far beyond a holdout's sampling noise in every quantile.
    shifted = holdout.copy()
    shifted["signup"] = holdout["signup"] + (signup.quantile(0.75) - signup.quantile(0.25))
    report = validate_table(shifted, suite).report
    assert not report.passed
    assert report.details["failed_columns"] == ["signup"]
    for line in report.failures:
        assert line.startswith(
            ("column 'signup': datetime_range failed", "column 'signup': datetime_quantile failed")
        ), line
    assert any("datetime_range" in line for line in report.failures)
    # Shifted by a tenth of the narrowest quantile band, the same column still passes.
    narrowest = min(
        pd.Timestamp(c["max"]) - pd.Timestamp(c["min"])
        for c in _computed(suite, "datetime_quantile")
    )
    nudged = holdout.copy()
    nudged["signup"] = holdout["signup"] + narrowest / 20
    assert validate_table(nudged, suite).report.passed


# -- Data Docs -----------------------------------------------------------------------------

# What GX 1.x's renderer writes for each expectation type (its prose, not the type name).
RENDERED_AS = {
    "expect_table_columns_to_match_ordered_list": "Must have these columns in this order",
    "expect_table_row_count_to_equal": "Must have exactly",
    "expect_column_values_to_be_of_type": "values must be of type",
    "expect_column_proportion_of_non_null_values_to_be_between": (
        "proportion of non-null values must be"
    ),
    "expect_column_values_to_be_unique": "values must be unique",
    "expect_column_values_to_be_between": "values must be greater than or equal to",
    "expect_column_mean_to_be_between": "mean must be",
    "expect_column_stdev_to_be_between": "standard deviation must be",
    "expect_column_median_to_be_between": "median must be",
    "expect_column_quantile_values_to_be_between": "quantiles must be within",
    "expect_column_values_to_be_in_set": "values must belong to this set",
    "expect_column_kl_divergence_to_be_less_than": "Kullback-Leibler (KL) divergence",
}


class _Page(HTMLParser):
    """Visible text nodes of a page, its title, and the rows of the computed-checks table."""

    def __init__(self):
        super().__init__()
        self.text: list[str] = []
        self.title = ""
        self.tags: dict[str, int] = {}
        self.section_in_body = False
        self.check_rows: list[list[str]] = []
        self._hidden = 0
        self._in_title = self._in_body = self._in_section = self._in_rows = False
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        self.tags[tag] = self.tags.get(tag, 0) + 1
        self._hidden += tag in ("style", "script")
        self._in_title |= tag == "title"
        self._in_body |= tag == "body"
        if tag == "h3" and ("id", "synthpipe-checks") in attrs:
            self._in_section, self.section_in_body = True, self._in_body
        if self._in_section and tag == "tbody":
            self._in_rows = True
        if self._in_rows and tag == "tr":
            self.check_rows.append([])
        if self._in_section and tag == "td":
            self._cell = []

    def handle_endtag(self, tag):
        self._hidden -= tag in ("style", "script")
        if tag == "title":
            self._in_title = False
        if tag == "body":
            self._in_body = False
        if tag == "table":
            self._in_section = self._in_rows = False
        if tag == "td" and self._cell is not None:
            self.check_rows[-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data):
        if self._in_title:
            self.title += data
        if self._cell is not None:
            self._cell.append(data)
        if not self._hidden and data.strip():
            self.text.append(data.strip())


def test_data_docs_render_and_list_every_expectation_and_computed_check(mixed) -> None:
    _, holdout, _, suite = mixed
    # A batch that fails some computed checks, so both marks appear in their table.
    shifted = holdout.copy()
    shifted["signup"] = holdout["signup"] + pd.Timedelta(days=365)
    validation = validate_table(shifted, suite)
    page = _Page()
    page.feed(validation.html)
    page.close()
    assert page.tags.get("html") == 1 and page.tags.get("body") == 1
    assert "Great Expectations" in page.title
    # GX's own overview counts the expectations it rendered.
    overview = page.text.index("Evaluated Expectations")
    assert page.text[overview + 1] == str(len(suite["expectations"]))
    # Every expectation of the suite appears as one rendered line of its type.
    types = [e["type"] for e in suite["expectations"]]
    assert set(types) <= set(RENDERED_AS), set(types) - set(RENDERED_AS)
    for kind in set(types):
        phrase = RENDERED_AS[kind]
        rendered = [t for t in page.text if t.startswith(phrase)]
        assert len(rendered) == types.count(kind), (kind, len(rendered))
    for name in holdout.columns:
        assert name in page.text  # the table of contents and the column sections
    # The computed checks: one row each, inside the body, marked as they came out.
    assert page.section_in_body
    computed = validation.result["synthpipe_checks"]
    assert len(page.check_rows) == len(computed) == len(_computed(suite))
    for row, check in zip(page.check_rows, computed, strict=True):
        mark, kind, columns, _observed = row
        assert mark == ("\u2714 passed" if check["success"] else "\u2718 failed")
        assert kind == check["check"] and columns == ", ".join(check["columns"])
    assert {row[0] for row in page.check_rows} == {"\u2714 passed", "\u2718 failed"}


# -- cramers_v and spearman_matrix ---------------------------------------------------------


def test_cramers_v_of_independent_columns_is_near_zero() -> None:
    rng = np.random.default_rng(0)
    n, r, k = 2000, 4, 6
    a, b = rng.integers(0, r, n), rng.integers(0, k, n)
    # Under independence chi2 follows chi-square with (r-1)(k-1) degrees of freedom; the
    # bound is the bias-corrected V at its one-in-a-million upper quantile.
    df = (r - 1) * (k - 1)
    phi2 = max(0.0, chi2.ppf(1 - 1e-6, df) / n - df / (n - 1))
    denominator = min(r - (r - 1) ** 2 / (n - 1), k - (k - 1) ** 2 / (n - 1)) - 1
    bound = math.sqrt(phi2 / denominator)
    assert bound < 0.1  # a meaningful bound at this size
    assert 0.0 <= cramers_v(a, b) <= bound
    assert cramers_v(a, b) == pytest.approx(cramers_v(b, a))


def test_cramers_v_of_a_column_with_itself_or_a_relabelling_is_one() -> None:
    rng = np.random.default_rng(1)
    a = rng.integers(0, 5, 500)
    assert cramers_v(a, a) == pytest.approx(1.0)
    relabelled = np.array([7, 3, 11, 0, 42])[a]  # codes need not be 0..k-1
    assert cramers_v(a, relabelled) == pytest.approx(1.0)
    # A coarsening (5 levels into 2) keeps some association but not all of it.
    assert 0.3 < cramers_v(a, a % 2) < 1.0


def test_cramers_v_with_a_constant_column_is_zero() -> None:
    rng = np.random.default_rng(2)
    a = rng.integers(0, 3, 300)
    constant = np.zeros(300, dtype=int)
    assert cramers_v(a, constant) == 0.0
    assert cramers_v(constant, a) == 0.0
    assert cramers_v(constant, constant) == 0.0


def test_spearman_matrix_matches_scipy() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=300)
    matrix = np.column_stack(
        [
            x,
            np.exp(x) + rng.normal(scale=0.5, size=300),  # monotone-ish, with noise
            rng.integers(0, 5, 300).astype(float),  # heavy ties
            -(x**3),  # perfectly reversed ranks
        ]
    )
    expected = spearmanr(matrix).statistic
    np.testing.assert_allclose(spearman_matrix(matrix), expected, rtol=0, atol=1e-12)
    assert spearman_matrix(matrix)[0, 3] == pytest.approx(-1.0)


def test_spearman_matrix_drops_rows_missing_in_a_pair() -> None:
    rng = np.random.default_rng(4)
    matrix = rng.normal(size=(200, 3))
    matrix[:, 1] += matrix[:, 0]
    missing = rng.choice(200, size=30, replace=False)
    matrix[missing, 0] = matrix[missing, 1] = np.nan  # the same rows in both columns
    complete = np.delete(matrix, missing, axis=0)
    result = spearman_matrix(matrix)
    assert result[0, 1] == pytest.approx(spearmanr(complete[:, 0], complete[:, 1]).statistic)
    assert not np.isnan(result).any()


# -- the whole of ../shared/data/adult and nyc_taxis ---------------------------------------


@dataclass
class SharedCase:
    train: pd.DataFrame
    holdout: pd.DataFrame
    schema: Schema
    suite: dict
    shuffle: str  # a categorical column with strong associations
    reverse: str  # a numeric column with strong correlations


@functools.cache
def _shared_case(name: str) -> SharedCase:
    """Read, split as the shipped configs do (20% holdout, seed 0) and build the suite for
    batches the size of the holdout. Cached: the first test of a dataset pays for it."""
    if name == "adult":
        frame, schema = read_adult(SHARED_DATA / "adult" / "adult.data.gz")
        target, shuffle, reverse = "income", "relationship", "age"
    else:
        frame, arrow_schema = read_table(str(SHARED_DATA / "nyc_taxis" / "taxis.csv.gz"))
        schema = infer_schema(frame, arrow_schema=arrow_schema)
        target, shuffle, reverse = None, "pickup_borough", "fare"
    train, holdout = split_holdout(frame, 0.2, seed=0, target=target)
    suite = build_suite(train, schema, batch_rows=len(holdout), seed=0)
    return SharedCase(train, holdout, schema, suite, shuffle, reverse)


SHARED_SETS = ["adult", "nyc_taxis"]


@pytest.mark.shared_data
@pytest.mark.parametrize(
    "name",
    [
        "adult",
        "nyc_taxis",
    ],
)
def test_shared_training_table_passes_its_own_suite(shared_data, name) -> None:
    case = _shared_case(name)
    _assert_passes(validate_table(case.train, case.suite), case.suite)


@pytest.mark.shared_data
@pytest.mark.parametrize("name", SHARED_SETS)
def test_shared_holdout_passes_the_suite_built_from_train(shared_data, name) -> None:
    case = _shared_case(name)
    _assert_passes(validate_table(case.holdout, case.suite), case.suite)


@pytest.mark.shared_data
@pytest.mark.parametrize("name", SHARED_SETS)
def test_shared_uniform_baseline_fails_naming_columns(shared_data, name) -> None:
    case = _shared_case(name)
    uniform = _uniform_sample(case.train, case.schema, len(case.holdout))
    _assert_uniform_fails_naming_every_column(validate_table(uniform, case.suite), case.schema)


@pytest.mark.shared_data
@pytest.mark.parametrize("name", SHARED_SETS)
def test_shared_shuffled_column_fails_naming_it(shared_data, name) -> None:
    case = _shared_case(name)
    shuffled = _shuffle_column(case.holdout, case.shuffle, seed=3)
    validation = validate_table(shuffled, case.suite)
    _assert_fails_only_on_pairs_of(validation, case.suite, case.shuffle, "cramers_v")


@pytest.mark.shared_data
@pytest.mark.parametrize("name", SHARED_SETS)
def test_shared_broken_correlation_fails_naming_the_pair(shared_data, name) -> None:
    case = _shared_case(name)
    validation = validate_table(_reverse_ranks(case.holdout, case.reverse), case.suite)
    _assert_fails_only_on_pairs_of(validation, case.suite, case.reverse, "spearman_correlation")


@pytest.mark.shared_data
@pytest.mark.parametrize("column", ["pickup", "dropoff"])
def test_shared_nyc_taxis_shifted_datetime_fails_naming_it(shared_data, column) -> None:
    case = _shared_case("nyc_taxis")
    values = case.train[column]
    shifted = case.holdout.copy()
    shifted[column] = case.holdout[column] + (values.quantile(0.75) - values.quantile(0.25))
    report = validate_table(shifted, case.suite).report
    assert not report.passed
    assert report.details["failed_columns"] == [column]
    for line in report.failures:
        assert line.startswith(f"column '{column}': datetime_"), line
    failed_kinds = {line.split(": ")[1].split(" failed")[0] for line in report.failures}
    assert failed_kinds == {"datetime_range", "datetime_quantile"}
