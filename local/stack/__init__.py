"""The local stack: workspace, MLflow, Azurite and Airflow, started and stopped together."""
