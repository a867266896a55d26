"""Cross-check validation.attacks against anonymeter on the same ori / syn / control data.

    python benchmarks/anonymeter_check.py                 # seeded mixed table, built here
    python benchmarks/anonymeter_check.py data.csv        # or a CSV of your own
    python benchmarks/anonymeter_check.py --json out.json # also write the figures

Runs our three attacks on two synthetic tables, a copy of the training rows ("copy": the
worst case) and an independent draw from the same distribution ("independent": no leak),
and, when `import anonymeter` works in the interpreter running this, anonymeter's
evaluators on the very same frames, printing both side by side. anonymeter 1.1.0 pins
numpy<1.27 and pyarrow<22, so it lives in a venv of its own (see benchmarks/README.md):

    python3 -m venv /tmp/anonvenv
    /tmp/anonvenv/bin/pip install anonymeter==1.1.0 torch==2.13.0 pydantic pyyaml scikit-learn tqdm
    /tmp/anonvenv/bin/pip install --no-deps -e .
    /tmp/anonvenv/bin/python benchmarks/anonymeter_check.py

Both sides see the same rows; they differ by design in randomness (anonymeter's linkability
and inference draw targets unseeded) and in the distance (anonymeter: L1 Gower-like;
ours: validation.distance), so figures agree within their confidence intervals, not digit
for digit. Run from the repository root, or with the repository on PYTHONPATH.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from generators.data.schema import Schema, infer_schema, normalize_dtypes  # noqa: E402
from generators.data.split import split_holdout  # noqa: E402
from generators.data.tables import read_table  # noqa: E402
from validation.attacks import (  # noqa: E402
    RiskEstimate,
    inference_risk,
    linkability_risk,
    singling_out_risk,
)

ROWS = 2000
SEED = 7
HOLDOUT_FRACTION = 0.25
REGIONS = ("north", "south", "east", "west", "centre", "islands")
EDUCATION = (
    "none",
    "primary",
    "secondary",
    "vocational",
    "bachelor",
    "master",
    "doctorate",
    "other",
)
OCCUPATIONS = tuple(f"occ_{i:02d}" for i in range(12))


def make_table(rows: int = ROWS, seed: int = SEED) -> pd.DataFrame:
    """A seeded mixed table in synthpipe's nullable dtypes, with many distinct combinations.

    person_id: identifier; age: Int64 (2% missing); income: Float64, depends on age and
    education; hours: Int64; region, education, occupation (depends on education): strings;
    member: boolean; signup: datetime at day resolution. Two calls with different seeds are
    independent draws from one distribution.
    """
    rng = np.random.default_rng(seed)
    age = rng.integers(18, 90, rows)
    education = rng.integers(0, len(EDUCATION), rows)
    occupation = (education + rng.integers(0, 5, rows)) % len(OCCUPATIONS)
    income = np.exp(9.0 + 0.012 * age + 0.15 * education + rng.normal(0.0, 0.35, rows))
    hours = np.clip(np.rint(rng.normal(38, 8, rows)), 1, 80).astype(int)
    age_values = pd.array(age, dtype="Int64")
    age_values[rng.random(rows) < 0.02] = pd.NA
    frame = pd.DataFrame(
        {
            "person_id": pd.array(rng.permutation(rows) + 100_000, dtype="Int64"),
            "age": age_values,
            "income": pd.array(np.round(income, 2), dtype="Float64"),
            "hours": pd.array(hours, dtype="Int64"),
            "region": pd.array(
                rng.choice(REGIONS, rows, p=(0.3, 0.25, 0.2, 0.15, 0.07, 0.03)), dtype="string"
            ),
            "education": pd.array(np.array(EDUCATION)[education], dtype="string"),
            "occupation": pd.array(np.array(OCCUPATIONS)[occupation], dtype="string"),
            "member": pd.array(rng.random(rows) < 0.3, dtype="boolean"),
            "signup": pd.Timestamp("2021-01-01")
            + pd.to_timedelta(rng.integers(0, 3 * 365, rows), unit="D"),
        }
    )
    return normalize_dtypes(frame)


def scenario_frames(
    frame: pd.DataFrame | None = None, seed: int = SEED
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, pd.DataFrame], Schema, pd.DataFrame | None]:
    """(train, holdout, {"copy": ..., "independent": ...}, schema, large control).

    The independent table is a fresh draw of `make_table`; for a CSV, a third of its rows
    set aside before the train/holdout split (real people, none in train or holdout). The
    large control, for the built-in table only, is another fresh draw as large as the
    training set: the set-up in which anonymeter's singling out needs no size correction.
    """
    own = frame is None
    large_control = None
    if own:
        frame = make_table(seed=seed)
    else:
        frame, independent = split_holdout(frame, 1 / 3, seed=seed + 1)
    schema = infer_schema(frame)
    train, holdout = split_holdout(frame, HOLDOUT_FRACTION, seed=seed)
    if own:
        independent = make_table(rows=len(train), seed=seed + 1000)
        large_control = make_table(rows=len(train), seed=seed + 5000)
    synthetics = {"copy": train.copy(), "independent": independent}
    return train, holdout, synthetics, schema, large_control


def attack_settings(schema: Schema) -> dict:
    """The attacks' columns: linkability halves and an inference secret, from the schema."""
    columns = schema.names_of("numeric", "categorical", "boolean", "datetime")
    if "occupation" in columns and "income" in columns:  # the built-in table
        return {
            "aux": (["age", "region", "member", "signup"], ["income", "hours", "education"]),
            "secrets": ["occupation", "income"],
        }
    half = len(columns) // 2
    categorical = schema.names_of("categorical") or columns
    return {"aux": (columns[:half], columns[half:]), "secrets": [categorical[0]]}


