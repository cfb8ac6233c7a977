"""Admission of a submitted job spec: every check a spec passes before a job row exists.

Order matters: cheap checks on the spec as sent come first (data locations, limits),
then normalization, the safe-mode build of the model (no weights allocated), the
parameter limit, and last the data checks that may read data headers: locations that do
not exist (``data_not_found``), targets against the model's outputs, shapes and labels.
"""

from __future__ import annotations

from service.admission import limits, modelspec, policy, sampleweights, shapes, spec
from service.core.config import Settings


def admit(raw: object, settings: Settings) -> tuple[dict, dict]:
    """The normalized spec and its model summary; raises a 4xx FitfleetError otherwise."""
    policy.check_spec_locations(raw, settings)
    limits.check_raw(raw, settings)
    normalized = spec.normalize(raw, settings)
    summary = modelspec.validate(normalized)
    limits.check_summary(summary, settings)
    shapes.check(normalized, summary, settings)
    sampleweights.check(normalized, summary)
    return normalized, summary
