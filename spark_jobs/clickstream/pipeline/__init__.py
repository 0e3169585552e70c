"""Raw CSV to bronze, silver, the offline feature table and the online feature table."""
