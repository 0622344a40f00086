"""Scoring a trial: the sealed checkout, the test-suite run, the baseline and the score cache."""
