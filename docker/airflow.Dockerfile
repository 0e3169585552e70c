# Airflow image for plain `docker compose up` (no Astro CLI).
FROM apache/airflow:3.3.2-python3.11
COPY requirements.txt constraints.txt /opt/ecom/
RUN pip install --no-cache-dir -r /opt/ecom/requirements.txt -c /opt/ecom/constraints.txt
