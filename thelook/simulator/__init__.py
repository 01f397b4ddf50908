"""The shop simulator: thelook_ecommerce raw tables plus the ground truth behind them.

thelook/README.md explains what is simulated and how. The rooms: `draws` (numpy),
`staging` (the drawn arrays as DuckDB temp tables, and back), `truth` (what a simulation
records and reports), `history` (`simulate`) and `append` (`append_days`); the customer
behaviour itself is `thelook.behaviour`, the settings `thelook.settings`.
"""

from thelook.simulator.append import append_days
from thelook.simulator.history import simulate
from thelook.simulator.truth import TRUTH_SCHEMA, SimulationError, SimulationResult

__all__ = ["TRUTH_SCHEMA", "SimulationError", "SimulationResult", "append_days", "simulate"]
