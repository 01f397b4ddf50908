"""Where lineage starts: the raw thelook tables."""
