"""Benchmark 10: the recommender against its baselines and the generator's ceiling.

At ``make run`` scale (3,000 users, 20k events a day, ``LOCAL``'s 14 training and 5 evaluation
days), on 40 generated days without drift, one seed per repeat (42, then 7, 11, ...): ALS tuned
on the earlier window (``clickstream.models.recommender.training.tune``, the job's own grid)
and refitted, global popularity, category-aware popularity and the ceiling of the true
probabilities, all by precision@10 on the same users and exclusions as the training job.
Targets: ALS >= 1.5x global popularity, >= 1.1x category-aware popularity, and >= 60% of the
ceiling's gain over global popularity (the ratio of the two gains, ``capture``).
"""

from __future__ import annotations

import tempfile
from datetime import date, timedelta
from pathlib import Path

from bench.common import Comparison, Figure, local_session

SEEDS = (42, 7, 11, 13, 17)
USERS, EVENTS_PER_DAY, DAYS = 3000, 20_000, 40
START = date(2019, 10, 1)
K = 10
EVENTS = (
    "user_id bigint, product_id bigint, category_id bigint, event_type string, "
    "event_date date, ingest_date date"
)


def _events(spark, seed: int):
    from clickstream.sources.synthetic import build_world, generate_day

    world = build_world(seed, USERS)
    rows = []
    for offset in range(DAYS):
        day = START + timedelta(days=offset)
        for line in generate_day(world, seed, day, EVENTS_PER_DAY):
            f = line.split(",")
            rows.append((int(f[7]), int(f[2]), int(f[3]), f[1], date.fromisoformat(f[0][:10]), day))
    return world, spark.createDataFrame(rows, EVENTS).persist()


def _one_seed(spark, seed: int) -> dict[str, float]:
    from clickstream.models.recommender.als import (
        popularity_recommend,
        precision_recall_at_k,
        recommend,
        train_als,
    )
    from clickstream.models.recommender.baselines import (
        category_popularity_recommend,
        product_categories,
    )
    from clickstream.models.recommender.ceiling import Generator, ceiling_recommend
    from clickstream.models.recommender.interactions import (
        interactions,
        purchases_to_exclude,
        relevant_items,
    )
    from clickstream.models.recommender.training import RecommenderConfig, tune
    from clickstream.sources.synthetic import Drift
    from ecom_airflow.config import LOCAL

    world, events = _events(spark, seed)
    config = RecommenderConfig(
        model_name="bench",
        experiment="bench",
        as_of=(START + timedelta(days=DAYS - 1)).isoformat(),
        train_days=LOCAL.recommender_train_days,
        eval_days=LOCAL.recommender_eval_days,
        tuning_budget_seconds=float("inf"),
    )
    train = interactions(events, *config.train_window).persist()
    relevant = relevant_items(events, *config.eval_window).persist()
    users = relevant.select("user_id").distinct().persist()
    exclude = purchases_to_exclude(events, config.train_window[1], config.exclude_days).persist()

    def precision(recommendations) -> float:
        return precision_recall_at_k(recommendations, relevant, K)["precision_at_k"]

    tuning = tune(events, config)
    fitted = train_als(train, num_blocks=2, **tuning.params)
    categories = product_categories(events, *config.train_window)
    figures = {
        "als": precision(recommend(fitted, users, K, exclude)),
        "global": precision(popularity_recommend(train, users, K, exclude)),
        "category": precision(category_popularity_recommend(train, categories, users, K, exclude)),
        "ceiling": precision(
            ceiling_recommend(
                spark, Generator(world, Drift()), users, K, config.eval_window, exclude
            )
        ),
    }
    for frame in (events, train, relevant, users, exclude):
        frame.unpersist()
    print(f"[recommender_quality] seed {seed}: {figures} with {tuning.params}", flush=True)
    return figures


def run(repeats: int = 1) -> tuple[list[Comparison], list[Figure], list]:
    seeds = SEEDS[: max(1, min(repeats, len(SEEDS)))]
    names = {
        "als": "ALS precision@10 (tuned)",
        "global": "global popularity precision@10",
        "category": "category-aware popularity precision@10",
        "ceiling": "ceiling precision@10 (true probabilities)",
    }
    figures = {key: Figure(name, "") for key, name in names.items()}
    als_gain = Figure("ALS - global popularity", "")
    ceiling_gain = Figure("ceiling - global popularity", "")
    with tempfile.TemporaryDirectory(prefix="bench-recommender-") as state:
        spark = local_session(Path(state))
        for seed in seeds:
            measured = _one_seed(spark, seed)
            for key, value in measured.items():
                figures[key].samples.append(value)
            als_gain.samples.append(measured["als"] - measured["global"])
            ceiling_gain.samples.append(measured["ceiling"] - measured["global"])
        spark.stop()
    scale = f"seeds {', '.join(map(str, seeds))}; {USERS} users, {EVENTS_PER_DAY} events/day"
    comparisons = [
        Comparison(
            "recommender",
            "ALS vs global popularity",
            figures["als"],
            figures["global"],
            ">= 1.5x",
            figures["als"].median >= 1.5 * figures["global"].median,
            scale,
        ),
        Comparison(
            "recommender",
            "ALS vs category-aware popularity",
            figures["als"],
            figures["category"],
            ">= 1.1x",
            figures["als"].median >= 1.1 * figures["category"].median,
            scale,
        ),
        Comparison(
            "recommender",
            "capture: ALS's share of the ceiling's gain over global popularity",
            als_gain,
            ceiling_gain,
            ">= 0.6x",
            als_gain.median >= 0.6 * ceiling_gain.median,
            scale,
        ),
    ]
    return comparisons, list(figures.values()), []
