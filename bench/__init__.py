"""The benchmarks: each measures one claim and prints it; none is a test. Run one from the
repository's root as `python -m bench.<name>`: they import each other and `models` as
packages, and so do the child interpreters they start (which inherit the folder)."""
