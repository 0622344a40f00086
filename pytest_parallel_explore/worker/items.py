"""Collection: one pytest item per trial, and nothing else.

Registered only where trials run (an xdist worker, or the main process
without xdist).  The project's own tests are not collected, and neither is
anything under the data directory, whose worktrees hold copies of them.
Positional arguments select trials by node id (``explore::NAME[trial]``),
``-k`` and ``-m`` work as usual.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ..config.keys import RETRY_SELECTION_INPUT, SETTINGS_KEY
from ..model.names import node_id
from ..model.record import RECORD_PROPERTY, Status, retry_selection
from ..model.settings import Settings, Trial
from .trial import TrialRunner


class TrialFailed(Exception):
    """A trial that ran but did not succeed; its reason is the whole failure report."""


class TrialItem(pytest.Item):
    """Runs one trial; passes when the trial was run and scored."""

    def __init__(self, *, trial: Trial, settings: Settings, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.trial = trial
        self.settings = settings
        # pytest-timeout guards the whole item a little above the agent's and the suite's limits.
        self.add_marker(pytest.mark.timeout(trial.timeout + settings.score.timeout + 120))

    def runtest(self) -> None:
        record = TrialRunner(self.config, self.settings, self.trial).run()
        # The record's one way to the controller (through xdist's report, as one JSON text: a nested
        # dict of every test's outcome costs execnet a message a value): the controller keeps this
        # copy, and a record on disk that later disagrees was changed by someone else.
        self.user_properties.append((RECORD_PROPERTY, record.json_text()))
        if record.status is Status.SKIPPED:
            pytest.skip(record.reason or "skipped")
        if record.missing:  # not the variant's failure, but CI must still hear that the trial did not run
            raise TrialFailed(f"missing ({record.status.value}): {record.reason or 'no reason recorded'}")
        if not record.ok:
            raise TrialFailed(f"{record.status.value}: {record.reason or 'no reason recorded'}")
        minimum = self.settings.min_score
        if minimum is not None and (record.score or 0.0) < minimum:
            raise TrialFailed(f"score {record.score:.3f} is below --explore-min-score {minimum:g}")

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:
        if isinstance(excinfo.value, TrialFailed):
            return str(excinfo.value)
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, None, self.nodeid


def collect_trials(session: pytest.Session) -> list[pytest.Item]:
    """One item per trial of the experiment."""
    settings = session.config.stash[SETTINGS_KEY]
    return [
        TrialItem.from_parent(
            session,
            name=f"{settings.experiment}[{trial.name}]",
            nodeid=node_id(settings.experiment, trial.name),
            trial=trial,
            settings=settings,
        )
        for trial in settings.trials
    ]


def select_trials(session: pytest.Session, items: list[pytest.Item]) -> list[pytest.Item]:
    """The items asked for: node-id arguments, ``--explore-retry-failed``, then ``-k``/``-m`` as usual.

    Under xdist the trials to retry are the controller's (``RETRY_SELECTION_INPUT``): a worker that
    collects after another's trial ended must not find that trial no longer failed.
    """
    config = session.config
    settings = config.stash[SETTINGS_KEY]
    wanted = _selected_ids(config, {item.nodeid for item in items})
    if wanted is not None:
        items = [item for item in items if item.nodeid in wanted]
    if settings.retry_failed:
        workerinput = getattr(config, "workerinput", None) or {}
        names = workerinput.get(RETRY_SELECTION_INPUT)
        if names is None:
            names = retry_selection(settings.paths, [trial.name for trial in settings.trials])
        retried = {f"{settings.experiment}[{name}]" for name in names}
        config.hook.pytest_deselected(items=[item for item in items if item.name not in retried])
        items = [item for item in items if item.name in retried]
    config.hook.pytest_collection_modifyitems(session=session, config=config, items=items)
    return items


def _selected_ids(config: pytest.Config, known: set[str]) -> set[str] | None:
    """Node ids given on the command line, or None when none were given."""
    if config.args_source is not pytest.Config.ArgsSource.ARGS:
        return None
    ids = [arg for arg in config.args if "::" in arg or "[" in arg]
    unknown = [arg for arg in ids if arg not in known]
    if unknown:
        raise pytest.UsageError(
            f"not a trial of this experiment: {', '.join(unknown)}; expected one of {', '.join(sorted(known))}"
        )
    return set(ids) or None


@pytest.hookimpl(tryfirst=True)
def pytest_collection(session: pytest.Session) -> bool:
    items = collect_trials(session)
    session.testscollected = len(items)
    session.config.hook.pytest_collectreport(report=pytest.CollectReport(session.nodeid, "passed", None, list(items)))
    session.items = select_trials(session, items)
    session.config.hook.pytest_collection_finish(session=session)
    return True
