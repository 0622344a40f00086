"""Typed data at the bottom of the package: the variants file, the resolved settings, the records.

Frozen dataclasses with their JSON forms and the files' paths, and nothing
that runs: every other package builds on these and this one imports none.
"""
