"""The local Databricks workspace: Jobs 2.2 runs and the Files API on local Spark + Delta."""
