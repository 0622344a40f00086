"""The controller's side of xdist's workers: what each gets as it starts, and when it gets its trials.

Registered only when xdist runs the trials (:class:`XdistHooks`).  Every
worker gets the base commit, the repository's snapshot, the variants as the
controller read them and the trials ``--explore-retry-failed`` selected, so
a variants file or a record changed while workers start changes nothing they
run.  What else a worker reads as it starts (the ini, conftest files, the
index) only a run with something unsandboxed lets an agent change: such a
run hands out nothing early and replaces no dead worker.

xdist hands out no item until every worker has collected, so each trial waits
for the slowest worker's start: at ``-n 3`` on 2 cores, the last worker is up
0.05-0.15 s after the first; a worker slowed by its machine holds every trial
back.  The trials are known before any worker starts, so a worker that has
collected can take its share at once: :class:`ReadyFirstScheduling` is
xdist's ``worksteal`` but for that.

A share is the worker's part of what is left, counting the workers still
starting (the first up take the larger shares, as they start first).  A
worker runs an item only once it holds the next one too, or is told that none
will come: a worker given a single trial is told so at once (worksteal does
the same once all are up).  Once every worker has collected, worksteal's own
rules balance what is left (stealing from long queues).
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from typing import TYPE_CHECKING, Any

import pytest
from xdist.remote import Producer
from xdist.scheduler.worksteal import MIN_PENDING, WorkStealingScheduling
from xdist.workermanage import WorkerController

from ..config.keys import (
    BASE_COMMIT_KEY,
    REPO_STATE_INPUT,
    REPO_STATE_KEY,
    RETRY_SELECTION_INPUT,
    VARIANTS_INPUT,
    VARIANTS_INPUT_KEY,
)
from ..model.record import retry_selection
from .recovery import recover_interrupted
from .runstart import every_trial_sandboxed

if TYPE_CHECKING:
    from .session import ExploreController


class ReadyFirstScheduling(WorkStealingScheduling):
    """``worksteal`` that gives each worker its share as soon as it has collected."""

    collection: list[str] | None  # set by the first worker to collect, not once all have

    def __init__(self, config: pytest.Config, log: Producer | None = None) -> None:
        super().__init__(config, log)
        self._scheduled = False  # xdist has seen every worker collect and called schedule()

    @property
    def has_pending(self) -> bool:
        # xdist asks this once, when the last worker has collected, to show "N workers [M items]"
        # only before the work starts: trials handed out earlier are no reason not to show it.
        return self._scheduled and super().has_pending

    def add_node_collection(self, node: WorkerController, collection: Sequence[str]) -> None:
        super().add_node_collection(node, collection)
        if self.collection_is_completed:
            return  # the last worker, or one replacing a dead one: xdist calls schedule() next
        collected = list(collection)
        if self.collection is None:
            self.collection = collected
            self.pending[:] = range(len(collected))
        if collected == self.collection:  # a worker that collected otherwise is reported in schedule()
            self._hand_out(node)

    def schedule(self) -> None:
        first, self._scheduled = not self._scheduled, True
        if first and self.collection is not None and not self._check_nodes_have_same_collection():
            self.log("**Different tests collected, aborting run**")
            self.pending.clear()  # what was not handed out never runs: the run ends with the workers' trials
            for node, pending in self.node2pending.items():
                if len(pending) < MIN_PENDING:
                    node.shutdown()
            return
        super().schedule()

    def check_schedule(self) -> None:
        if self.collection_is_completed:
            super().check_schedule()
            return
        # Before every worker is up, only those that collected take work, and none is stolen.
        for node in list(self.node2collection):
            if node in self.node2pending and not node.shutting_down and len(self.node2pending[node]) < MIN_PENDING:
                self._hand_out(node)

    def _hand_out(self, node: WorkerController) -> None:
        """Give ``node`` its share of what is left; a last trial it holds may start at once."""
        starting = max(0, self.numnodes - len(self.node2collection))
        self._send_tests(node, -(-len(self.pending) // (starting + 1)))
        if len(self.node2pending[node]) == 1:
            node.shutdown()  # a worker holding one trial waits for a next one; none comes


class XdistHooks:
    """The controller's xdist hooks, registered only when xdist runs the trials."""

    def __init__(self, controller: ExploreController) -> None:
        self.controller = controller
        self._retried: list[str] | None = None

    def pytest_xdist_make_scheduler(self, config: pytest.Config, log: Any) -> Any:
        """Trials go to each worker as soon as it is up, unless another scheduling was asked.

        Not when anything of the run works without a sandbox: it could change what a worker
        still starting reads (the ini, a conftest, the index), so every worker starts first.
        """
        if config.getoption("dist", "no") != "worksteal" or not every_trial_sandboxed(self.controller.settings):
            return None
        return ReadyFirstScheduling(config, log)

    def pytest_configure_node(self, node: Any) -> None:
        """Every worker branches from the commit resolved here and runs the trials selected here."""
        settings = self.controller.settings
        node.workerinput[BASE_COMMIT_KEY] = settings.base_commit
        variants = self.controller.config.stash.get(VARIANTS_INPUT_KEY, None)
        if variants is not None:
            node.workerinput[VARIANTS_INPUT] = variants
        if settings.retry_failed:
            if self._retried is None:  # found once: a trial may end while later workers start
                self._retried = retry_selection(settings.paths, [trial.name for trial in settings.trials])
            node.workerinput[RETRY_SELECTION_INPUT] = self._retried
        state = self.controller.config.stash.get(REPO_STATE_KEY, None)
        if state is not None:
            node.workerinput[REPO_STATE_INPUT] = state.to_json()

    @pytest.hookimpl(wrapper=True)
    def pytest_testnodeready(self) -> Generator[None, object, object]:
        with self.controller.terminal():  # xdist's reporter writes its status line here
            return (yield)

    def pytest_xdist_node_collection_finished(self, node: Any, ids: Any) -> None:
        self.controller.worker_collected(list(ids))
        self.controller.worker_settled()

    @pytest.hookimpl(wrapper=True)
    def pytest_testnodedown(self, node: Any, error: Any) -> Generator[None, object, object]:
        """A worker died: stop what its trial left running now, rather than at the end."""
        self.controller.worker_settled()
        if error:
            self.controller.say(recover_interrupted(self.controller.settings, only_dead_owners=True))
        with self.controller.terminal():
            return (yield)
