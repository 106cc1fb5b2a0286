"""Recipes built on the client, with kazoo's names (DataWatch, ChildrenWatch, ...)."""
