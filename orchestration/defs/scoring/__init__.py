"""The champion scores every customer; the scores go back into the warehouse."""
