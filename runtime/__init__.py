"""The actor runtime: actor loop (actor.py), supervisor, restart policy, config, logging."""
