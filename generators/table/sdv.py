"""Adapters for SDV's single-table synthesizers: GaussianCopula, CTGAN, TVAE and CopulaGAN.

SDV, CTGAN, RDT and copulas are under the Business Source License 1.1 (no commercial
"synthetic data service"); every use of them stays inside this module, so a deployment
that must avoid them simply leaves these names out of its configs.

SDV 2.0 takes and returns `{table_name: DataFrame}`; identifier columns never reach it
(the base class re-issues them), so its own id generation, which ignores seeds, is unused.

Conditional sampling: `gaussian_copula` conditions natively through SDV's
`sample_from_conditions` (the copula is conditioned on the fixed values; SDV then keeps the
rows that match exactly). CTGAN, TVAE and CopulaGAN are left to synthpipe's rejection
sampling: SDV's conditional sampling for them is rejection sampling too.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import pandas as pd

from generators.base import Generator, Params, resolve_device
from generators.errors import DataError

TABLE = "table"
SDV_FILE = "sdv_synthesizer.pkl"
_SDTYPES = {
    "numeric": "numerical",
    "categorical": "categorical",
    "boolean": "boolean",
    "datetime": "datetime",
}
Distribution = Literal["norm", "beta", "truncnorm", "gamma", "uniform", "gaussian_kde"]


class CopulaParams(Params):
    enforce_min_max_values: bool = True
    enforce_rounding: bool = True
    # SDV's own default; "norm" fits about 2x faster on Adult at some cost in fidelity.
    default_distribution: Distribution = "beta"


class GANParams(Params):
    enforce_min_max_values: bool = True
    enforce_rounding: bool = True
    epochs: int = 300
    batch_size: int = 500
    embedding_dim: int = 128
    generator_dim: tuple[int, ...] = (256, 256)
    discriminator_dim: tuple[int, ...] = (256, 256)
    generator_lr: float = 2e-4
    discriminator_lr: float = 2e-4
    discriminator_steps: int = 1
    pac: int = 10
    verbose: bool = True  # SDV's per-epoch progress bar


class CopulaGANParams(GANParams):
    default_distribution: Distribution = "beta"


class TVAEParams(Params):
    enforce_min_max_values: bool = True
    enforce_rounding: bool = True
    epochs: int = 300
    batch_size: int = 500
    embedding_dim: int = 128
    compress_dims: tuple[int, ...] = (128, 128)
    decompress_dims: tuple[int, ...] = (128, 128)
    l2scale: float = 1e-5
    loss_factor: int = 2
    verbose: bool = True


class SDVGenerator(Generator):
    """Shared adapter: build SDV metadata from our schema, fit, sample, pickle."""

    sdv_class_name: ClassVar[str]
    uses_gpu: ClassVar[bool] = True
    unpickles_on_load: ClassVar[bool] = True  # SDV synthesizers are saved as pickles

    def _synthesizer_class(self):
        from sdv import single_table

        return getattr(single_table, self.sdv_class_name)

    def _metadata(self):
        from sdv.metadata import Metadata

        assert self.schema_ is not None
        columns = {
            c.name: {"sdtype": _SDTYPES[c.kind]}
            for c in self.schema_.columns
            if c.name in self.modelled_columns
        }
        return Metadata.load_from_dict({"tables": {TABLE: {"columns": columns}}})

    def _fit(self, data: pd.DataFrame) -> None:
        kwargs = self.params.model_dump()
        if self.uses_gpu:
            kwargs["enable_gpu"] = resolve_device(self.device) == "cuda"
        self.synthesizer_ = self._synthesizer_class()(self._metadata(), **kwargs)
        frame = self.schema_.to_model_frame(data[self.modelled_columns])  # type: ignore[union-attr]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.synthesizer_.fit({TABLE: frame})
        self.losses_ = self._epoch_losses()

    def _epoch_losses(self) -> list[dict[str, float]]:
        if not hasattr(self.synthesizer_, "get_loss_values"):
            return []
        history = self.synthesizer_.get_loss_values()
        if history is None or len(history) == 0:
            return []
        history = history.drop(columns=[c for c in ("Batch",) if c in history.columns])
        per_epoch = history.groupby("Epoch").mean().sort_index()
        per_epoch.columns = [c.lower().replace(" loss", "").replace(" ", "_") for c in per_epoch]
        return [{k: float(v) for k, v in row.items()} for row in per_epoch.to_dict("records")]

    def _sample(self, n: int) -> pd.DataFrame:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self._seed_synthesizer()
            return self.synthesizer_.sample(n)[TABLE]

    def _seed_synthesizer(self) -> None:
        """Derive every SDV random state from the (already seeded) global NumPy RNG.

        `_set_random_state` seeds SDV's model; RDT's transformers keep their own states
        (where missing values go, for one), which otherwise carry on from one `sample` call to
        the next, so the same seed would give different rows. Private SDV/RDT attributes,
        kept in this one adapter.
        """
        self.synthesizer_.reset_sampling()
        self.synthesizer_._set_random_state(int(np.random.randint(2**31)))
        hyper = self.synthesizer_._data_processor._hyper_transformer
        for transformer in hyper.field_transformers.values():
            if hasattr(transformer, "set_random_state"):
                state = np.random.RandomState(int(np.random.randint(2**31)))
                transformer.set_random_state(state, "reverse_transform")

    def _sample_conditioned(self, n: int, values: dict[str, Any]) -> pd.DataFrame:
        from sdv.sampling import Condition

        assert self.schema_ is not None
        # The values as the model frame holds them (to_model_frame): numbers as floats,
        # booleans as bools, categories as strings.
        condition = Condition(column_values=dict(values), num_rows=n)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self._seed_synthesizer()
            try:
                sampled = self.synthesizer_.sample_from_conditions([condition])[TABLE]
            except ValueError as error:  # SDV: "Unable to sample any rows ..."
                sampled, reason = None, " ".join(str(error).split())[:200]
        if sampled is None or len(sampled) < n:
            shown = ", ".join(f"{k} = {v}" for k, v in values.items())
            got = 0 if sampled is None else len(sampled)
            raise DataError(
                f"`{shown}`: {self.name}'s conditional sampling produced {got:,} of the {n:,} "
                f"rows asked for{f' ({reason})' if sampled is None else ''}; the model rarely "
                "or never produces these values: check them or ask for fewer rows"
            )
        return sampled.reset_index(drop=True)

    def _save(self, path: Path) -> None:
        self.synthesizer_.save(str(path / SDV_FILE))

    def _load(self, path: Path) -> None:
        from sdv.utils import load_synthesizer

        self.synthesizer_ = load_synthesizer(str(path / SDV_FILE))


class GaussianCopulaGenerator(SDVGenerator):
    """SDV's GaussianCopulaSynthesizer: marginals + a Gaussian copula. Fast, CPU only."""

    name = "gaussian_copula"
    Params = CopulaParams
    sdv_class_name = "GaussianCopulaSynthesizer"
    uses_gpu = False
    supports_conditions = True

    def _conditions_natively(self, values: dict[str, Any]) -> bool:
        # Datetimes would need SDV's own string format; they go by rejection.
        assert self.schema_ is not None
        return all(self.schema_[name].kind != "datetime" for name in values)


class CTGANGenerator(SDVGenerator):
    """SDV's CTGANSynthesizer: a conditional GAN (Xu et al., 2019)."""

    name = "ctgan"
    Params = GANParams
    sdv_class_name = "CTGANSynthesizer"


class TVAEGenerator(SDVGenerator):
    """SDV's TVAESynthesizer: a tabular VAE (Xu et al., 2019)."""

    name = "tvae"
    Params = TVAEParams
    sdv_class_name = "TVAESynthesizer"


class CopulaGANGenerator(SDVGenerator):
    """SDV's CopulaGANSynthesizer: CTGAN on copula-transformed marginals."""

    name = "copulagan"
    Params = CopulaGANParams
    sdv_class_name = "CopulaGANSynthesizer"
