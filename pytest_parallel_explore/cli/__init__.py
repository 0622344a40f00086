"""What runs no experiment: ``--explore-list``, ``-results``, ``-cleanup``, ``-merge``, ``-adopt``,
and the same from Python.
"""
