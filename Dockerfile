# Astro project image (`astro dev start` / `astro deploy`): Astro Runtime 3.3 ships Airflow 3.3.
FROM astrocrpublic.azurecr.io/runtime:3.3-2

# include/ and plugins/ hold importable packages (ecom_airflow, ...), as on the local stack.
ENV PYTHONPATH="/usr/local/airflow/include:/usr/local/airflow/plugins" \
    AIRFLOW__STATE_STORE__CLEAR_ON_SUCCESS=True \
    AIRFLOW__CORE__LOAD_EXAMPLES=False \
    ECOM_ENV=local
