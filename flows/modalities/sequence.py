"""Sequences: a long table of entities (an entity and an order column; generators.sequence.data).

The split holds out whole entities (or each entity's last rows), sample.rows counts
entities, the generator is built with the `data.sequence` settings, and privacy,
expectations (a second suite on per-entity figures) and fidelity judge entities.
"""

from __future__ import annotations

import json

from flows.config import SEQUENCE_REQUIRED
from flows.modalities.base import Modality
from generators.data.schema import apply_declared_kinds, infer_schema
from generators.errors import ConfigError
from generators.sequence.data import check_sequences, sequence_schema, split_sequences
from validation.expectations import build_suite, validate_table
from validation.sequences import (
    acf_plot,
    sequence_expectation_frame,
    sequence_fidelity_report,
    sequence_privacy_report,
)


class SequenceModality(Modality):
    name = "sequence"
    downstream = False
    fixed_row_count = False  # lengths are drawn, not fixed
    privacy_min_units = 1  # entities: the sequence check compares per-entity summaries
    unit_name = "entities"

    def read(self, data):
        frame, arrow_schema = self._read_table(data)
        if data.sequence is None:
            raise ConfigError(SEQUENCE_REQUIRED)
        frame = check_sequences(apply_declared_kinds(frame, data.column_kinds), data.sequence)
        # Assembled order columns change the table: infer its Arrow types afresh.
        arrow = None if data.sequence.order_parts else arrow_schema
        return frame, sequence_schema(infer_schema(frame, data.column_kinds, arrow), data.sequence)

    def check_schema(self, privacy, schema) -> None:
        pass

    def split(self, frame, config):
        data = config.data
        return split_sequences(frame, data.sequence, data.holdout_fraction, config.seed)

    def units(self, train, config) -> int:
        """Entities: for sequences, sample.rows counts those."""
        return train[config.data.sequence.entity_column].nunique()

    def generator_context(self, config) -> dict:
        return {"sequence": config.data.sequence}

    def check_privacy(self, train, holdout, synthetic, schema, config):
        return sequence_privacy_report(
            train,
            holdout,
            synthetic,
            config.data.sequence,
            config.privacy,
            seed=config.seed,
            schema=schema,
        )

    def more_expectations(self, report, train, synthetic, schema, config, folder) -> None:
        """Per entity (or window): length and each numeric column's lag-1 autocorrelation."""
        sequence = config.data.sequence
        real_units = sequence_expectation_frame(train, sequence, schema)
        synthetic_units = sequence_expectation_frame(synthetic, sequence, schema)
        unit_suite = build_suite(
            real_units,
            infer_schema(real_units),
            batch_rows=len(synthetic_units),
            sigmas=config.validation.sigmas,
            seed=config.seed,
            name=f"{config.name}-sequences",
        )
        units = validate_table(synthetic_units, unit_suite)
        (folder / "sequence_suite.json").write_text(json.dumps(unit_suite, indent=1))
        (folder / "sequence_data_docs.html").write_text(units.html)
        report.metrics.update({f"sequence.{k}": v for k, v in units.report.metrics.items()})
        report.failures += [f"sequence {line}" for line in units.report.failures]
        report.passed = report.passed and units.report.passed

    def check_fidelity(self, train, holdout, synthetic, schema, config, folder, fitted):
        sequence = config.data.sequence
        report = sequence_fidelity_report(
            train, holdout, synthetic, sequence, seed=config.seed, schema=schema
        )
        if config.validation.plots:
            folder.plots.mkdir(parents=True, exist_ok=True)
            path = acf_plot(train, synthetic, sequence, folder.plots / "acf.png", schema=schema)
            report.details["plots"] = [folder.relative(path)]
        return report
