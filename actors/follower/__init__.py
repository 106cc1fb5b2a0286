"""follower actor package."""
