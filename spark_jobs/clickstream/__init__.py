"""Library of the job scripts in spark_jobs/: schema, paths and the pure transformations."""
