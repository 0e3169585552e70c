# Astro project image, built by `astro dev start` and `astro deploy` (docs/astro.md). Astro
# Runtime 3.3-8 ships Airflow 3.3.2, the Airflow the local virtual environment pins in
# requirements-local.txt (tests/deploy/test_astro_project.py keeps the two in step). Runtime 3.3
# has no Python 3.11 distribution: python-3.12 is the nearest to the local environment's 3.11.
# The runtime's build steps install packages.txt (empty: no OS package needed) and
# requirements.txt (providers only: never Airflow, which the runtime ships and pins).
FROM astrocrpublic.azurecr.io/runtime:3.3-8-python-3.12

# include/ and plugins/ hold importable packages (ecom_airflow, ...), as on the local stack.
ENV PYTHONPATH="/usr/local/airflow/include:/usr/local/airflow/plugins" \
    AIRFLOW__STATE_STORE__CLEAR_ON_SUCCESS=True \
    AIRFLOW__CORE__LOAD_EXAMPLES=False \
    ECOM_ENV=local
