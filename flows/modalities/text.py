"""Text: a table with a `text` string column, one document per row (see generators.text).

Privacy and fidelity on documents (validation.text), with the fitted model's holdout
perplexity where it has one; expectations on per-document figures; samples.txt beside the
preview; topic models leave their topics beside the saved model.
"""

from __future__ import annotations

from flows.modalities.base import PREVIEW_ROWS, Modality, feature_schema
from flows.run_folder import SAMPLES_FILE, TOPICS_FILE
from generators.data.schema import apply_declared_kinds, infer_schema
from generators.data.tables import check_drop
from generators.image.data import LABEL_COLUMN
from generators.registry import load_generator
from generators.text.data import TEXT_COLUMN, read_text
from validation.text import text_features, text_fidelity_report, text_privacy_report, vocabulary_of

PERPLEXITY_DOCS = 2000  # holdout documents scored by a text model's perplexity


class TextModality(Modality):
    name = "text"
    downstream = False

    def read(self, data):
        frame = read_text(
            data.path,
            split=data.text.split,
            chunk_chars=data.text.chunk_chars,
            text_column=data.text.column,
            encoding=data.encoding,
            min_chars=data.text.min_chars,
        )
        check_drop(data.drop, frame.columns, data.path)
        frame = apply_declared_kinds(frame.drop(columns=data.drop), data.column_kinds)
        return frame, infer_schema(frame, {TEXT_COLUMN: "text", **data.column_kinds})

    def check_schema(self, privacy, schema) -> None:
        pass

    def after_fit(self, generator, folder) -> None:
        if hasattr(generator, "top_words"):  # topic models: their topics travel with the model
            generator.top_words().to_csv(folder.generator / TOPICS_FILE, index=False)

    def check_privacy(self, train, holdout, synthetic, schema, config):
        return text_privacy_report(train, holdout, synthetic, config.privacy.text, seed=config.seed)

    def expectation_tables(self, train, synthetic, schema):
        # Documents are checked through per-document figures (lengths, vocabulary).
        labels = [n for n in schema.names if schema[n].kind in ("categorical", "boolean")]
        label = labels[0] if len(labels) == 1 else None
        vocabulary = vocabulary_of(train[TEXT_COLUMN].dropna())
        train_figures, synthetic_figures = (
            text_features(frame, vocabulary=vocabulary, label_column=label)
            for frame in (train, synthetic)
        )
        return train_figures, feature_schema(train_figures, LABEL_COLUMN), synthetic_figures

    def check_fidelity(self, train, holdout, synthetic, schema, config, folder, fitted):
        report = text_fidelity_report(
            train, holdout, synthetic, seed=config.seed, max_rows=config.validation.max_rows
        )
        report.details["samples"] = synthetic[TEXT_COLUMN].head(PREVIEW_ROWS).tolist()
        generator = load_generator(fitted.model_dir)
        if hasattr(generator, "perplexity"):
            # Units differ by model (hmm: its tokens; lda: words; char_lm: characters).
            texts = holdout[TEXT_COLUMN].dropna().head(PERPLEXITY_DOCS).tolist()
            report.metrics["holdout_perplexity"] = float(generator.perplexity(texts))
        return report

    def write_preview(self, synthetic, run_dir) -> None:
        if synthetic[TEXT_COLUMN].dtype == "string":
            documents = synthetic[TEXT_COLUMN].head(PREVIEW_ROWS).fillna("").tolist()
            (run_dir / SAMPLES_FILE).write_text("\n\n---\n\n".join(documents) + "\n")
        super().write_preview(synthetic, run_dir)
