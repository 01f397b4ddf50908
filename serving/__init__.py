"""Online scoring: one customer's score now, computed exactly as the batch computes it.

The features come from the dbt project's own compiled SQL (serving/features.py), the model
from the registry's champion alias (serving/champion.py); serving/app.py is the FastAPI
application, serving/cli.py what `nextbuy serve` runs.
"""
