"""Dagster definitions by domain: sources, features, quality, training, scoring."""