def ours(train, holdout, synthetic, schema, settings, n_attacks, seed) -> dict[str, RiskEstimate]:
    out = {}
    for mode in ("univariate", "multivariate"):
        out[f"singling_out_{mode}"] = singling_out_risk(
            train, holdout, synthetic, schema, n_attacks=n_attacks, mode=mode, seed=seed
        )
    out["linkability"] = linkability_risk(
        train,
        holdout,
        synthetic,
        schema,
        aux_columns=settings["aux"],
        n_attacks=n_attacks,
        seed=seed,
    )
    for secret in settings["secrets"]:
        out[f"inference_{secret}"] = inference_risk(
            train, holdout, synthetic, schema, secret=secret, n_attacks=n_attacks, seed=seed
        )
    return out


def theirs(
    train, holdout, synthetic, schema, settings, n_attacks, seed, large_control=None
) -> dict[str, dict]:
    """anonymeter's evaluators on the same frames, without identifier and text columns.

    With `large_control`, singling out is also run against it ("... (control = n rows)").
    """
    from anonymeter.evaluators import (
        InferenceEvaluator,
        LinkabilityEvaluator,
        SinglingOutEvaluator,
    )

    columns = schema.names_of("numeric", "categorical", "boolean", "datetime")
    sub = Schema(tuple(c for c in schema.columns if c.name in columns), schema.arrow_schema)

    # numpy dtypes (float64 + NaN, object strings): what anonymeter's type detection expects.
    # Datetimes go as ISO strings: anonymeter 1.1.0's multivariate singling out compares a
    # datetime column to str(value), which polars refuses; as strings they are categories,
    # which is what anonymeter makes of them anyway (equality predicates, 0/1 distance).
    def prepare(frame: pd.DataFrame) -> pd.DataFrame:
        out = sub.to_model_frame(frame[columns]).reset_index(drop=True)
        for name in sub.names_of("datetime"):
            values = out[name]
            out[name] = values.dt.strftime("%Y-%m-%d %H:%M:%S").astype(object)
            out.loc[values.isna(), name] = np.nan
        return out

    ori, syn, control = (prepare(f) for f in (train, synthetic, holdout))
    n = min(n_attacks, len(control))
    out = {}
    for mode in ("univariate", "multivariate"):
        evaluator = SinglingOutEvaluator(ori=ori, syn=syn, control=control, n_attacks=n, seed=seed)
        out[f"singling_out_{mode}"] = _their_result(evaluator.evaluate(mode=mode))
        if large_control is not None:
            evaluator = SinglingOutEvaluator(
                ori=ori, syn=syn, control=prepare(large_control), n_attacks=n, seed=seed
            )
            key = f"singling_out_{mode} (control = {len(large_control)} rows)"
            out[key] = _their_result(evaluator.evaluate(mode=mode))
    evaluator = LinkabilityEvaluator(
        ori=ori, syn=syn, control=control, n_attacks=n, aux_cols=settings["aux"], n_neighbors=1
    )
    out["linkability"] = _their_result(evaluator.evaluate(n_jobs=-1))
    for secret in settings["secrets"]:
        evaluator = InferenceEvaluator(
            ori=ori,
            syn=syn,
            control=control,
            n_attacks=n,
            secret=secret,
            aux_cols=[c for c in columns if c != secret],
            regression=schema[secret].kind == "numeric",
        )
        out[f"inference_{secret}"] = _their_result(evaluator.evaluate(n_jobs=-1))
    return out


