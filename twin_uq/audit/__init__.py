"""Subgroup fairness audit of a fit's twins (``tq.audit``).

``audit(post, by=[...], holdout=...)`` compares groups of patients (by recorded covariates)
on trust flags, predictive interval width, held-out coverage and error, each with a
Bayesian-bootstrap interval over patients and a plain-words finding; ``AuditResult`` holds
the tables and writes CSV, xarray and a self-contained HTML report. Methodology:
docs/audit.md.
"""

from twin_uq.audit.audit import (
    audit as audit,
    audit_metrics as audit_metrics,
    default_metrics as default_metrics,
)
from twin_uq.audit.bootstrap import (
    bayesian_bootstrap as bayesian_bootstrap,
    difference_interval as difference_interval,
)
from twin_uq.audit.metrics import patient_metrics as patient_metrics
from twin_uq.audit.result import AuditResult as AuditResult
