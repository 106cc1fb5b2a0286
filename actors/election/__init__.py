"""election actor package."""
