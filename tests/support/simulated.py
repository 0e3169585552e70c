"""Small synthetic worlds turned into labelled feature rows without Spark: the generator's
events of each day, the features of ``local/simulations/duckdb_features.py`` (the DuckDB
reference of the Spark feature job) and the labels of ``pipeline/labels.py`` in pandas.

Fast enough for tests across many seeds: a 300-user world at 2,000 events a day over two
months takes about a second.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import duckdb
import numpy as np
import pandas as pd

from clickstream.core.contracts import FEATURE_COLUMNS
from clickstream.core.schema import EVENT_TYPES
from clickstream.sources import synthetic
from clickstream.sources.ground_truth import DayTruth
from local.simulations.duckdb_features import feature_sql


@dataclass(frozen=True)
class Simulation:
    world: synthetic.World
    events: pd.DataFrame  # the silver columns the features and labels read
    days: dict[date, DayTruth]
    start: date


def simulate(
    seed: int,
    days: int,
    users: int = 300,
    events_per_day: int = 2000,
    start: date = date(2019, 9, 1),
    drift: synthetic.Drift | None = None,
) -> Simulation:
    """``days`` days of a ``users``-user world from ``start`` on, with their ground truth."""
    drift = drift or synthetic.Drift()
    world = synthetic.build_world(seed, users)
    brands = np.asarray(world.product_brand, dtype=object)
    frames, truth = [], {}
    for offset in range(days):
        day = start + timedelta(days=offset)
        columns, _ = synthetic._day_events(world, seed, day, events_per_day, drift)
        product = columns["product"]
        event_day = np.floor_divide(columns["second"], 86_400)  # late sessions: -1 or -2
        frames.append(
            pd.DataFrame(
                {
                    "user_id": world.user_ids[columns["user"]],
                    "event_type": np.asarray(EVENT_TYPES, dtype=object)[columns["kind"]],
                    "product_id": world.product_ids[product],
                    "category_id": world.category_ids[world.product_category[product]],
                    "brand": brands[product],
                    "user_session": offset * 1_000_000 + columns["session"],
                    "price": synthetic._day_prices(world, day, drift)[product],
                    "event_date": pd.to_datetime(day) + pd.to_timedelta(event_day, unit="D"),
                    "ingest_date": pd.Timestamp(day),
                }
            )
        )
        # What ground_truth.day_truth records, from the columns at hand (no second draw).
        scales = synthetic.behaviour_scales(day, drift)
        truth[day] = DayTruth(day, len(np.unique(columns["session"])), *scales)
    return Simulation(world, pd.concat(frames, ignore_index=True), truth, start)


def labelled_features(sim: Simulation, feature_dates: list[date], horizon: int) -> pd.DataFrame:
    """Feature rows of ``feature_dates`` with the ``purchased`` label of the next ``horizon``
    days (event date in [F+1, F+h], delivered by F+h), as the pipeline computes them."""
    events = sim.events
    con = duckdb.connect()
    con.register("frame", events)
    first = pd.Timestamp(min(feature_dates)) - pd.Timedelta(days=30)
    con.execute(
        "CREATE TABLE events AS SELECT * FROM frame WHERE event_date >= ?", [first.to_pydatetime()]
    )
    frames = [con.sql(feature_sql("events", f.isoformat())).df() for f in feature_dates]
    con.close()
    rows = pd.concat(frames, ignore_index=True)
    rows["feature_date"] = pd.to_datetime(rows["feature_date"])
    buys = events[events["event_type"] == "purchase"]
    labels = []
    for f in feature_dates:
        f_ts = pd.Timestamp(f)
        closes = f_ts + pd.Timedelta(days=horizon)
        in_horizon = buys[
            (buys["event_date"] > f_ts)
            & (buys["event_date"] <= closes)
            & (buys["ingest_date"] <= closes)
        ]
        labels.append(
            pd.DataFrame({"user_id": in_horizon["user_id"].unique(), "feature_date": f_ts})
        )
    bought = pd.concat(labels, ignore_index=True).assign(purchased=1)
    rows = rows.merge(bought, on=["user_id", "feature_date"], how="left")
    rows["purchased"] = rows["purchased"].fillna(0).astype(int)
    for column in FEATURE_COLUMNS:
        rows[column] = rows[column].astype("float64")
    return rows


def truth_frame(sim: Simulation) -> pd.DataFrame:
    """The ``users.csv`` ground truth of the world as a frame."""
    return pd.DataFrame(
        {
            "user_id": sim.world.user_ids,
            "purchase_propensity": sim.world.propensity,
            "activity_share": synthetic.activity_share(sim.world),
        }
    )
