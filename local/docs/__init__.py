"""Documentation generated from the code: the architecture diagram, the quality checks."""
