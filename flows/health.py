"""One health probe with backoff, for the servers a run needs (Prefect's API, MLflow's).

Standard library only, so the CLI can probe before it loads Prefect or MLflow.
"""

from __future__ import annotations

import time
import urllib.request


def probe(url: str, attempts: int, timeout_s: float = 5) -> str | None:
    """GET `url` up to `attempts` times, sleeping 1 s, 2 s, ... between tries. None once it
    answers; else the last problem, on one line (at most 160 characters)."""
    problem = ""
    for attempt in range(attempts):
        if attempt:
            time.sleep(2 ** (attempt - 1))
        try:
            with urllib.request.urlopen(url, timeout=timeout_s):
                return None
        except (OSError, ValueError) as error:  # URLError, HTTPError, timeouts are OSErrors
            problem = " ".join(str(error).split())[:160]
    return problem
