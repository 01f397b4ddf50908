"""Train a candidate, measure it against the rules and the champion, gate the registry."""
