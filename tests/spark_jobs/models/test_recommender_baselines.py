"""The recommender's yardsticks on real Spark: the two popularity baselines on a hand-made case,
the generator's ceiling, the tuning on an earlier window, and the ordering they promise on
generated data (ceiling >= ALS > category-aware popularity > global popularity)."""

from __future__ import annotations

import json
import uuid
from datetime import date, timedelta

import mlflow
import numpy as np
import pytest
from mlflow import MlflowClient

from clickstream.models.recommender.als import (
    popularity_recommend,
)
from clickstream.models.recommender.baselines import (
    NO_CATEGORY,
    category_popularity_recommend,
    product_categories,
)
from clickstream.models.recommender.ceiling import (
    Generator,
    capture,
    ceiling_recommend,
    load_generator,
    true_scores,
)
from clickstream.models.recommender.training import (
    DEFAULT_PARAMS,
    RecommenderConfig,
    train_recommender,
    tune,
)
from clickstream.sources.synthetic import Drift, build_world, generate_day

pytestmark = pytest.mark.spark

FEEDBACK = "user_id bigint, product_id bigint, strength double"
PAIRS = "user_id bigint, product_id bigint"
CATEGORY_OF = {1: 10, 2: 10, 3: 10, 4: 20, 5: 20, 6: 30}


def _lists(recs) -> dict[int, list[int]]:
    rows = recs.orderBy("user_id", "rank").collect()
    out: dict[int, list[int]] = {}
    for row in rows:
        out.setdefault(row["user_id"], []).append(row["product_id"])
    return out


# --- the baselines on a hand-made case --------------------------------------------------------
#
# Category 10 holds products 1, 2, 3 with total strengths 5, 3, 2 (shares 0.5, 0.3, 0.2);
# category 20 holds 4 and 5 with 3 and 1 (0.75, 0.25); category 30 holds 6 alone (strength 0.5).
# User 1's history is 3/4 category 10 and 1/4 category 20, so the scores are
# 1: 0.375, 2: 0.225, 4: 0.1875, 3: 0.15, 5: 0.0625: the order 1, 2, 4, 3, 5.
# User 2 knows category 30 only (one product): the global list fills the rest.
# Globally: 1 (5), 2 (3), 4 (3), 3 (2), 5 (1), 6 (0.5); ties broken by the smaller id.
HAND_MADE = [
    (1, 1, 2.0),
    (1, 2, 1.0),  # user 1: 3 in category 10 ...
    (1, 4, 1.0),  # ... and 1 in category 20
    (2, 6, 0.5),
    (3, 1, 3.0),
    (3, 2, 2.0),
    (3, 3, 2.0),
    (3, 4, 2.0),
    (3, 5, 1.0),
]


@pytest.fixture(scope="module")
def hand_made(spark):
    feedback = spark.createDataFrame(HAND_MADE, FEEDBACK)
    categories = spark.createDataFrame(
        list(CATEGORY_OF.items()), "product_id bigint, category_id bigint"
    )
    return feedback, categories


def test_category_popularity_ranks_the_users_categories_best_sellers(spark, hand_made):
    feedback, categories = hand_made
    users = spark.createDataFrame([(1,), (2,), (9,)], "user_id bigint")
    lists = _lists(category_popularity_recommend(feedback, categories, users, 5))
    assert lists[1] == [1, 2, 4, 3, 5]
    # One category product, then the global list without it; an unknown user gets the global.
    assert lists[2] == [6, 1, 2, 4, 3]
    assert lists[9] == [1, 2, 4, 3, 5]
    # The global baseline ignores the history: the same list for everyone.
    global_lists = _lists(popularity_recommend(feedback, users, 5))
    assert global_lists[1] == global_lists[2] == [1, 2, 4, 3, 5]


