"""Shared test machinery: environment, waiting, ports, services, landing and Airflow helpers."""
