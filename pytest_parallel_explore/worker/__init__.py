"""Where trials run (an xdist worker, or the one process without xdist): an item per trial,
and each trial's steps from checkout to score, saved after every one.
"""
