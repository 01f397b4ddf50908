"""Data quality: Great Expectations suites run as blocking asset checks."""
