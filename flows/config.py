"""The run config: YAML validated by pydantic, strict, with `--set dotted.key=value` overrides.

Relative `data.path` values are resolved against the config file's folder, so a config
works from any working directory; `output.dir` and the default MLflow store are relative
to the working directory, where the user runs synthpipe. `data.path` and `output.dir` may
also be fsspec URLs (s3://, gs://, az://, memory://, file://): see generators.data.remote.
"""

from __future__ import annotations

import hashlib
import json
import re
import reprlib
import zoneinfo
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from flows.yaml_strict import load_yaml
from generators.base import MAX_SAMPLE_ROWS, validate_params
from generators.data.remote import check_url, credential_in, is_remote, is_url
from generators.data.schema import Kind
from generators.errors import ConfigError
from generators.image.data import ImageSettings
from generators.registry import all_generators, generator_class
from generators.sampling.augment import AugmentConfig
from generators.sampling.conditions import Condition, SampleConditions, parse_conditions
from generators.sampling.constraints import Constraint
from generators.sequence.data import SequenceSettings
from generators.text.data import TextSettings
from validation.privacy import PrivacyPolicy

SEQUENCE_REQUIRED = (
    "data.sequence: required with data.modality: sequence; give at least entity_column and "
    "order_column"
)
DataFormat = Literal["csv", "csv.gz", "parquet", "jsonl"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class StreamSettings(Strict):
    """`data.stream:` train from Parquet in bounded batches instead of loading the table
    (larger-than-memory data; docs/large-data.md). `stream: true` takes the defaults."""

    sample_rows: int = Field(
        100_000,
        gt=0,
        description="rows of a seeded uniform sample of the training part (and as many of "
        "the holdout) that infer the schema, fit the encoders and stand for the data in the "
        "privacy, expectation and fidelity checks",
    )
    chunk_rows: int = Field(65_536, gt=0, description="rows read per batch while training")


class DataConfig(Strict):
    path: str = Field(
        description="file or glob (a folder for images and text), or an fsspec URL of one "
        "(s3://bucket/data/*.csv); relative paths are against the config's folder"
    )
    format: DataFormat | None = Field(None, description="inferred from the suffix when absent")
    modality: Literal["table", "image", "text", "sequence"] = "table"
    columns: list[str] | None = Field(None, description="column names for header-less files")
    header: bool | None = Field(
        None, description="does the CSV's first row name the columns? default: detect"
    )
    encoding: str = "utf-8"
    separator: str = ","
    na_values: list[str] = Field(default_factory=list, description="extra strings read as missing")
    target: str | None = Field(
        None, description="label column; the holdout split is stratified on it"
    )
    holdout_fraction: float = Field(0.2, gt=0, lt=1)
    column_kinds: dict[str, Kind] = Field(
        default_factory=dict, alias="schema", description="override inferred kinds: column -> kind"
    )
    drop: list[str] = Field(default_factory=list, description="columns to leave out entirely")
    images: ImageSettings = Field(
        default_factory=ImageSettings, description="modality image: size, channels, columns"
    )
    text: TextSettings = Field(
        default_factory=TextSettings, description="modality text: column, how files are split"
    )
    sequence: SequenceSettings | None = Field(
        None, description="modality sequence (required there): entity and order columns"
    )
    stream: StreamSettings | None = Field(
        None,
        description="tables in Parquet larger than memory: train in batches (true, or "
        "{sample_rows, chunk_rows}); generators vae, gan, autoregressive",
    )

    @field_validator("stream", mode="before")
    @classmethod
    def _stream_shorthand(cls, value):
        if value is True:
            return {}
        return None if value is False else value

    @field_validator("path")
    @classmethod
    def _known_protocol(cls, path: str) -> str:
        if is_url(path):
            check_url(path, "data.path")
        return path


class ScheduleConfig(BaseModel):
    """When a deployed config runs: a cron expression in an IANA time zone."""

    model_config = ConfigDict(extra="forbid")

    cron: str = Field(description='five-field cron, e.g. "0 2 * * *" (02:00 every day)')
    timezone: str = Field("UTC", description="IANA zone the cron is read in, e.g. Europe/Berlin")

    @field_validator("cron")
    @classmethod
    def _valid_cron(cls, cron: str) -> str:
        from prefect.schedules import Cron

        try:
            Cron(cron)
        except ValueError as error:
            detail = str(error).splitlines()[-1] if str(error) else "invalid"
            raise ConfigError(
                f"schedule.cron: {cron!r} is not a cron expression ({detail}); "
                'expected five fields, e.g. "0 2 * * *" for 02:00 daily'
            ) from None
        return cron

    @field_validator("timezone")
    @classmethod
    def _valid_timezone(cls, timezone: str) -> str:
        try:
            zoneinfo.ZoneInfo(timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ConfigError(
                f"schedule.timezone: {timezone!r} is not an IANA time zone; "
                "use e.g. UTC or Europe/Berlin"
            ) from None
        return timezone


class GeneratorConfig(Strict):
    name: str = "gaussian_copula"
    params: dict[str, Any] = Field(default_factory=dict)
    device: Literal["auto", "cpu", "cuda"] = "auto"


class SampleConfig(Strict):
    rows: int | None = Field(
        None,
        gt=0,
        le=MAX_SAMPLE_ROWS,
        description="default: as many rows as the training set; at most 1,000,000,000",
    )
    seed: int | None = Field(None, ge=0, lt=2**32, description="default: the run's seed")
    shard_rows: int | None = Field(
        None,
        ge=1000,
        description="tables: sample in parallel tasks of this many rows, each writing one "
        "Parquet part of synthetic/; the same seed gives the same parts whatever the workers",
    )
    conditions: SampleConditions = Field(
        None,
        description="rows with given values: {column: value} (with rows), or a list of "
        "{values: {column: value}, rows: N}",
    )


class RunnerConfig(Strict):
    """`runner:` where the flow's parallel tasks (sampled shards) run."""

    kind: Literal["threads", "processes", "dask"] = "threads"
    workers: int | None = Field(None, ge=1, description="default: the CPU count")
    address: str | None = Field(
        None,
        description="dask: an existing cluster's scheduler (tcp://host:8786); default: a "
        "local cluster of `workers` processes",
    )


class OutputConfig(Strict):
    dir: str = Field(
        "outputs",
        description="a folder, or an fsspec URL (s3://bucket/runs): published runs are "
        "uploaded there, their _SUCCESS marker last",
    )
    local_dir: str | None = Field(
        None,
        description="URL output.dir only: the local folder where runs are staged, quarantined "
        "runs kept (never uploaded) and training checkpoints saved; default: a synthpipe "
        "folder in the system's temporary directory",
    )
    require_approval: bool = Field(
        # Off by default: scheduled jobs (nightly augmentation) keep publishing on their own.
        False,
        description="a passing run is written to its folder and its model version registered, "
        "but the registry alias `published` moves only when someone approves the run's "
        "certificate: synthpipe approve RUN_ID --by NAME",
    )

    @field_validator("dir")
    @classmethod
    def _known_protocol(cls, dir: str) -> str:
        if is_url(dir):
            check_url(dir, "output.dir")
        return dir

    @model_validator(mode="after")
    def _local_dir_with_url_only(self) -> OutputConfig:
        if self.local_dir is not None and not is_remote(self.dir):
            raise ConfigError(
                "output.local_dir: applies to a URL output.dir only (a local run is staged "
                "inside output.dir, so that publishing it is one rename); remove it"
            )
        return self


class ValidationConfig(Strict):
    """Statistical checks of the synthetic table against the real training table."""

    expectations: bool = Field(
        True, description="build a Great Expectations suite from train and validate with it"
    )
    on_failure: Literal["fail", "warn"] = Field(
        # warn by default: the bands are as tight as a real sample's own noise, and most
        # generators miss a few (GaussianCopula on Adult misses 45 of 130); every miss is
        # recorded. `fail` quarantines the run on any miss.
        "warn",
        description="fail: a failed expectation quarantines the run; warn: record it only",
    )
    sigmas: float = Field(
        4.0, gt=0, le=20, description="band width, in standard deviations of a real sample's"
    )
    fidelity: bool = Field(True, description="SDMetrics quality, ML efficacy, discriminator AUC")
    plots: bool = Field(True, description="PNG plots of columns and association differences")
    max_rows: int = Field(
        20_000, ge=100, description="fidelity scores run on a seeded subsample of this many rows"
    )
    downstream: bool = Field(
        True,
        description="with data.target (or augment.target): train a model on real, real + "
        "synthetic and synthetic rows, and score each on the holdout",
    )


class TrackingConfig(Strict):
    uri: str | None = Field(
        None, description="default: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db"
    )
    fallback_uri: str | None = Field(
        None, description="log here (e.g. sqlite:///mlflow.db) when the uri's server is down"
    )
    experiment: str = "synthpipe"
    register_model: bool = True

    @field_validator("uri", "fallback_uri")
    @classmethod
    def _no_credentials(cls, uri: str | None, info: ValidationInfo) -> str | None:
        # The config is logged (MLflow params, config.yaml, Prefect's flow parameters), so
        # it must never carry a secret.
        held = credential_in(uri) if uri else None
        if held:
            raise ConfigError(f"tracking.{info.field_name}: holds {held}, {TRACKING_SECRET_HINT}")
        return uri


TRACKING_SECRET_HINT = (
    "which would be logged; remove it from the URI and set MLFLOW_TRACKING_USERNAME and "
    "MLFLOW_TRACKING_PASSWORD (or MLFLOW_TRACKING_TOKEN) in the environment"
)


class RunConfig(Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=100)
    seed: int = Field(0, ge=0, lt=2**32)
    data: DataConfig
    generator: GeneratorConfig = Field(default_factory=GeneratorConfig)
    sample: SampleConfig = Field(default_factory=SampleConfig)
    output: OutputConfig = Field(default_factory=OutputConfig)
    privacy: PrivacyPolicy = Field(default_factory=PrivacyPolicy)
    validation: ValidationConfig = Field(default_factory=ValidationConfig)
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)
    runner: RunnerConfig = Field(default_factory=RunnerConfig)
    schedule: ScheduleConfig | None = Field(
        None, description="when `synthpipe deploy`/`serve` runs this config: {cron, timezone}"
    )
    augment: AugmentConfig | None = Field(
        None, description="generate the rows that reach a class distribution of one column"
    )
    constraints: list[Constraint] = Field(
        default_factory=list, description="rules every synthetic row obeys (checked, enforced)"
    )

    @model_validator(mode="after")
    def _check_generator(self) -> RunConfig:
        cls = generator_class(self.generator.name, self.data.modality)
        validate_params(cls.Params, self.generator.params, "generator.params")
        if self.privacy.dp is not None and not cls.supports_dp:
            able = [c.name for c in all_generators() if c.supports_dp]
            raise ConfigError(
                f"privacy.dp: generator '{cls.name}' cannot train under differential privacy; "
                + (f"use one of {able}" if able else "no registered generator supports DP-SGD yet")
                + ", or remove privacy.dp"
            )
        self.conditions  # noqa: B018  (parses: a bad condition fails here, before any work)
        if self.augment is not None and self.sample.conditions is not None:
            raise ConfigError(
                "augment: cannot be combined with sample.conditions (augment plans the "
                "conditions itself); remove one"
            )
        if self.runner.address and self.runner.kind != "dask":
            raise ConfigError("runner.address: applies to runner.kind: dask only")
        self._check_sharding()
        self._check_table_only()
        if self.data.stream is not None:
            self._check_stream(cls)
        if cls.modality != self.data.modality:
            raise ConfigError(
                f"generator.name: '{cls.name}' generates {cls.modality} data but "
                f"data.modality is '{self.data.modality}'"
            )
        return self

    def _check_sharding(self) -> None:
        """sample.shard_rows is for plain table runs."""
        if self.sample.shard_rows is not None:
            combined = {
                "data.modality": self.data.modality != "table",
                "sample.conditions": self.sample.conditions is not None,
                "augment": self.augment is not None,
                "constraints": bool(self.constraints),
                "privacy.similarity_filter_quantile": self.privacy.similarity_filter_quantile
                is not None,
            }
            clash = [key for key, present in combined.items() if present]
            if clash:
                raise ConfigError(
                    f"sample.shard_rows: sharded sampling is for plain table runs; not yet "
                    f"with {', '.join(clash)}: remove one"
                )

    def _check_table_only(self) -> None:
        """Settings that apply to tables only (and sequences' required settings)."""
        if self.privacy.similarity_filter_quantile is not None and (
            self.augment is not None or self.sample.conditions is not None
        ):
            raise ConfigError(
                "privacy.similarity_filter_quantile: not available with sample.conditions or "
                "augment yet; remove one of them"
            )
        if self.data.modality == "sequence" and self.data.sequence is None:
            raise ConfigError(SEQUENCE_REQUIRED)
        if self.data.modality != "table":
            table_only = {
                "augment": self.augment,
                "constraints": self.constraints,
                "sample.conditions": self.sample.conditions,
                "privacy.similarity_filter_quantile": self.privacy.similarity_filter_quantile,
                **self._explicit_table_protections(),
                "privacy.quasi_identifiers": self.privacy.quasi_identifiers,
                "privacy.secrets": self.privacy.secrets,
            }
            for key, value in table_only.items():
                if value:
                    raise ConfigError(
                        f"{key}: applies to tables only, not to {self.data.modality} data; "
                        "remove it"
                    )

    def _explicit_table_protections(self) -> dict[str, bool]:
        """The protections that change training rows, by key: True where the config turns
        one on explicitly. Their defaults are on for in-memory tables and do not apply to
        other modalities or to a stream; only an explicit setting there is refused."""
        privacy, explicit = self.privacy, self.privacy.model_fields_set
        return {
            "privacy.rare_category_min_count": "rare_category_min_count" in explicit
            and privacy.rare_category_min_count > 1,
            "privacy.clip_extremes": "clip_extremes" in explicit and privacy.clip_extremes,
        }

    def _check_stream(self, cls) -> None:
        """data.stream is for plain table runs from Parquet with a streaming generator."""
        data = self.data
        if data.modality != "table":
            raise ConfigError(f"data.stream: applies to tables, not to {data.modality} data")
        suffixes = "".join(Path(data.path.rstrip("/")).suffixes[-1:]).lower()
        parquet = data.format == "parquet" or (
            data.format is None and suffixes in ("", ".parquet", ".pq")
        )
        if not parquet:
            raise ConfigError(
                f"data.stream: reads Parquet (a file, folder or glob of .parquet files), not "
                f"{data.path}; convert it to Parquet or remove data.stream"
            )
        if not cls.supports_streaming:
            able = sorted(c.name for c in all_generators() if c.supports_streaming)
            raise ConfigError(
                f"data.stream: generator '{cls.name}' loads the whole table; the generators "
                f"that train from a stream are {able} (docs/large-data.md)"
            )
        unsupported = {
            "privacy.dp": self.privacy.dp is not None,
            "augment": self.augment is not None,
            "constraints": bool(self.constraints),
            "sample.conditions": self.sample.conditions is not None,
            "privacy.similarity_filter_quantile": self.privacy.similarity_filter_quantile
            is not None,
            **self._explicit_table_protections(),
            "data.columns": data.columns is not None,
        }
        clash = [key for key, present in unsupported.items() if present]
        if clash:
            raise ConfigError(
                f"data.stream: not available with {', '.join(clash)} (they need the whole "
                "table in memory); remove one"
            )

    @property
    def conditions(self) -> list[Condition]:
        """sample.conditions as a list (empty when unset); augment's are planned at run time."""
        return parse_conditions(self.sample.conditions, self.sample.rows)

    @property
    def sample_seed(self) -> int:
        return self.seed if self.sample.seed is None else self.sample.seed

    def digest(self) -> str:
        """A short hash of the validated config, stored in the output's metadata."""
        # The schedule says when to run, not what: it does not change the output.
        settings = self.model_dump(mode="json", by_alias=True, exclude={"schedule"})
        canonical = json.dumps(settings, sort_keys=True)
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    def flat(self) -> dict[str, str]:
        """The config as dotted keys, for MLflow params."""
        return _flatten(self.model_dump(mode="json", by_alias=True))


def _flatten(value: Any, prefix: str = "") -> dict[str, str]:
    if isinstance(value, dict) and value:
        out: dict[str, str] = {}
        for key, inner in value.items():
            out.update(_flatten(inner, f"{prefix}{key}."))
        return out
    return {prefix.rstrip("."): json.dumps(value) if not isinstance(value, str) else value}


def load_config(path: str | Path, overrides: list[str] | None = None) -> RunConfig:
    """Read a YAML config, apply `KEY=VALUE` overrides, validate, resolve `data.path`."""
    path = Path(path)
    try:
        raw = load_yaml(path.read_text(), str(path))
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path}: cannot read config ({error})") from None
    except (yaml.YAMLError, ValueError, TypeError) as error:
        # PyYAML raises ValueError/TypeError for values it parses but cannot build, such as
        # the date 2001-02-30.
        detail = (str(error).splitlines() or [type(error).__name__])[0]
        raise ConfigError(f"{path}: not valid YAML ({detail})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of settings at the top level")
    for override in overrides or []:
        apply_override(raw, override)
    config = parse_config(raw, source=str(path))
    if not is_url(config.data.path):
        data_path = Path(config.data.path).expanduser()
        config.data.path = str(
            data_path if data_path.is_absolute() else (path.parent / data_path).resolve()
        )
    return config