def _their_result(evaluator) -> dict:
    results = evaluator.results()
    risk = evaluator.risk()
    return {
        "risk": risk.value,
        "ci_low": risk.ci[0],
        "ci_high": risk.ci[1],
        "attack_rate": results.attack_rate.value,
        "control_rate": results.control_rate.value,
        "baseline_rate": results.baseline_rate.value,
        "n_attacks": results.n_attacks_ori,
    }


def _row(name: str, side: str, r: dict | None) -> str:
    if r is None:
        return f"{name:<26} {side:<11} {'(not run)':>8}"
    return (
        f"{name:<26} {side:<11} {r['risk']:8.3f} [{r['ci_low']:.3f}, {r['ci_high']:.3f}]"
        f" {r['attack_rate']:8.3f} {r['control_rate']:8.3f} {r['baseline_rate']:8.3f}"
        f" {r['n_attacks']:5d}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("csv", nargs="?", help="a CSV to use instead of the built-in table")
    parser.add_argument("--n-attacks", type=int, default=500)
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--json", type=Path, help="write all figures to this file")
    args = parser.parse_args(argv)

    frame = read_table(args.csv)[0] if args.csv else None
    train, holdout, synthetics, schema, large_control = scenario_frames(frame, seed=args.seed)
    settings = attack_settings(schema)
    try:
        import anonymeter  # noqa: F401

        have_anonymeter = True
    except ImportError:
        have_anonymeter = False
    versions = {m.__name__: m.__version__ for m in (np, pd)}
    import pyarrow

    versions["pyarrow"] = pyarrow.__version__
    if have_anonymeter:
        from importlib.metadata import version

        versions["anonymeter"] = version("anonymeter")
    print(
        f"train {len(train)} rows, holdout (control) {len(holdout)}, seed {args.seed}; "
        + ", ".join(f"{k} {v}" for k, v in versions.items())
    )
    if not have_anonymeter:
        print("anonymeter is not importable here: printing ours only")

    figures: dict = {"versions": versions}
    for scenario, synthetic in synthetics.items():
        print(f"\nsynthetic = {scenario} ({len(synthetic)} rows)")
        print(
            f"{'attack':<26} {'side':<11} {'risk':>8} {'[95% CI]':<16} {'attack':>8} "
            f"{'control':>8} {'baseline':>8} {'n':>5}"
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            start = time.perf_counter()
            mine = {
                k: v.to_dict()
                for k, v in ours(
                    train, holdout, synthetic, schema, settings, args.n_attacks, args.seed
                ).items()
            }
            mine_s = time.perf_counter() - start
            start = time.perf_counter()
            other = (
                theirs(
                    train,
                    holdout,
                    synthetic,
                    schema,
                    settings,
                    args.n_attacks,
                    args.seed,
                    large_control,
                )
                if have_anonymeter
                else {}
            )
            other_s = time.perf_counter() - start
        for name in mine:
            print(_row(name, "synthpipe", mine[name]))
            if have_anonymeter:
                print(_row(name, "anonymeter", other.get(name)))
                for extra in (k for k in other if k.startswith(f"{name} (")):
                    print(_row(f"  {extra[len(name) + 1 :]}", "anonymeter", other[extra]))
        print(
            f"time: synthpipe {mine_s:.1f} s"
            + (f", anonymeter {other_s:.1f} s" if have_anonymeter else "")
        )
        figures[scenario] = {"synthpipe": mine, "anonymeter": other}
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2, default=float))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
