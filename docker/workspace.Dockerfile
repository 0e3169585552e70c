# One image for the project's own services of the compose stack, built by every service that
# runs it (docker-compose.yaml, docker-compose.override.yml): the local workspace (Databricks
# Jobs/Files API on local Spark + Delta), the MLflow tracking server, the secrets check and the
# story of `make run` (docker/story.py).
FROM python:3.11.13-slim-bookworm

# Java for Spark; Maven only to fetch the Delta jars below, removed in the same layer.
RUN apt-get update \
 && apt-get install -y --no-install-recommends openjdk-17-jre-headless maven \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/ecom
# The locked versions of the local virtual environment (constraints.txt) for the job-side
# libraries and what the workspace server, the story and deploy/ import (FastAPI, uvicorn,
# databricks-sdk come with the Airflow providers).
COPY requirements.txt constraints.txt ./
COPY spark_jobs/requirements.txt spark_jobs/requirements.txt
RUN pip install --no-cache-dir -r spark_jobs/requirements.txt -r requirements.txt -c constraints.txt

# Delta jars fetched at build time, never when a Spark session starts.
COPY setup/jars/pom.xml setup/jars/pom.xml
RUN mvn -q -B -f setup/jars/pom.xml dependency:copy-dependencies -DincludeScope=runtime \
      -DincludeGroupIds=io.delta,io.unitycatalog -DoutputDirectory=/opt/ecom/jars \
 && rm -rf /root/.m2 && apt-get purge -y maven && apt-get autoremove -y

# An unprivileged user owns the state: /data (the workspace's tables, volumes and runs) and
# /data/mlflow (MLflow's SQLite database and artifacts). A new named volume mounted there
# starts with this ownership.
RUN useradd --uid 50000 --create-home --shell /usr/sbin/nologin ecom \
 && mkdir -p /data/mlflow/artifacts \
 && chown -R ecom /data
ENV ECOM_JARS_DIR=/opt/ecom/jars ECOM_LOCAL_DIR=/data

COPY deploy deploy
COPY local local
COPY spark_jobs spark_jobs
COPY include include
COPY docker/check-secrets.sh docker/story.py docker/
USER ecom
