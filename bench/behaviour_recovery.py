"""Benchmark 11: after a behaviour change, the served champion's calibration, from the stored
simulation.

The simulation (``local/simulations/behaviour_recovery.py``, ``docs/behaviour_recovery.md``)
takes minutes of generation and feature computation, so this reads the timeline it stored
(``local/simulations/behaviour_recovery.json``; ``python -m local.simulations.behaviour_recovery
--run`` refreshes it): the pooled expected calibration error of the champion that serves at the
end (target <= 0.03) next to the stale first champion's, the days from the change to the first
trigger, and the alarms before the change.
"""

from __future__ import annotations

import json

from bench.common import Figure


def run(repeats: int = 1) -> tuple[list, list[Figure], list]:
    from local.simulations.behaviour_recovery import (
        RESULTS,
        RecoveryConfig,
        Timeline,
        outcome,
    )

    data = json.loads(RESULTS.read_text(encoding="utf-8"))
    fields = RecoveryConfig.__dataclass_fields__
    config = RecoveryConfig(**{k: v for k, v in data["config"].items() if k in fields})
    timeline = Timeline(config, data["measured"], data["trainings"], data["versions"])
    result = outcome(timeline)
    final, stale = result["final"], data["versions"]["1"]
    return (
        [],
        [
            Figure(
                f"behaviour change: served champion's ECE at the end (v{result['final_version']}"
                f", {final['dates']} dates pooled; target <= 0.03)",
                "",
                [final["ece"]],
            ),
            Figure(
                f"behaviour change: stale first champion's ECE ({stale['dates']} dates pooled)",
                "",
                [stale["ece"]],
            ),
            Figure(
                "behaviour change: days from the change to the first trigger",
                "days",
                [result["days_to_trigger"]],
            ),
            Figure(
                f"behaviour change: alarms before the change ({result['quiet_dates']} dates)",
                "",
                [result["quiet_alarms"]],
            ),
        ],
        [],
    )
