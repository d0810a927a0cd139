"""The tests, a package: its modules share host_tests.helpers and the fixtures of conftest.py,
and import bench and models as packages from the repository's root."""
