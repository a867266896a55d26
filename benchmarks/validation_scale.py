"""Time and peak memory of the statistical checks at scale: building the expectation suite,
validating an N-row table with it (GX + computed checks + Data Docs), and the fidelity
report (SDMetrics, efficacy, discriminator on its default 20k-row subsample).

Data: the shipped Adult file; the suite is built from its first 80%, and the table to
validate is those rows bootstrapped to N (a real-like table, so every check does its full
work rather than failing early).

    python benchmarks/validation_scale.py                 # N = 100k and 1M
    python benchmarks/validation_scale.py 250000          # one N
"""

from __future__ import annotations

import resource
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from generators.data.schema import infer_schema  # noqa: E402
from generators.data.split import split_holdout  # noqa: E402
from generators.data.tables import read_table  # noqa: E402
from tests.conftest import ADULT_COLUMNS, ADULT_FILE  # noqa: E402
from validation.expectations import build_suite, validate_table  # noqa: E402
from validation.fidelity import fidelity_report  # noqa: E402


def main(sizes: list[int]) -> None:
    frame, arrow = read_table(
        str(ADULT_FILE), columns=ADULT_COLUMNS, separator=", ", na_values=["?"]
    )
    schema = infer_schema(frame, None, arrow)
    train, holdout = split_holdout(frame, 0.2, 0, "income")
    rng = np.random.default_rng(0)
    print(f"{'rows':>10} {'build s':>8} {'validate s':>10} {'checks':>7} {'fidelity s':>10}")
    for n in sizes:
        table = train.iloc[rng.integers(0, len(train), n)].reset_index(drop=True)
        started = time.perf_counter()
        suite = build_suite(train, schema, batch_rows=min(n, len(holdout)), row_count=n)
        built = time.perf_counter()
        validation = validate_table(table, suite)
        validated = time.perf_counter()
        fidelity_report(train, holdout, table, schema, target="income")
        scored = time.perf_counter()
        checks = int(validation.report.metrics["evaluated"])
        print(
            f"{n:>10} {built - started:>8.1f} {validated - built:>10.1f} {checks:>7} "
            f"{scored - validated:>10.1f}"
        )
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS {peak_mib:.0f} MiB")


if __name__ == "__main__":
    main([int(arg) for arg in sys.argv[1:]] or [100_000, 1_000_000])
