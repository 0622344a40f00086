"""The comparison: the results model, results.json, summary.md, report.html and the merge."""
