"""The small object every check returns, so the flow can gate, log and render them alike."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass
class Report:
    """One check's outcome: `metrics` are logged to MLflow as `<name>.<metric>`."""

    name: str
    passed: bool
    metrics: dict[str, float]
    details: dict = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)  # one readable line per failed rule
    # A blocking report's failures quarantine the run; a non-blocking one only warns.
    blocking: bool = True

    def to_dict(self) -> dict:
        return asdict(self)

    def to_markdown(self) -> str:
        verdict = "passed" if self.passed else ("FAILED" if self.blocking else "failed (warning)")
        lines = [f"### {self.name}: {verdict}", "", "| metric | value |", "|---|---|"]
        lines += [f"| {key} | {value:.4g} |" for key, value in self.metrics.items()]
        lines += [f"- {failure}" for failure in self.failures]
        return "\n".join(lines)
