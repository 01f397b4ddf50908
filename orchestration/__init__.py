"""Dagster assets, resources and the `nextbuy` command line: where the parts meet."""
