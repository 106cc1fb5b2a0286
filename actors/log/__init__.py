"""log actor package."""
