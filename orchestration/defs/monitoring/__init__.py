"""Monitoring of every scored as-of date: drift of features and scores against the
scoring model's reference (assets.py, checks.py, reference.py), realised performance once
outcomes arrive (realised.py, performance.py), the HTML report (report.py, page.py), and a
retrain when a drift or performance check fails with ERROR (sensors.py)."""
