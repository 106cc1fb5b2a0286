"""The actors of a zoomq node: one folder per actor, `name.py` pure core, `name_actor.py` shell."""
