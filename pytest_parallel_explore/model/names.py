"""Names users type: a trial's pytest node id and the command that reruns some trials.

Imports nothing: the items, the report and the summary all need these words.
"""

from __future__ import annotations

from collections.abc import Sequence


def retry_command(experiment: str, source: str | None, names: Sequence[str], *, retry_failed: bool = False) -> str:
    """The command that reruns just ``names`` of ``experiment``, whose variants file is ``source``.

    A plain run reruns trials without an outcome and reuses the others; failed ones run again only
    with ``--explore-retry-failed`` (``retry_failed``).
    """
    ids = " ".join(f"'{node_id(experiment, n)}'" for n in names)
    flag = " --explore-retry-failed" if retry_failed else ""
    return f"pytest --explore {experiment} --variants {source or 'VARIANTS'}{flag} {ids}".rstrip()


def node_id(experiment: str, trial: str) -> str:
    return f"explore::{experiment}[{trial}]"
