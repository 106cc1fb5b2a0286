"""session actor package."""
