"""From trial scores to decisions: statistics and the sequential race."""
