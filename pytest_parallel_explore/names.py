"""Names users type: a trial's pytest node id and the command that reruns some trials.

Imports nothing: the items, the report and the summary all need these words.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def retry_command(results: dict[str, Any], names: Sequence[str], *, retry_failed: bool = False) -> str:
    """The command that reruns just ``names``.

    A plain run reruns trials without an outcome and reuses the others; failed ones run again only
    with ``--explore-retry-failed`` (``retry_failed``).
    """
    ids = " ".join(f"'{node_id(results['experiment'], n)}'" for n in names)
    flag = " --explore-retry-failed" if retry_failed else ""
    source = results.get("source", "VARIANTS")
    return f"pytest --explore {results['experiment']} --variants {source}{flag} {ids}".rstrip()


def node_id(experiment: str, trial: str) -> str:
    return f"explore::{experiment}[{trial}]"
