# Airflow for plain `docker compose up` (no Astro CLI): the official image of the Airflow the
# local virtual environment pins (constraints.txt), plus the project's providers at their locked
# versions. dags/, plugins/ and include/ are mounted by docker-compose.yaml.
FROM apache/airflow:3.3.2-python3.11
COPY requirements.txt constraints.txt /opt/ecom/
RUN pip install --no-cache-dir -r /opt/ecom/requirements.txt -c /opt/ecom/constraints.txt
