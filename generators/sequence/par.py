"""SDV's PARSynthesizer (probabilistic autoregressive GRU, deepecho) as a sequence generator.

SDV, deepecho and RDT are under the Business Source License 1.1; every use of them stays
inside this module and `generators/table/sdv.py`, so a deployment that must avoid them leaves
`par` out of its configs. Saved models are SDV's pickles (`unpickles_on_load`): load them
only from a store you trust.

Mapping: the entity column is SDV's `sequence_key` (as strings; the base class issues
fresh ids at sampling), every value column is a column of the one table with the sdtype
of its kind. The order column is NOT given to PAR as `sequence_index`: rows reach PAR in
time order, and synthetic timestamps come from the cadence the base class learned (start
drawn from the real starts, most common step), as for every sequence generator, so they
are strictly increasing by construction. Given a `sequence_index`, PAR would model the
gaps as one more noisy column (negative gaps included) and spend capacity on it.

Windows: `data.sequence.max_length` is PAR's `segment_size` in training. deepecho samples a
sequence by re-running the GRU over the whole prefix at every step (O(T^2) per sequence),
so a long entity is sampled as consecutive pieces of at most `max_length` rows, each an
independent PAR sequence, and the pieces are concatenated: the series restarts at each
piece boundary (no state carries over), which shows as a dip in the autocorrelation at
lags across boundaries. Choose max_length as long as sampling time allows.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd
from pydantic import Field

from generators.base import Params, resolve_device
from generators.sequence.base import SequenceGenerator

TABLE = "table"
SDV_FILE = "par_synthesizer.pkl"
_KEY = "__synthpipe_entity"
_SDTYPES = {
    "numeric": "numerical",
    "categorical": "categorical",
    "boolean": "boolean",
    "datetime": "datetime",
}


class PARParams(Params):
    # SDV's default is 128 epochs; each epoch is one full-batch pass over all windows.
    epochs: int = Field(128, ge=1)
    # PAR samples this many sequences per request and keeps the most likely one.
    sample_size: int = Field(1, ge=1)
    enforce_min_max_values: bool = True
    enforce_rounding: bool = True
    verbose: bool = False


class PARGenerator(SequenceGenerator):
    """SDV's PARSynthesizer behind the sequence interface (see the module docstring)."""

    name = "par"
    Params = PARParams
    unpickles_on_load: ClassVar[bool] = True

    def _metadata(self):
        from sdv.metadata import Metadata

        assert self.schema_ is not None
        columns = {_KEY: {"sdtype": "id"}}
        for name in self.value_columns:
            columns[name] = {"sdtype": _SDTYPES[self.schema_[name].kind]}
        return Metadata.load_from_dict(
            {"tables": {TABLE: {"columns": columns, "sequence_key": _KEY}}}
        )

    def _fit_sequences(self, values: pd.DataFrame, lengths: np.ndarray) -> None:
        from sdv.sequential import PARSynthesizer

        assert self.schema_ is not None and self.sequence is not None
        frame = self.schema_.conform_subset(values)
        frame = self.schema_.to_model_frame(frame)
        frame.insert(0, _KEY, np.repeat([f"e{i}" for i in range(len(lengths))], lengths))
        p = self.params
        self.synthesizer_ = PARSynthesizer(
            self._metadata(),
            enforce_min_max_values=p.enforce_min_max_values,
            enforce_rounding=p.enforce_rounding,
            # SDV drops sequences shorter than segment_size: segment only when some
            # sequence is longer than the window.
            segment_size=(
                self.sequence.max_length
                if self.sequence.max_length and lengths.max() > self.sequence.max_length
                else None
            ),
            epochs=p.epochs,
            sample_size=p.sample_size,
            cuda=resolve_device(self.device) == "cuda",
            verbose=p.verbose,
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.synthesizer_.fit({TABLE: frame})
        self.losses_ = self._epoch_losses()

    def _epoch_losses(self) -> list[dict[str, float]]:
        history = self.synthesizer_.get_loss_values()
        if history is None or len(history) == 0:
            return []
        per_epoch = history.groupby("Epoch")["Loss"].mean().sort_index()
        return [{"loss": float(value)} for value in per_epoch]

    def _sample_sequences(self, lengths: np.ndarray) -> pd.DataFrame:
        """Pieces of at most max_length rows, grouped by length (one SDV call per distinct
        piece length), then put back entity by entity."""
        assert self.sequence is not None
        window = self.sequence.max_length
        pieces: list[list[int]] = []
        for length in lengths:
            if window is None:
                pieces.append([int(length)])
            else:
                full, rest = divmod(int(length), window)
                pieces.append([window] * full + ([rest] if rest else []))
        by_length: dict[int, list[pd.DataFrame]] = {}
        self._seed_synthesizer()
        for size in sorted({size for entity in pieces for size in entity}):
            count = sum(entity.count(size) for entity in pieces)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                sampled = self.synthesizer_.sample_sequences(count, sequence_length=size)[TABLE]
            groups = [group for _, group in sampled.groupby(_KEY, sort=False)]
            if len(groups) != count or any(len(group) != size for group in groups):
                raise AssertionError(
                    f"PAR returned other sequences than the {count} x {size} asked"
                )
            by_length[size] = groups[::-1]  # popped from the end: first sampled, first used
        parts = [by_length[size].pop() for entity in pieces for size in entity]
        frame = pd.concat(parts, ignore_index=True)
        return frame[self.value_columns]

    def _seed_synthesizer(self) -> None:
        """Derive SDV's random states from the (already seeded) global NumPy RNG; deepecho
        samples from torch's global RNG, which the base class seeds. Private SDV/RDT
        attributes, as in generators/table/sdv.py."""
        self.synthesizer_._data_processor.reset_sampling()
        hyper = self.synthesizer_._data_processor._hyper_transformer
        for transformer in hyper.field_transformers.values():
            if hasattr(transformer, "set_random_state"):
                state = np.random.RandomState(int(np.random.randint(2**31)))
                transformer.set_random_state(state, "reverse_transform")
        context = self.synthesizer_._context_synthesizer
        context.reset_sampling()
        context._set_random_state(int(np.random.randint(2**31)))

    def _save_model(self, path: Path) -> None:
        self.synthesizer_.save(str(path / SDV_FILE))

    def _load_model(self, path: Path) -> None:
        from sdv.utils import load_synthesizer

        self.synthesizer_ = load_synthesizer(str(path / SDV_FILE))