def test_category_popularity_skips_exclusions_and_still_fills_k(spark, hand_made):
    feedback, categories = hand_made
    users = spark.createDataFrame([(1,)], "user_id bigint")
    exclude = spark.createDataFrame([(1, 1), (1, 4), (2, 2)], PAIRS)
    lists = _lists(category_popularity_recommend(feedback, categories, users, 4, exclude))
    assert lists[1] == [2, 3, 5, 6]


def test_products_without_category_share_one_and_the_mapping_is_point_in_time(spark):
    rows = [
        (1, 7, None, date(2019, 10, 1), date(2019, 10, 1)),
        (1, 8, 5, date(2019, 10, 1), date(2019, 10, 1)),
        (1, 9, 6, date(2019, 10, 1), date(2019, 10, 3)),  # delivered after the window
    ]
    events = spark.createDataFrame(
        rows,
        "user_id bigint, product_id bigint, category_id bigint, event_date date, ingest_date date",
    )
    mapping = product_categories(events, date(2019, 10, 1), date(2019, 10, 2))
    assert {r["product_id"]: r["category_id"] for r in mapping.collect()} == {
        7: NO_CATEGORY,
        8: 5,
    }


def test_capture_is_the_share_of_the_ceilings_gain():
    assert capture(0.03, 0.01, 0.05) == pytest.approx(0.5)
    assert capture(0.01, 0.01, 0.05) == 0.0
    assert np.isnan(capture(0.02, 0.01, 0.01))  # no gain to capture


# --- generated data ----------------------------------------------------------------------------

SEED, USERS, PRODUCTS, EVENTS_PER_DAY = 11, 400, 400, 5000
START, DAYS = date(2019, 10, 1), 24
AS_OF = START + timedelta(days=DAYS - 1)
TRAIN_DAYS, EVAL_DAYS = 14, 5
GRID = (
    {"rank": 8, "reg_param": 1.0, "alpha": 5.0},
    {"rank": 16, "reg_param": 1.0, "alpha": 20.0},
)
EVENTS = (
    "user_id bigint, product_id bigint, category_id bigint, event_type string, "
    "event_date date, ingest_date date"
)


@pytest.fixture(scope="module")
def world():
    return build_world(SEED, USERS, PRODUCTS)


@pytest.fixture(scope="module")
def generated(spark, world):
    """``DAYS`` generated days as silver-like events (a Delta table in a new schema)."""
    rows = []
    for offset in range(DAYS):
        day = START + timedelta(days=offset)
        for line in generate_day(world, SEED, day, EVENTS_PER_DAY):
            f = line.split(",")
            rows.append((int(f[7]), int(f[2]), int(f[3]), f[1], date.fromisoformat(f[0][:10]), day))
    schema = f"t_{uuid.uuid4().hex[:8]}"
    spark.sql(f"CREATE SCHEMA {schema}")
    spark.createDataFrame(rows, EVENTS).write.format("delta").saveAsTable(f"{schema}.events")
    return schema


def test_view_probabilities_rank_the_ceiling_and_respect_exclusions(spark, world):
    generator = Generator(world, Drift())
    users = spark.createDataFrame([(int(world.user_ids[0]),), (1,)], "user_id bigint")
    truth = true_scores(generator, np.array([0]), AS_OF, AS_OF)[0]
    order = np.argsort(-truth, kind="stable")
    banned = int(world.product_ids[order[0]])
    exclude = spark.createDataFrame([(int(world.user_ids[0]), banned)], PAIRS)
    lists = _lists(ceiling_recommend(spark, generator, users, 3, (AS_OF, AS_OF), exclude))
    # The unknown user 1 gets nothing; the known one the next three likeliest products.
    assert lists == {int(world.user_ids[0]): world.product_ids[order[1:4]].tolist()}


