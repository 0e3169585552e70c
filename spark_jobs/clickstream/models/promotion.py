"""The promotion rule both models follow: when a challenger becomes the champion.

The best candidate of a training becomes ``challenger``; ``champion`` moves to it only when it
beats the current champion, scored on the *same* evaluation rows, by at least ``margin``. With
no champion yet it must beat the model's baseline by the margin.
:mod:`clickstream.models.registry` applies the decision to the aliases.

**With error bars** (the propensity model): the caller passes the paired per-user bootstrap
interval of the difference (challenger - reference) and the two calibration errors. Then the
challenger wins only when the interval's *lower bound* is above the margin (a gain that
sampling noise alone rarely produces: an A/A retrain promotes in well under 5% of days), and
its calibration error is not worse than the reference's by more than ``calibration_tolerance``
(a model that ranks a little better but serves probabilities that are off does not replace a
calibrated one).

**Recalibration.** A behaviour change can leave the ranking as it was and break the served
probabilities (a champion trained before it: ROC AUC 0.821 but calibration error 0.164; the
retrained model: 0.833 and 0.017). So a challenger also wins when it is *surely* better
calibrated: the high end of the paired per-user interval of its calibration error minus the
reference's is below ``-recalibration_gain`` (0.02, the calibration tolerance turned round: a
challenger may be up to 0.02 worse, and must be at least 0.02 better beyond noise to win on
calibration alone), and its ROC AUC is not materially worse: the low end of the ROC AUC
interval above ``-non_inferiority``. Without intervals (the recommender) the point estimates
decide and nothing is promoted on calibration.
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
    delta_interval: tuple[float, float] | None = None  # paired bootstrap interval of the delta

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
    delta_interval: tuple[float, float] | None = None,
    calibration: tuple[float, float] | None = None,
    calibration_tolerance: float = 0.02,
    non_inferiority: float = 0.01,
    recalibration_gain: float = 0.02,
    calibration_interval: tuple[float, float] | None = None,
) -> Decision:
    """The promotion rule. A tie (or a gain below the margin) keeps the current champion.

    ``delta_interval``: the (low, high) interval of challenger - reference on the same rows
    (against the champion when there is one, else against the baseline); the low end must
    exceed ``margin``. ``calibration``: (challenger, reference) calibration errors; the
    challenger's may exceed the reference's by at most ``calibration_tolerance``.
    ``calibration_interval``: the (low, high) interval of challenger - reference calibration
    error on the same rows, for the recalibration rule.

    The same rule decides the recommender on precision@10 against the popularity baseline.
    """
    if champion_auc is None:
        reference, reference_auc = baseline, baseline_auc
    else:
        reference, reference_auc = f"champion v{champion_version}", champion_auc
    delta = challenger_auc - reference_auc
    if delta_interval is None:
        wins = challenger_auc >= reference_auc + margin and challenger_auc > reference_auc
        evidence = f"by the margin {margin:.4f} (delta {delta:+.4f})"
    else:
        low, high = delta_interval
        wins = low > margin and delta > 0
        evidence = (
            f"by more than the margin {margin:.4f} at the low end of the paired interval "
            f"(delta {delta:+.4f}, interval {low:+.4f}..{high:+.4f})"
        )
    verb = "beats" if wins else "does not beat"
    reason = f"challenger {metric} {challenger_auc:.4f} {verb} {reference} {reference_auc:.4f} "
    reason += evidence
    promote = wins
    if calibration is not None:
        challenger_ece, reference_ece = calibration
        calibrated = challenger_ece <= reference_ece + calibration_tolerance
        reason += (
            f"; calibration error {challenger_ece:.4f} vs {reference_ece:.4f} "
            + ("within" if calibrated else "worse than")
            + f" the tolerance {calibration_tolerance:.4f}"
        )
        promote = wins and calibrated
        recalibrates = (
            delta_interval is not None
            and calibration_interval is not None
            and calibration_interval[1] < -recalibration_gain
            and delta_interval[0] > -non_inferiority
        )
        if recalibrates and not promote:
            promote = True
            low, high = calibration_interval
            reason += (
                f"; promoted to recalibrate: its calibration error is lower by more than "
                f"{recalibration_gain:.2f} at the high end of the paired interval "
                f"({low:+.4f}..{high:+.4f}) and its ROC AUC is not worse by "
                f"{non_inferiority:.4f} or more at the low end of the interval"
            )
    return Decision(promote, reason, challenger_auc, reference, reference_auc, delta_interval)
