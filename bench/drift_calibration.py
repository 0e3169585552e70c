"""Benchmark 9: the drift thresholds' held-out recall and false alarms, from the stored study.

The study (``local/simulations/drift_calibration.py``, ``docs/drift_calibration.md``) takes
longer than a benchmark run should, so this reads the figures it stored
(``local/simulations/drift_calibration.json``; ``python -m local.simulations.drift_calibration
--run`` refreshes them): the held-out recall at full magnitude (first check, drift from
mid-month; every scenario together and the lowest scenario; and by the second check, the month
after) and the false alarms of the held-out
stable months, in percent, at the chosen thresholds. Targets: recall >= 90%, false alarms <= 5%.
"""

from __future__ import annotations

import json

from bench.common import Figure


def run(repeats: int = 1) -> tuple[list, list[Figure], list]:
    from local.simulations.drift_calibration import (
        RESULTS,
        from_json,
        held_out_rates,
        summary_figures,
    )

    study = from_json(json.loads(RESULTS.read_text(encoding="utf-8")))
    table = held_out_rates(study)
    figures = summary_figures(table)
    chosen = study.chosen
    at = f"column >= {chosen['column_threshold']:g}, share >= {chosen['drift_share']:g}"
    seeds = f"{len(study.held_out_seeds)} held-out seeds"
    return (
        [],
        [
            Figure(
                f"drift: held-out recall at full magnitude, all scenarios ({seeds}, {at}; "
                "target >= 90%)",
                "%",
                [100 * figures["recall_full"]],
            ),
            Figure(
                f"drift: held-out recall at full magnitude, lowest scenario ({seeds}; "
                "target >= 90%)",
                "%",
                [100 * figures["min_scenario_recall_full"]],
            ),
            Figure(
                f"drift: held-out recall at full magnitude by the second check, the month "
                f"after the drift starts ({seeds})",
                "%",
                [100 * summary_figures(table, "second")["recall_full"]],
            ),
            Figure(
                f"drift: held-out false alarms, stable months ({seeds}; target <= 5%)",
                "%",
                [100 * figures["false_alarm_rate"]],
            ),
        ],
        [],
    )
