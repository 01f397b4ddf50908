"""Monitoring: drift of every scored as-of date against the scoring model's reference,
as an asset check, and a retrain when it fails."""
