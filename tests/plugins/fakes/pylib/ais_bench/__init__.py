"""A stand-in for Ascend's ais_bench package, for tests: `python3 -m ais_bench` runs __main__.py."""
