"""What a run reports (`RunResult`) and how to read a finished flow state (`outcome_of`).

A published run completes with its RunResult; a quarantined one ends Failed with the gate's
reasons as the message and the result (a RunResult, or its dict from `run_config`) as the
state's data; a failed one holds its error.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from prefect.states import Failed

MAX_REASONS = 10  # failure lines in the Failed state's message; all of them in report.md


@dataclass
class RunResult:
    """What a run reports: the CLI prints it, `--json` prints it as one object."""

    status: str  # published | quarantined | failed
    output: str | None
    rows: int
    generator: str
    modality: str
    metrics: dict[str, float] = field(default_factory=dict)
    mlflow_run_id: str | None = None
    flow_run_id: str | None = None
    model_uri: str | None = None
    registered_model: str | None = None
    registered_version: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def quarantined_state(result: RunResult, failures: list[str], final_dir: Path):
    """The Prefect run fails with the reasons; the result still travels with the state."""
    reasons = "; ".join(failures[:MAX_REASONS])
    if len(failures) > MAX_REASONS:
        reasons += f"; and {len(failures) - MAX_REASONS} more (see report.md)"
    return Failed(message=f"quarantined at {final_dir}: {reasons}", data=result)


@dataclass(frozen=True)
class Outcome:
    """A finished `synthesize` or `run_config` state, read once."""

    completed: bool
    value: object  # the result (completed or quarantined), else what the state holds
    message: str | None

    @property
    def quarantined(self) -> bool:
        """Failed with a RunResult (or, from run_config, its dict) inside: the gate said no."""
        if self.completed:
            return False
        if isinstance(self.value, RunResult):
            return True
        return isinstance(self.value, dict) and self.value.get("status") == "quarantined"

    @property
    def error(self) -> BaseException | None:
        return self.value if isinstance(self.value, BaseException) else None


def outcome_of(state) -> Outcome:
    if state.is_completed():
        return Outcome(True, state.result(), state.message)
    return Outcome(False, state.result(raise_on_failure=False), state.message)
