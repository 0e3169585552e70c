# The local workspace (Databricks Jobs/Files API on local Spark + Delta) and the MLflow server.
FROM python:3.11-slim-bookworm
RUN apt-get update \
 && apt-get install -y --no-install-recommends openjdk-17-jre-headless maven \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/ecom
COPY requirements.txt constraints.txt ./
COPY spark_jobs/requirements.txt spark_jobs/requirements.txt
RUN pip install --no-cache-dir -r spark_jobs/requirements.txt -r requirements.txt -c constraints.txt
COPY setup/jars/pom.xml setup/jars/pom.xml
# Delta jars fetched at build time, never when a Spark session starts.
RUN mvn -q -B -f setup/jars/pom.xml dependency:copy-dependencies -DincludeScope=runtime \
      -DincludeGroupIds=io.delta,io.unitycatalog -DoutputDirectory=/opt/ecom/jars \
 && rm -rf /root/.m2 && apt-get purge -y maven && apt-get autoremove -y
ENV ECOM_JARS_DIR=/opt/ecom/jars ECOM_LOCAL_DIR=/data
COPY local local
COPY spark_jobs spark_jobs
