"""An offline stand-in for a coding agent, for the rate-limiter example.

    python examples/rate-limiter/agents/implement.py token_bucket|fixed_window|sliding_log

It reads the prompt from standard input (as the plugin's ``command`` backend provides it), says it
got it, and writes ``ratelimit.py`` with the chosen algorithm: a copy of ``impl_<algorithm>.py``.
Swap it for a real agent in ``variants.yaml`` to compare real approaches.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

AGENTS = Path(__file__).resolve().parent
ALGORITHMS = sorted(path.stem.removeprefix("impl_") for path in AGENTS.glob("impl_*.py"))
# The file next to this folder, so the agent edits the worktree it was started in, whatever the cwd.
TARGET = AGENTS.parent / "ratelimit.py"


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[1] not in ALGORITHMS:
        print(f"usage: {Path(argv[0]).name} {'|'.join(ALGORITHMS)}", file=sys.stderr)
        return 2
    algorithm = argv[1]
    prompt = "" if sys.stdin is None or sys.stdin.isatty() else sys.stdin.read()
    print(f"implement.py: got a prompt of {len(prompt)} characters; writing the {algorithm} limiter")
    shutil.copyfile(AGENTS / f"impl_{algorithm}.py", TARGET)
    print(f"implement.py: wrote {TARGET}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
