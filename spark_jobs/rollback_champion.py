"""Roll the champion back: point ``champion`` at the version it replaced (or a given one).

    rollback_champion.py --model-name ecom_propensity --from-version 7 [--to-version 3]

Runs anywhere MLflow is reachable: as a job on the workspace, or from a laptop with
``MLFLOW_TRACKING_URI`` set (``python spark_jobs/rollback_champion.py ...``). Serving uses the
restored version from its next run; to re-score a date now, clear that date's ``score_users``.

``--from-version`` (the champion you are rolling back) makes the command safe to run twice: a
second run finds the rollback done and changes nothing, where a bare second run would step back
one more version.
"""

from __future__ import annotations

import sys

from mlflow import MlflowClient

from clickstream.core.jobs import expected_failures, parser
from clickstream.models.registry import rollback


def main(argv: list[str] | None = None) -> int:
    cli = parser(__doc__)
    cli.add_argument("--model-name", required=True)
    cli.add_argument("--to-version", help="default: the version the champion replaced")
    cli.add_argument(
        "--from-version",
        help="roll back only while the champion is this version (safe to repeat)",
    )
    args = cli.parse_args(argv)
    with expected_failures("rollback_champion"):
        before, after = rollback(
            MlflowClient(), args.model_name, args.to_version, args.from_version
        )
    print(f"{args.model_name}: champion is v{after} (rolled back from v{before})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
