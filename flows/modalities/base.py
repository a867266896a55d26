"""`Modality`: what a run does that depends on the shape of its data, for tables.

The flow picks one object per run (`flows.modalities.modality_of`) and calls its hooks; the
image, text and sequence modalities override only what differs from a table. Beside it, the
small objects the flow's steps hand each other: `Prepared` (the real data), `Fitted` (the
saved generator and what its fit reported) and `Sampled` (the synthetic data).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import pandas as pd

from flows.run_folder import PREVIEW_FILE, RunFolder
from generators.data.schema import Schema, apply_declared_kinds, infer_schema
from generators.data.split import split_holdout
from generators.data.streaming import ParquetSource
from generators.data.tables import read_table
from generators.sampling.conditions import Condition
from generators.sampling.constraints import Constraints
from validation import Report
from validation.fidelity import fidelity_report
from validation.plots import write_plots
from validation.privacy import (
    MIN_ROWS_FOR_PRIVACY,
    PrivacyPolicy,
    check_policy_columns,
)
from validation.protection import Protection
from validation.text import mask_pii

if TYPE_CHECKING:
    from flows.config import DataConfig, RunConfig

PREVIEW_ROWS = 20


@dataclass
class Prepared:
    """The real data of a run. `train`, `holdout`, `schema`: the real rows (for a stream,
    seeded samples of them), which the privacy and fidelity checks judge against;
    `model_train`, `model_schema`: the protected training table the generator sees (rare
    categories merged, isolated extremes clipped, PII masked), which the expectations and
    constraints learn from."""

    train: pd.DataFrame
    holdout: pd.DataFrame
    schema: Schema
    input_rows: int
    input_columns: int
    stream: ParquetSource | None = None
    train_rows: int = 0  # of the stream, not of its sample
    holdout_rows: int = 0
    conditions: list[Condition] = field(default_factory=list)
    units_to_sample: int = 0  # rows, or entities for sequences (sample.rows counts those)
    model_train: pd.DataFrame | None = None
    model_schema: Schema | None = None
    protection: Protection = field(default_factory=Protection)  # what protect changed
    constraints: Constraints | None = None


@dataclass
class Fitted:
    """A saved generator and the figures of its fit."""

    model_dir: Path
    losses: list[dict[str, float]]  # per epoch, as saved in generator.json
    dp_epsilon_spent: float | None = None  # under privacy.dp
    resumed_from_epoch: float | None = None  # when the fit resumed from a checkpoint
    # Under privacy.dp, how the fit spent its budget where the generator says so
    # (autoregressive: unit, sampling, the encoder's and DP-SGD's shares, per-column sources).
    dp_details: dict | None = None


@dataclass
class Sampled:
    """The synthetic data: in memory, or (sharded) Parquet parts and a check sample."""

    frame: pd.DataFrame  # all rows, or the seeded sample of the parts the checks judge
    parts: list[Path] | None = None
    similarity_threshold: float | None = None  # privacy.similarity_filter_quantile
    similarity_dropped: float | None = None

    @property
    def sharded(self) -> bool:
        return self.parts is not None


class Modality:
    """Tables, and the defaults of every other modality."""

    name: ClassVar[str] = "table"
    # Train a model on real, real + synthetic and synthetic rows (validation.downstream).
    downstream: ClassVar[bool] = True
    # Expectations require exactly as many synthetic rows as were asked for.
    fixed_row_count: ClassVar[bool] = True
    # The fewest training and holdout units (`units`: rows, images, documents) the privacy
    # check measures; a smaller split is refused before training (flows.tasks.split).
    privacy_min_units: ClassVar[int] = MIN_ROWS_FOR_PRIVACY
    unit_name: ClassVar[str] = "rows"  # what `units` counts, in messages

    # -- ingest ---------------------------------------------------------------------------
    def read(self, data: DataConfig) -> tuple[pd.DataFrame, Schema]:
        """The table `data` describes, and its schema (kinds overridden by data.schema)."""
        frame, arrow_schema = self._read_table(data)
        frame = apply_declared_kinds(frame, data.column_kinds)
        return frame, infer_schema(frame, data.column_kinds, arrow_schema)

    @staticmethod
    def _read_table(data: DataConfig):
        return read_table(
            data.path,
            format=data.format,
            columns=data.columns,
            header=data.header,
            separator=data.separator,
            na_values=data.na_values,
            encoding=data.encoding,
            drop=data.drop,
        )

    def check_schema(self, privacy: PrivacyPolicy, schema: Schema) -> None:
        """Settings that name columns (quasi-identifiers, secrets) name real ones."""
        check_policy_columns(privacy, schema)

    def split(self, frame: pd.DataFrame, config: RunConfig) -> tuple[pd.DataFrame, pd.DataFrame]:
        return split_holdout(frame, config.data.holdout_fraction, config.seed, config.data.target)

    def units(self, train: pd.DataFrame, config: RunConfig) -> int:
        """What sample.rows counts, in the training data: rows."""
        return len(train)

    # -- fit ------------------------------------------------------------------------------
    def protect(
        self, train: pd.DataFrame, schema: Schema, privacy: PrivacyPolicy, *, seed: int
    ) -> tuple[pd.DataFrame, Schema, Protection]:
        """Mask PII in text columns when privacy.text.mask_pii_input is set (tables add
        rare-category merging and extreme-value clipping: `TableModality.protect`)."""
        if privacy.text.mask_pii_input and schema.names_of("text"):
            train = train.copy()
            for name in schema.names_of("text"):
                train[name] = mask_pii(train[name])
        return train, schema, Protection()

    def generator_context(self, config: RunConfig) -> dict:
        """Constructor arguments beside the generator's params."""
        return {}

    def after_fit(self, generator, folder: RunFolder) -> None:
        """Files a fitted generator leaves beside its saved folder."""

    def rows_digest(self, frame: pd.DataFrame) -> str:
        """A digest of a table's rows (it keys the training checkpoints: keep it bit-exact)."""
        return hashlib.sha256(str(pd.util.hash_pandas_object(frame).sum()).encode()).hexdigest()

    # -- checks ---------------------------------------------------------------------------
    def check_privacy(self, train, holdout, synthetic, schema, config: RunConfig) -> Report:
        """The privacy report of `synthetic` against the holdout: each modality has its own
        (tables attack the release with shadows of its generator too)."""
        raise NotImplementedError

    def expectation_tables(
        self, train: pd.DataFrame, synthetic: pd.DataFrame, schema: Schema
    ) -> tuple[pd.DataFrame, Schema, pd.DataFrame]:
        """(real table, its schema, synthetic table) the expectation suite is built on."""
        return train, schema, synthetic

    def more_expectations(self, report, train, synthetic, schema, config, folder: Path) -> None:
        """Further suites, merged into the expectations `report`."""

    def check_fidelity(
        self, train, holdout, synthetic, schema, config: RunConfig, folder: RunFolder, fitted
    ) -> Report:
        report = fidelity_report(
            train,
            holdout,
            synthetic,
            schema,
            target=config.data.target,
            max_rows=config.validation.max_rows,
            seed=config.seed,
        )
        if config.validation.plots:
            sample_rows = config.validation.max_rows
            written = write_plots(
                train.sample(min(len(train), sample_rows), random_state=config.seed),
                synthetic.sample(min(len(synthetic), sample_rows), random_state=config.seed),
                schema,
                folder.plots,
            )
            report.details["plots"] = [folder.relative(path) for path in written]
        return report

    # -- outputs --------------------------------------------------------------------------
    def write_preview(self, synthetic: pd.DataFrame, run_dir: Path) -> None:
        """preview.csv: the first synthetic rows."""
        synthetic.head(PREVIEW_ROWS).to_csv(run_dir / PREVIEW_FILE, index=False)


def feature_schema(features: pd.DataFrame, label_column: str) -> Schema:
    """The schema of a per-item feature table (images, documents); the label is categorical."""
    kinds = {name: "categorical" for name in (label_column,) if name in features.columns}
    return infer_schema(features, kinds)
