"""leader actor package."""
