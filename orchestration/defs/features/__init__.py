"""The dbt project as Dagster assets: staging, intermediate and the feature marts."""
