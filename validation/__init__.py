"""Checks run on every synthetic table before it is published.

Each check is a plain function of (train, holdout, synthetic, schema) that returns a
`Report`: named figures plus whether the check passed. The flow gates publication on
them. Privacy (disclosure risk) and Great Expectations suites land in their own modules.
"""

from validation.report import Report

__all__ = ["Report"]
