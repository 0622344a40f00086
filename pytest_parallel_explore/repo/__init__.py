"""Everything that touches git: sealed git calls, worktrees and branches, trees, the repository snapshot."""
