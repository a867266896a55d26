"""The small object every check returns, and `gate`: the flow gates, logs and renders them alike."""

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


def gate(reports: list[Report], override_privacy: bool) -> tuple[list[str], bool]:
    """The failures that quarantine the run, and whether privacy failures were overridden.

    Only blocking reports gate (expectations with on_failure: warn do not); the override
    covers the privacy gate only, never a failed expectation.
    """
    privacy = [line for r in reports if r.name == "privacy" for line in r.failures]
    overridden = bool(privacy) and override_privacy
    failures = [
        line
        for report in reports
        if report.blocking and not (overridden and report.name == "privacy")
        for line in report.failures
    ]
    return failures, overridden
