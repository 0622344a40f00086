"""Claude Code and Codex inside a real ``pytest --explore`` run, in bubblewrap, against scripted APIs.

The CLIs are found as a user's would be: on ``PATH``, through a folder under
the temporary folder (an ``npx``-style install), with no ``executable``
setting.  The trial's transcript reaches ``report.html``, where headless
Chromium checks it is there, searchable and inert.  A CLI the sandbox cannot
see is refused before any trial starts.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from agent_clis import CLAUDE, CODEX, needs_bwrap, needs_claude, needs_codex, offline_env
from messages_server import MessagesServer, text, tokens, tool_use
from responses_server import ResponsesServer, function_call, message, usage
from test_codex_cli import provider

from tests.browser import Browser, needs_chromium
from tests.explore_testing import Project, assert_refused

#: What a hostile model says, to be shown as text and never run.
HOSTILE = '<script>document.title="owned"</script><img src=x onerror="document.title=1">'
GOOD = "def add(a, b):\n    return a + b\n"


@pytest.fixture
def cli_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``claude`` and ``codex`` on PATH from a folder under the temporary folder (links to the installed CLIs)."""
    bin_dir = tmp_path / "npx-cache" / "bin"
    bin_dir.mkdir(parents=True)
    for name, cli in (("claude", CLAUDE), ("codex", CODEX)):
        if cli is not None:
            (bin_dir / name).symlink_to(os.path.realpath(cli))
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return bin_dir


@pytest.fixture
def responses_server() -> Iterator[ResponsesServer]:
    server = ResponsesServer()
    yield server
    server.close()


def worktree_file(project: Project, trial: str, name: str) -> str:
    return str(project.experiment_dir() / "worktrees" / trial / name)


