"""The promotion rule both models follow: when a challenger becomes the champion.

The best candidate of a training becomes ``challenger``; ``champion`` moves to it only when it
beats the current champion, scored on the *same* evaluation rows, by at least ``margin``. With
no champion yet it must beat the model's baseline by the margin.
:mod:`clickstream.models.registry` applies the decision to the aliases.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Decision:
    promote: bool
    reason: str
    challenger_auc: float
    reference: str  # "champion vN" or "recency baseline"
    reference_auc: float

    @property
    def delta(self) -> float:
        return self.challenger_auc - self.reference_auc


def decide(
    challenger_auc: float,
    *,
    champion_auc: float | None,
    champion_version: str | None,
    baseline_auc: float,
    margin: float,
    metric: str = "ROC AUC",
    baseline: str = "recency baseline",
) -> Decision:
    """The promotion rule. A tie (or a gain below the margin) keeps the current champion.

    The same rule decides the recommender on precision@10 against the popularity baseline.
    """
    if champion_auc is None:
        reference, reference_auc = baseline, baseline_auc
    else:
        reference, reference_auc = f"champion v{champion_version}", champion_auc
    promote = challenger_auc >= reference_auc + margin and challenger_auc > reference_auc
    verb = "beats" if promote else "does not beat"
    reason = (
        f"challenger {metric} {challenger_auc:.4f} {verb} {reference} {reference_auc:.4f} "
        f"by the margin {margin:.4f} (delta {challenger_auc - reference_auc:+.4f})"
    )
    return Decision(promote, reason, challenger_auc, reference, reference_auc)