def test_tuning_windows_come_before_and_an_empty_one_keeps_the_defaults(spark, generated):
    events = spark.table(f"{generated}.events")
    config = RecommenderConfig(
        model_name="unused",
        experiment="unused",
        as_of=AS_OF.isoformat(),
        train_days=TRAIN_DAYS,
        eval_days=EVAL_DAYS,
    )
    (tuning_train_start, tuning_train_end), (tuning_eval_start, tuning_eval_end) = (
        config.tuning_windows
    )
    assert (tuning_train_end - tuning_train_start).days == TRAIN_DAYS - 1
    assert tuning_eval_start == tuning_train_end + timedelta(days=1)
    assert tuning_eval_end < config.eval_window[0]  # the scored window is never seen
    # An earlier window before the data begins: nothing to tune on, the defaults are kept.
    early = RecommenderConfig(
        model_name="unused",
        experiment="unused",
        as_of=AS_OF.isoformat(),
        train_days=5,
        eval_days=20,
    )
    untuned = tune(events, early)
    assert untuned.params == DEFAULT_PARAMS and untuned.grid == []
    assert untuned.note.startswith("not tuned")


def test_training_logs_the_baselines_the_ceiling_and_the_grid(spark, tracking, generated, tmp_path):
    truth = tmp_path / "ground_truth"
    truth.mkdir()
    (truth / "generator.json").write_text(
        json.dumps({"seed": SEED, "users": USERS, "products": PRODUCTS, "drift_scenario": "none"})
    )
    assert load_generator(str(tmp_path / "missing" / "users.csv")) is None
    config = RecommenderConfig(
        model_name=f"recommender_{uuid.uuid4().hex[:8]}",
        experiment=tracking,
        as_of=AS_OF.isoformat(),
        train_days=TRAIN_DAYS,
        eval_days=EVAL_DAYS,
        ground_truth=str(truth / "users.csv"),
        tuning_grid=GRID,
        tuning_budget_seconds=float("inf"),  # both points, however slow the machine
    )
    result = train_recommender(spark, config, "spark_catalog", generated)
    # Tuned on the earlier window: both points scored, the better one refitted.
    tuning = result["tuning"]
    assert [{k: p[k] for k in DEFAULT_PARAMS} for p in tuning.grid] == list(GRID)
    assert tuning.grid[0]["precision_at_10"] != tuning.grid[1]["precision_at_10"]
    best = max(tuning.grid, key=lambda p: p["precision_at_10"])
    assert tuning.params == {k: best[k] for k in DEFAULT_PARAMS}
    metrics = result["metrics"]
    assert metrics["tuning_precision_at_10"] == best["precision_at_10"]
    run = MlflowClient().get_model_version(config.model_name, result["version"]).run_id
    logged = mlflow.artifacts.load_dict(f"runs:/{run}/tuning/grid.json")
    assert logged["grid"] == tuning.grid
    assert MlflowClient().get_run(run).data.params["alpha"] == str(best["alpha"])
    # The ceiling bounds every ranking scored on the same rows; ALS and the category-aware
    # baseline beat global popularity.
    ceiling = metrics["ceiling_precision_at_10"]
    assert ceiling >= metrics["precision_at_10"] > metrics["popularity_precision_at_10"]
    assert ceiling >= metrics["category_popularity_precision_at_10"]
    assert metrics["category_popularity_precision_at_10"] > metrics["popularity_precision_at_10"]
    assert 0 < metrics["ceiling_capture"] <= 1
    # The first model is promoted over global popularity, which it beats.
    assert result["decision"].promote is True


def test_the_tuning_budget_stops_after_the_first_point(spark, generated):
    config = RecommenderConfig(
        model_name="unused",
        experiment="unused",
        as_of=AS_OF.isoformat(),
        train_days=TRAIN_DAYS,
        eval_days=EVAL_DAYS,
        tuning_grid=GRID,
        tuning_budget_seconds=0.0,
    )
    tuned = tune(spark.table(f"{generated}.events"), config)
    assert len(tuned.grid) == 1 and tuned.params == GRID[0]
