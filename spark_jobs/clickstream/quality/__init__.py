"""Data quality: Great Expectations suites, their results table and the HTML report."""
