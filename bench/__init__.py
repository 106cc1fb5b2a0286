"""Load-testing harness for zoomq (`python -m bench`)."""