@needs_claude
@needs_codex
@needs_bwrap
def test_both_clis_solve_the_task_in_the_sandbox_and_their_transcripts_reach_the_report(
    calc_project: Project,
    messages_server: MessagesServer,
    responses_server: ResponsesServer,
    cli_path: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    offline_env(
        monkeypatch,
        tmp_path / "home",
        ANTHROPIC_BASE_URL=messages_server.url,
        ANTHROPIC_API_KEY="sk-ant-dummy",
        OPENAI_API_KEY="sk-dummy",
    )
    calc = worktree_file(calc_project, "claude", "calc.py")
    messages_server.message(tool_use("Read", file_path=calc), usage=tokens(900, 30))
    messages_server.message(tool_use("Write", file_path=calc, content=GOOD), usage=tokens(950, 60))
    messages_server.message(text(f"Done. {HOSTILE}"), usage=tokens(50, 20))
    fix = f"printf {json.dumps(GOOD)} > calc.py && python3 -c 'import calc; print(calc.add(2, 3))'"
    responses_server.respond(function_call("exec_command", cmd=fix), tokens=usage(800, 40))
    responses_server.respond(message("add() adds; 2 + 3 printed 5."), tokens=usage(900, 20, 800))
    spec: dict[str, Any] = calc_project.calc_spec(
        claude={"description": "Claude Code", "agent": {"backend": "claude-code"}},
        codex={
            "description": "Codex",
            "agent": {"backend": "codex", "model": "gpt-5.1-codex", "config": provider(responses_server)},
        },
    )
    spec["sandbox"] = "bwrap"

    result = calc_project.explore("--variants", calc_project.variants(spec))

    assert result.ret == 0, result.stdout.str() + result.stderr.str()
    trials = calc_project.trials()
    expected = [("claude", "claude-code", "claude-", 3), ("codex", "codex", "gpt-5.1-codex", 2)]
    for name, backend, model, turns in expected:
        trial = trials[name]
        assert (trial["status"], trial["score"], trial["flags"]) == ("done", 1.0, []), trial
        agent = trial["agent"]
        assert (agent["backend"], agent["turns"]) == (backend, turns) and agent["model"].startswith(model), agent
        assert agent["input_tokens"] and agent["output_tokens"] and agent["cost_usd"] > 0
    results = calc_project.experiment_dir() / "results"
    # Each CLI kept its session in the trial's private config folder, though it ran in the sandbox.
    assert list((results / "claude_claude").glob("projects/*/*.jsonl"))
    assert list((results / "codex_codex").glob("sessions/**/rollout-*.jsonl"))
    report = results / "report.html"
    html = report.read_text()
    assert HOSTILE not in html and "&lt;script&gt;document.title" in html
    if os.environ.get("EXPLORE_REPORT_COPY"):  # to look at the page by hand
        Path(os.environ["EXPLORE_REPORT_COPY"]).write_text(html)
    check_transcripts_in_a_browser(report, tmp_path)


@needs_chromium
def check_transcripts_in_a_browser(report: Path, tmp_path: Path) -> None:
    browser = Browser(tmp_path / "chromium-profile")
    try:
        page = browser.open(report.as_uri(), width=1280, height=2000)
        box = "document.querySelector('#trial-{} details.transcript')".format
        summaries = [page.js(f"{box(name)}.querySelector('summary').textContent") for name in ("claude", "codex")]
        assert summaries == ["Transcript: 6 entries: 2 tool calls", "Transcript: 3 entries: 1 command"], summaries
        assert page.js("document.title") != "owned" and page.js("document.querySelectorAll('script').length") == 1
        said = page.js(f"{box('claude')}.querySelectorAll('li.k-assistant')[0].textContent")
        assert HOSTILE in said
        # Search: only the entries holding the text stay, opened.
        search = f"{{ const d = {box('codex')}; d.open = true; const q = d.querySelector('.tq'); q.value = 'printed 5';"
        search += " q.dispatchEvent(new Event('input')); d.querySelector('.tcount').textContent }"
        assert page.js(search) == "1 of 3 entries"
        page.js(f"{box('claude')}.open = true")
        page.js(f"{box('claude')}.querySelectorAll('li details').forEach(d => d.open = true)")
        page.js(f"{box('claude')}.scrollIntoView()")
        page.screenshot(tmp_path / "transcripts.png")
        if os.environ.get("EXPLORE_REPORT_COPY"):
            Path(os.environ["EXPLORE_REPORT_COPY"] + ".png").write_bytes((tmp_path / "transcripts.png").read_bytes())
        assert browser.errors() == []
        assert {url.split("#")[0] for url in browser.requests()} == {report.as_uri()}
    finally:
        browser.close()


@needs_bwrap
@pytest.mark.parametrize(
    ("cli", "backend", "installed"),
    [
        pytest.param("claude", "claude-code", CLAUDE, marks=needs_claude, id="claude-code"),
        pytest.param("codex", "codex", CODEX, marks=needs_codex, id="codex"),
    ],
)
def test_a_cli_the_sandbox_cannot_see_is_refused_before_any_trial(
    calc_project: Project,
    messages_server: MessagesServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    cli: str,
    backend: str,
    installed: Path,
) -> None:
    offline_env(monkeypatch, tmp_path / "home", ANTHROPIC_BASE_URL=messages_server.url, ANTHROPIC_API_KEY="k")
    # A CLI installed in the user's repository, which the sandbox never shows: a launcher and the program
    # it starts (a link to the real CLI, whose own folder may be visible: here it is inside this checkout).
    launcher, program = calc_project.path / "tools" / cli, calc_project.path / "tools" / f"{cli}.exe"
    launcher.parent.mkdir()
    program.symlink_to(os.path.realpath(str(installed)))
    launcher.write_text(f'#!/bin/sh\nexec {program} "$@"\n')
    launcher.chmod(0o755)
    spec = calc_project.calc_spec(
        good="true", **{cli: {"description": "x", "agent": {"backend": backend, "executable": str(launcher)}}}
    )
    spec["sandbox"] = "bwrap"

    result = calc_project.explore("--variants", calc_project.variants(spec))

    assert_refused(calc_project, result, f"variants.{cli}.agent.backend: {cli}: ", "does not start in the sandbox")
    assert messages_server.requests == []
