"""Training recipe of the shipped compact model (run with `python build.py train`)."""