def apply_override(raw: dict, override: str) -> None:
    """Set `a.b.c=value` in a nested dict; the value is parsed as YAML (numbers, lists...)."""
    key, sep, text = override.partition("=")
    if not sep or not re.fullmatch(r"[A-Za-z_][\w-]*(\.[A-Za-z_][\w-]*)*", key):
        raise ConfigError(
            f"--set {override!r}: expected KEY=VALUE with a dotted key, e.g. sample.rows=1000"
        )
    try:
        value = load_yaml(text, f"--set {key}") if text else ""
    except (yaml.YAMLError, ValueError, TypeError):
        value = text
    node = raw
    parts = key.split(".")
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"--set {override!r}: '{part}' is a value, not a section")
        node = child
    node[parts[-1]] = value


def parse_config(raw: dict, source: str = "config") -> RunConfig:
    try:
        return RunConfig.model_validate(raw)
    except ValidationError as error:
        raise ConfigError(f"{source}: {_describe_errors(error)}") from None
    except ConfigError as error:  # raised by a validator (unknown generator, DP refused)
        raise ConfigError(f"{source}: {error}") from None


_SHORT = reprlib.Repr()
_SHORT.maxlist = _SHORT.maxtuple = _SHORT.maxset = 4
_SHORT.maxstring = _SHORT.maxother = 60


def _describe_errors(error: ValidationError) -> str:
    problems = []
    for item in error.errors():
        loc = list(item["loc"])
        if loc[:1] == ["constraints"] and len(loc) > 2:
            del loc[2]  # pydantic's tag of the union member (the constraint's kind)
        key = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc)
        key = key.lstrip(".") or "(top level)"
        if item["type"] == "extra_forbidden":
            problems.append(f"{key}: unknown key; remove it or check its spelling")
        elif item["type"] == "missing":
            problems.append(f"{key}: required key is missing")
        elif item["type"] == "value_error" and isinstance(
            item.get("ctx", {}).get("error"), ConfigError
        ):
            problems.append(str(item["ctx"]["error"]))
        else:
            found = item.get("input")
            # reprlib, not repr: a value may be huge (a long list), and only 60 characters show.
            shown = _SHORT.repr(found) if not isinstance(found, dict) else "a mapping"
            problems.append(f"{key}: {item['msg']} (got {shown[:60]})")
    return "; ".join(problems)
