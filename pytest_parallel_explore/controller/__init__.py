"""The process that reports: it starts the run, watches the trials, and writes the comparison at
the end; it also closes what a stopped run left behind.
"""
