"""The generator's ceiling: the best top-k any recommender could produce on generated data.

The synthetic generator (:mod:`clickstream.sources.synthetic`) knows each user's true
probability of viewing each product (the user's category preferences of the day, then the
products' popularity times the users' and products' taste factors,
:func:`~clickstream.sources.synthetic.view_probabilities`). Carts and purchases follow a view
at a rate that depends on the user alone, so ranking a user's products by that probability,
averaged over the evaluation window's days (a category-mix drift moves the preferences), is
the best ranking for the relevance the models are scored on. Given the same exclusions and
scored with the same precision@k on the same users, it bounds what ALS can reach;
:func:`capture` is the share of the ceiling's gain over global popularity a model gets.

Only on generated data: :func:`load_generator` rebuilds the world from the parameters the
generator records next to its ground truth (``generator.json``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from clickstream.core.volumes import local_path
from clickstream.sources.synthetic import Drift, World, build_world, view_probabilities

_CELLS = 4_000_000  # users x products probabilities held at once (32 MB)


@dataclass(frozen=True)
class Generator:
    """The world and drift a generated data set was drawn from."""

    world: World
    drift: Drift


def load_generator(ground_truth: str) -> Generator | None:
    """The generator behind ``ground_truth`` (its users CSV), or None when it is not recorded."""
    path = Path(local_path(ground_truth)).parent / "generator.json"
    if not path.is_file():
        return None
    recorded = json.loads(path.read_text())
    start = recorded.get("drift_start")
    drift = Drift(
        recorded.get("drift_scenario") or "none",
        date.fromisoformat(start) if start else None,
        float(recorded.get("drift_magnitude", 1.0)),
    )
    world = build_world(int(recorded["seed"]), int(recorded["users"]), **_products(recorded))
    return Generator(world=world, drift=drift)


def _products(recorded: dict) -> dict[str, int]:
    return {"products": int(recorded["products"])} if "products" in recorded else {}


def true_scores(generator: Generator, users: np.ndarray, start: date, end: date) -> np.ndarray:
    """``len(users) x products``: each user's mean view probability over [start, end].

    ``users`` are indices into the world's users. A drift changes the preferences from its
    start on, so the window's days before and after it are weighted by their counts.
    """
    days = [start + timedelta(days=n) for n in range((end - start).days + 1)]
    drifted = sum(d >= generator.drift.start for d in days) if generator.drift.start else 0
    world, drift = generator.world, generator.drift
    before = view_probabilities(world, users, start, drift) if drifted < len(days) else 0.0
    after = view_probabilities(world, users, end, drift) if drifted else 0.0
    return ((len(days) - drifted) * before + drifted * after) / len(days)


def ceiling_recommend(
    spark: SparkSession,
    generator: Generator,
    users: DataFrame,
    k: int,
    window: tuple[date, date],
    exclude: DataFrame | None = None,
) -> DataFrame:
    """Per user, the ``k`` truly likeliest products of ``window`` not excluded.

    Same columns as :func:`~clickstream.models.recommender.als.recommend`; users the generator
    does not know get no rows. Computed on the driver, a bounded chunk of users at a time.
    """
    world = generator.world
    requested = np.array(
        sorted({int(r[0]) for r in users.select(F.col("user_id").cast("bigint")).collect()}),
        dtype=np.int64,
    )
    position = np.searchsorted(world.user_ids, requested)
    position = np.minimum(position, len(world.user_ids) - 1)
    known = world.user_ids[position] == requested
    index = position[known]
    product_index = pd.Series(np.arange(len(world.product_ids)), index=world.product_ids)
    excluded = pd.DataFrame(columns=["user", "product"], dtype="int64")
    if exclude is not None:
        pairs = exclude.select(
            F.col("user_id").cast("bigint"), F.col("product_id").cast("bigint")
        ).toPandas()
        pairs = pairs[pairs["product_id"].isin(product_index.index)]
        user_of = pd.Series(np.arange(len(index)), index=world.user_ids[index])
        pairs = pairs[pairs["user_id"].isin(user_of.index)]
        excluded = pd.DataFrame(
            {
                "user": user_of[pairs["user_id"]].to_numpy(),
                "product": product_index[pairs["product_id"]].to_numpy(),
            }
        )
    chunk = max(1, _CELLS // len(world.product_ids))
    top = min(k, len(world.product_ids))
    frames = []
    for lo in range(0, len(index), chunk):
        scores = true_scores(generator, index[lo : lo + chunk], *window)
        mine = excluded[(excluded["user"] >= lo) & (excluded["user"] < lo + chunk)]
        scores[mine["user"].to_numpy() - lo, mine["product"].to_numpy()] = -np.inf
        best = np.argsort(-scores, axis=1, kind="stable")[:, :top]
        best_scores = np.take_along_axis(scores, best, axis=1)
        rows = pd.DataFrame(
            {
                "user_id": np.repeat(world.user_ids[index[lo : lo + chunk]], top),
                "product_id": world.product_ids[best].ravel(),
                "rank": np.tile(np.arange(1, top + 1, dtype=np.int32), len(best)),
                "score": best_scores.ravel(),
            }
        )
        frames.append(rows[np.isfinite(rows["score"])])
    schema = "user_id bigint, product_id bigint, rank int, score double"
    if not frames:
        return spark.createDataFrame([], schema)
    return spark.createDataFrame(pd.concat(frames, ignore_index=True), schema)


def capture(model: float, baseline: float, ceiling: float) -> float:
    """Share of the ceiling's gain over ``baseline`` that ``model`` gets (nan without a gain)."""
    gain = ceiling - baseline
    return (model - baseline) / gain if gain > 0 else float("nan")
