"""Apache Airflow provider for Matillion Data Productivity Cloud streaming pipelines."""

__version__ = "0.1.0"
