"""observer actor package."""
