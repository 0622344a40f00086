"""``report.html``: rendered from results (escaping, matrix, tables) and opened in a real headless Chromium."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from pytest_parallel_explore.model.baseline import Baseline
from pytest_parallel_explore.model.record import AgentStats, DiffStats, Status, TestStats, TrialRecord
from pytest_parallel_explore.report.html import MAX_DIFF_LINES, render_html
from pytest_parallel_explore.report.model import Results
from pytest_parallel_explore.scoring.baseline import judge
from tests.browser import Browser, BrowserPage, needs_chromium
from tests.explore_testing import BAD_AGENT, GOOD_AGENT, Project

SCRIPT = "<script>alert('x')</script>"
BASE = "0123456789abcdef0123456789abcdef01234567"


# --- reading the page without a browser ---------------------------------------------------------

#: Attributes through which HTML, SVG or a form can make the browser load something.
URL_ATTRIBUTES = {
    "src",
    "href",
    "srcset",
    "action",
    "formaction",
    "poster",
    "data",
    "background",
    "ping",
    "manifest",
    "cite",
    "longdesc",
    "usemap",
    "codebase",
    "archive",
    "xlink:href",
    "imagesrcset",
}
#: Elements that load something by existing, whatever their attributes.
LOADING_TAGS = {"link", "iframe", "frame", "object", "embed", "base", "audio", "video", "source", "track", "portal"}
VOID_TAGS = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


class Page(HTMLParser):
    """What a test needs from the page: tables, matrix, the warning, and every way out of the file."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.outside: list[str] = []  # references to anything outside the file
        self.ranked: list[str] = []  # data-trial of each ranked row, in order
        self.columns: list[str] = []
        self.matrix: dict[str, list[str]] = {}
        self.texts: dict[str, str] = {}  # text of elements by id
        self.script_tags = 0
        self._stack: list[tuple[str, str | None]] = []  # (tag, id of the element it is in)
        self._row: list[str] | None = None
        self._row_text: list[str] = []
        self._in = ""  # "style", "script", "th" of a matrix row
        self._collect: dict[str, list[str]] = {}
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        self._check_outside(tag, a)
        where = a.get("id") or (self._stack[-1][1] if self._stack else None)
        if tag not in VOID_TAGS:
            self._stack.append((tag, where))
        if a.get("id"):
            self._collect[a["id"] or ""] = []
        if tag == "script":
            self.script_tags += 1
        if tag in ("style", "script"):
            self._in = tag
        if tag == "tr" and where == "ranked" and a.get("data-trial"):
            self.ranked.append(a["data-trial"] or "")
        if where == "mx":
            if tag == "th" and a.get("data-col"):
                self.columns.append(a["data-col"] or "")
            elif tag == "tr" and self._row is None and self.columns:
                self._row, self._row_text = [], []
            elif tag == "td" and self._row is not None:
                self._row.append(a.get("class") or "")
            elif tag == "th" and self._row is not None:
                self._in = "rowhead"

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._check_outside(tag, dict(attrs))  # <rect/>, <path/>: nothing inside, nothing to close

    def handle_endtag(self, tag: str) -> None:
        if all(open_tag != tag for open_tag, _ in self._stack):
            return
        if tag in ("style", "script") or (tag == "th" and self._in == "rowhead"):
            self._in = ""
        if tag == "tr" and self._row is not None:
            self.matrix["".join(self._row_text)] = self._row
            self._row = None
        while self._stack:
            open_tag, where = self._stack.pop()
            if where and where in self._collect and (not self._stack or self._stack[-1][1] != where):
                self.texts[where] = "".join(self._collect.pop(where))
            if open_tag == tag:
                break

    def handle_data(self, data: str) -> None:
        if self._in in ("style", "script"):
            lowered = data.lower()
            for needle in (
                "url(",
                "@import",
                "fetch(",
                "xmlhttprequest",
                "websocket",
                "eventsource",
                "sendbeacon",
                "import(",
                "new image",
                "src =",
                ".src=",
                "serviceworker",
                "window.open",
            ):
                if needle in lowered:
                    self.outside.append(f"{self._in}: {needle}")
        if self._in == "rowhead":
            self._row_text.append(data)
        for parts in self._collect.values():
            parts.append(data)

    def _check_outside(self, tag: str, attrs: dict[str, str | None]) -> None:
        if tag in LOADING_TAGS:
            self.outside.append(f"<{tag}>")
        if tag == "meta" and (attrs.get("http-equiv") or "").lower() == "refresh":
            self.outside.append("<meta http-equiv=refresh>")
        for name, value in attrs.items():
            if name in URL_ATTRIBUTES and not (value or "").startswith("#"):
                self.outside.append(f"<{tag} {name}={value!r}>")
            if name == "style" and "url(" in (value or "").lower():
                self.outside.append(f"<{tag} style={value!r}>")


# --- synthetic results ---------------------------------------------------------------------------


def trial(name: str, cases: dict[str, str], baseline: Baseline, **fields: Any) -> dict[str, Any]:
    """A finished trial's record, judged against ``baseline`` as a trial is, as results.json holds it."""
    stats = TestStats(
        passed=list(cases.values()).count("passed"),
        failed=list(cases.values()).count("failed"),
        cases={n: {"outcome": o, "duration": 0.1} for n, o in cases.items()},
    )
    counts, broken = judge(baseline, stats)
    values: dict[str, Any] = {
        "experiment": "demo",
        "name": name,
        "variant": name.split(".")[0],
        "description": f"variant {name}",
        "status": Status.DONE,
        "branch": f"explore/demo/{name}",
        "base_commit": BASE,
        "commit": "f" * 40,
        "agent": AgentStats("anthropic", "claude-x", 0, 75.5, 12, 120_000, 8_000, cost_usd=0.42),
        "diff": DiffStats(1, 2, 1, ["m.py"]),
        "tests": stats,
        "verdicts": counts,
        "broken_tests": broken,
        "score": stats.pass_rate,
    }
    record = TrialRecord(**{**values, **fields})
    return record.to_json()


T_A, T_B, T_C, T_D = (f"tests/test_m.py::test_{x}" for x in "abcd")
T_SCRIPT = f"tests/test_m.py::test_echo[{SCRIPT}]"
T_FLAKY = "tests/test_m.py::test_sometimes"


@pytest.fixture
def results() -> dict[str, Any]:
    base_cases = {T_A: "passed", T_B: "passed", T_C: "failed", T_D: "failed", T_SCRIPT: "passed"}
    baseline = Baseline(
        "k", BASE, 2, base_cases, frozenset({T_FLAKY}), TestStats(passed=3, failed=2), frozenset(base_cases)
    )
    good = trial(
        "good",
        {T_A: "passed", T_B: "passed", T_C: "passed", T_D: "failed", T_SCRIPT: "passed", T_FLAKY: "failed"},
        baseline,
    )
    bad = trial(
        "bad",
        {
            T_A: "failed",
            T_C: "failed",
            T_D: "passed",
            T_SCRIPT: "passed",
            T_FLAKY: "passed",
            "tests/test_new.py::test_new": "failed",
        },
        baseline,
        tampering=["tests/test_m.py"],
        flags=[f"flag {SCRIPT}"],
    )
    crashed = trial("crashed", {}, baseline, status=Status.AGENT_FAILED, reason=f"agent said {SCRIPT}")
    crashed["score"] = None
    return {
        "schema": 1,
        "experiment": "demo",
        "task": f"Make it work. Do not {SCRIPT}.",
        "source": "variants.yaml",
        "base": "HEAD",
        "base_commit": BASE,
        "updated": "2026-01-01T00:00:00+00:00",
        "best": "good",
        "status_counts": {"done": 2, "agent_failed": 1},
        "baseline": baseline.to_json(),
        "variants": ["good", "bad", "crashed"],  # the older form: names only, no statistics
        "trials": [good, bad, crashed],
    }


PATCH = textwrap.dedent(
    f"""\
    diff --git a/m.py b/m.py
    index 1111111..2222222 100644
    --- a/m.py
    +++ b/m.py
    @@ -1,2 +1,3 @@
     def c():
    -    raise NotImplementedError
    +    return "{SCRIPT}" if a < b and c & d else 3
    """
)


# --- the page, rendered from results ----------------------------------------------------------------


def render(results: dict[str, Any], patches: dict[str, str]) -> str:
    """The page for results as results.json holds them (read back as the merge reads them)."""
    return render_html(Results.from_json(results), patches)


def test_test_ids_task_reasons_and_diff_lines_are_text_not_markup(results: dict[str, Any]) -> None:
    html = render(results, {"good": PATCH})
    page = Page(html)

    assert page.script_tags == 1  # the page's own; none came from the data
    assert SCRIPT not in html
    assert T_SCRIPT in page.matrix  # the id reads back exactly, as text
    assert "&lt;script&gt;" in html
    diff = page.texts["trial-good"]
    assert f'+    return "{SCRIPT}" if a < b and c & d else 3' in diff
    assert f"What happened: agent said {SCRIPT}" in page.texts["trial-crashed"]
    assert "<span class=a>+    return &#34;&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&#34; if a &lt; b" in html
    assert "<span class=d>-    raise NotImplementedError\n</span>" in html
    assert page.outside == []


def test_matrix_has_a_cell_per_test_and_column_coloured_by_verdict(results: dict[str, Any]) -> None:
    page = Page(render(results, {}))

    assert page.columns == ["baseline", "good", "bad", "crashed"]
    # Worked out by hand: base passes a, b and echo, fails c and d; the flaky test gets no verdict.
    assert page.matrix == {
        T_A: ["passed", "kept", "broken", "none"],
        T_B: ["passed", "kept", "removed", "none"],
        T_C: ["failed", "fixed", "still_failing", "none"],
        T_D: ["failed", "still_failing", "fixed", "none"],
        T_SCRIPT: ["passed", "kept", "kept", "none"],
        T_FLAKY: ["flaky", "failed", "passed", "none"],
        "tests/test_new.py::test_new": ["absent", "absent", "added_failed", "none"],
    }


def test_rows_carry_the_tags_the_filters_select_on(results: dict[str, Any]) -> None:
    html = render(results, {})
    assert '<tr class="broken differs"><th><div><span>tests/test_m.py</span><b>::test_a</b>' in html
    assert '<tr class="flaky differs"><th><div><span>tests/test_m.py</span><b>::test_sometimes</b>' in html
    assert "flaky (1)" in html and "broken somewhere (1)" in html and "fixed somewhere (2)" in html


def test_ranked_table_has_the_baseline_row_then_a_row_per_trial(results: dict[str, Any]) -> None:
    html = render(results, {})
    page = Page(html)

    assert page.ranked == ["good", "bad", "crashed"]
    assert '<tbody class="pin">' in html and "<td>baseline</td>" in html
    assert 'Best trial: <a href="#trial-good">good</a>, score 0.800, 4/6 tests pass' in html
    assert 'id="variants"' not in html  # no statistics: no section for them
    assert "Tampering:" in page.texts["trial-bad"] and "tests/test_m.py" in page.texts["trial-bad"]
    assert "pytest --explore demo --explore-adopt good" in page.texts["trial-good"]
    assert f"git diff {BASE[:12]}...explore/demo/good" in page.texts["trial-good"]
    assert "git merge explore/demo/good" in page.texts["trial-good"]
    assert "adopt" not in page.texts["trial-crashed"]  # never scored: nothing to adopt
    assert "No patch file" in page.texts["trial-good"]


def test_statistics_draw_confidence_interval_bars(results: dict[str, Any]) -> None:
    results["variants"] = [
        {
            "name": "good",
            "trials": ["good"],
            "n": 3,
            "mean": 0.8,
            "sd": 0.1,
            "min": 0.7,
            "max": 0.9,
            "ci_low": 0.7,
            "ci_high": 0.9,
            "solved": 1,
            "pass_at_1": 0.33,
            "pass_at_k": 1.0,
            "pass_hat_k": 0.04,
            "k": 3,
        },
        {
            "name": "bad",
            "trials": ["bad"],
            "n": 3,
            "mean": 0.4,
            "sd": 0.2,
            "min": 0.2,
            "max": 0.6,
            "ci_low": 0.2,
            "ci_high": 0.6,
            "solved": 0,
            "pass_at_1": 0.0,
            "pass_at_k": 0.0,
            "pass_hat_k": 0.0,
            "k": 3,
        },
    ]
    results["comparisons"] = [
        {
            "best": "good",
            "other": "bad",
            "difference": 0.4,
            "ci_low": 0.1,
            "ci_high": 0.7,
            "p_value": 0.01,
            "p_adjusted": 0.01,
            "comparisons": 1,
            "test": "fisher",
            "method": "Fisher's exact test on solved trials",
            "k": 3,
            "significant": True,
            "repeats_needed": None,
            "sentence": "good beats bad: +0.40 [0.10, 0.70], p = 0.01",
        },
    ]
    html = render(results, {})

    assert 'id="variants"' in html
    assert "good beats bad: +0.40 [0.10, 0.70], p = 0.01" in html
    # The axis runs from 0 to 1 over 4..106 px: the whisker of [0.7, 0.9] sits at 75.4..95.8.
    assert '<path class="ci" d="M75.4 7H95.8M75.4 3V11M95.8 3V11"/>' in html
    assert html.count('class="ci"') == 2 + 2 + 1  # two trial rows, two variants, one comparison


def test_checkout_changes_are_a_visible_warning(results: dict[str, Any]) -> None:
    results["checkout_changes"] = ["m.py", "notes <draft>.txt"]
    page = Page(render(results, {}))
    assert page.texts["checkout-changes"].startswith("Warning: the main checkout changed while the trials ran.")
    assert "m.py, notes <draft>.txt" in page.texts["checkout-changes"]
    assert "checkout-changes" not in Page(render({**results, "checkout_changes": []}, {})).texts


def test_trials_that_did_not_run_are_a_visible_warning_with_the_command_that_runs_them(
    results: dict[str, Any],
) -> None:
    results["not_run"] = ["good <b>"]
    page = Page(render(results, {}))
    assert page.texts["not-run"].startswith("Warning: 1 selected trials never started")
    assert "good <b>" in page.texts["not-run"] and "'explore::" in page.texts["not-run"]
    assert "not-run" not in Page(render({**results, "not_run": []}, {})).texts


def test_long_diffs_are_cut_and_point_to_the_patch_file(results: dict[str, Any]) -> None:
    patch = PATCH + "".join(f"+line {i}\n" for i in range(MAX_DIFF_LINES + 50))
    page = Page(render(results, {"good": patch}))
    assert "+line 990" in page.texts["trial-good"]
    assert "+line 1000" not in page.texts["trial-good"]
    assert "58 more lines in results/good.patch" in page.texts["trial-good"]


def test_an_experiment_with_nothing_run_yet_still_renders(results: dict[str, Any]) -> None:
    html = render({**results, "trials": [], "best": None, "baseline": None, "status_counts": {}}, {})
    assert "No variant was scored." in html
    assert "No per-test outcomes were recorded." in html


def test_without_a_baseline_cells_are_plain_outcomes(results: dict[str, Any]) -> None:
    results["baseline"] = None
    page = Page(render(results, {}))
    assert page.columns == ["good", "bad", "crashed"]
    assert page.matrix[T_A] == ["passed", "failed", "none"]
    assert page.matrix[T_FLAKY] == ["failed", "passed", "none"]


# --- the page in a real browser ------------------------------------------------------------------


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Browser]:
    chromium = Browser(tmp_path / "chromium-profile")
    yield chromium
    chromium.close()


#: The page's state, as the reader sees it after the page's script ran.
STATE = """JSON.stringify({
  ranked: Array.from(document.querySelectorAll("#ranked tbody tr[data-trial]"), r => r.dataset.trial),
  baseline: document.querySelector("#ranked tbody.pin td:nth-child(2)")?.textContent,
  columns: Array.from(document.querySelectorAll("#mx thead th[data-col]"), th => th.dataset.col),
  matrix: Object.fromEntries(Array.from(document.querySelectorAll("#mx tbody tr"),
    r => [r.cells[0].textContent, Array.from(r.cells).slice(1).map(c => c.className)])),
  visible: Array.from(document.querySelectorAll("#mx tbody tr:not([hidden])"), r => r.cells[0].textContent),
  shown: document.getElementById("mshown").textContent,
})"""


@pytest.fixture
def report_project(project: Project) -> Project:
    """A project whose base fails some tests, has a flaky one and a test id with markup in it."""
    project.write(
        {
            "m.py": "def a():\n    return 1\n\ndef c():\n    raise NotImplementedError\n\n"
            "def d():\n    raise NotImplementedError\n",
            "tests/test_m.py": textwrap.dedent(
                """
                import os
                import pytest
                import m

                def test_a():
                    assert m.a() == 1

                def test_c():
                    assert m.c() == 3

                def test_d():
                    assert m.d() == 4

                @pytest.mark.parametrize("text", ["<script>"])
                def test_echo(text):
                    assert text.startswith("<")

                def test_sometimes():
                    # Passes in the baseline's first run and fails in its second: flaky at the base commit.
                    assert os.environ["EXPLORE_TRIAL"] != "baseline.2"
                """
            ),
            ".gitignore": "variants*.yaml\nrunpytest-*\nstdout\nstderr\n",
        }
    )
    project.commit()
    return project


@needs_chromium
def test_report_in_a_browser_shows_every_trial_and_test_and_loads_nothing(
    report_project: Project, browser: Browser, tmp_path: Path
) -> None:
    fix_c = "sed -i '/def c/{n;s/raise NotImplementedError/return 3/}' m.py"
    break_a = "sed -i 's/return 1/return 0/' m.py && sed -i '/def d/{n;s/raise NotImplementedError/return 4/}' m.py"
    spec = report_project.calc_spec(fixer=fix_c, breaker=break_a)
    spec["task"] = "Make every function in m.py work."
    spec["score"]["baseline_runs"] = 2  # the flaky test fails in the baseline's second run only
    # The flaky test keeps its state outside the checkout, which a sandbox forbids, in a variable the
    # scoring environment does not pass on by default.
    spec["sandbox"] = "none"
    spec["score"]["pass_env"] = ["FLAKY_STATE"]
    result = report_project.explore("--variants", report_project.variants(spec))
    assert result.ret == 0, result.stdout.str()
    report = report_project.experiment_dir() / "results" / "report.html"
    html = report.read_text()
    assert Page(html).outside == []  # nothing in the file points outside it

    page = browser.open(report.as_uri())
    state = json.loads(page.js(STATE))

    assert state["ranked"] == ["fixer", "breaker"]
    assert state["baseline"] == "baseline"
    assert state["columns"] == ["baseline", "fixer", "breaker"]
    echo = "tests/test_m.py::test_echo[<script>]"
    flaky = state["matrix"].pop("tests/test_m.py::test_sometimes")
    assert flaky[0] == "flaky" and set(flaky[1:]) <= {"passed", "failed"}
    assert state["matrix"] == {
        "tests/test_m.py::test_a": ["passed", "kept", "broken"],
        "tests/test_m.py::test_c": ["failed", "fixed", "still_failing"],
        "tests/test_m.py::test_d": ["failed", "still_failing", "fixed"],
        echo: ["passed", "kept", "kept"],
    }
    assert page.js("document.querySelectorAll('script').length") == 1  # the test id stayed text
    # Tooltips are made on hover: the test, the trial and what the colour means.
    hover = "const c = document.querySelector('#mx tbody tr td:nth-child(4)'); "
    hover += "c.dispatchEvent(new MouseEvent('mouseover', {bubbles: true})); c.title"
    assert page.js(f"{{ {hover} }}") == "tests/test_m.py::test_a\nbreaker: broken: passes at the base commit, not now"
    page.screenshot(tmp_path / "report.png")
    assert (tmp_path / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # The filters and sorting work in the page, without a server.
    page.js("document.querySelector('#mf input[value=broken]').click()")
    state = json.loads(page.js(STATE))
    assert (state["visible"], state["shown"]) == (["tests/test_m.py::test_a"], "1")
    page.js("document.querySelector('#mf input[value=broken]').click()")
    page.js("{ const q = document.getElementById('mq'); q.value = 'SCRIPT'; q.dispatchEvent(new Event('input')); }")
    assert json.loads(page.js(STATE))["visible"] == [echo]
    page.js("{ const q = document.getElementById('mq'); q.value = ''; q.dispatchEvent(new Event('input')); }")
    page.js("document.querySelector('#mx thead th[data-col=breaker] button').click()")
    assert json.loads(page.js(STATE))["visible"][0] == "tests/test_m.py::test_a"  # broken first
    # A filtered view can be linked to.
    linked = json.loads(browser.open(report.as_uri() + "#matrix?only=fixed").js(STATE))
    assert sorted(linked["visible"]) == ["tests/test_m.py::test_c", "tests/test_m.py::test_d"]

    assert browser.errors() == []
    # The page itself and nothing else: no request to any other address, of any kind.
    assert {url.split("#")[0] for url in browser.requests()} == {report.as_uri()}


@needs_chromium
def test_the_checks_do_see_a_page_that_loads_from_outside(browser: Browser, tmp_path: Path) -> None:
    leaky = tmp_path / "leaky.html"
    leaky.write_text(
        '<!DOCTYPE html><html><head><link rel="stylesheet" href="https://cdn.example.invalid/x.css">'
        "<style>body{background:url(http://img.example.invalid/bg.png)}</style></head>"
        '<body><img src="http://img.example.invalid/a.png"><div id="mshown"></div>'
        '<script>fetch("https://api.example.invalid/track")</script></body></html>'
    )
    assert len(Page(leaky.read_text()).outside) >= 4

    browser.open(leaky.as_uri())
    outside = [url for url in browser.requests() if not url.startswith("file:")]
    hosts = {url.split("/")[2] for url in outside}
    assert hosts >= {"cdn.example.invalid", "img.example.invalid", "api.example.invalid"}


#: What the live page shows: whether it reloads itself, the running trials and their steps, the ranked rows.
#: null while the page is between two loads (it reloads itself every 2 s: no document yet).
LIVE = """document.documentElement && JSON.stringify({
  refresh: document.documentElement.dataset.refresh || null,
  timer: typeof window.exploreReload !== "undefined",
  running: Array.from(document.querySelectorAll("#live li[data-trial]"),
    li => [li.dataset.trial, li.querySelector(".badge").textContent]),
  ranked: Object.fromEntries(Array.from(document.querySelectorAll("#ranked tbody tr[data-trial]"),
    r => [r.dataset.trial, r.cells[2].textContent])),
})"""


def live_state(page: BrowserPage) -> dict[str, Any]:
    """What the live report shows, once the page has a document (waiting for the next load while it has none)."""
    for _ in range(10):
        shown = page.js(LIVE)
        if shown is not None:
            return dict(json.loads(shown))
        page.wait_for_load()
    raise AssertionError("the page never had a document")


@needs_chromium
def test_the_report_of_a_running_experiment_shows_it_running_then_the_final_table(
    calc_project: Project, browser: Browser, tmp_path: Path
) -> None:
    started, release = tmp_path / "started", tmp_path / "release"
    for fifo in (started, release):
        os.mkfifo(fifo)
    # The slow agent says it started, then waits until the test lets it go: both through FIFOs, no polling.
    slow = f"echo go > {started} && read line < {release} && {GOOD_AGENT}"
    spec = calc_project.calc_spec(slow=slow, quick=BAD_AGENT)
    spec["sandbox"] = "none"  # the agent reaches the FIFOs outside its worktree
    spec_file = calc_project.variants(spec)
    with (tmp_path / "run.out").open("wb") as out:
        run = subprocess.Popen(
            [sys.executable, "-m", "pytest", "--explore", "calc", "--variants", spec_file, "-n", "2"],
            cwd=calc_project.path,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        assert started.read_text() == "go\n"  # blocks until the slow agent runs
        report = calc_project.experiment_dir() / "results" / "report.html"
        assert Page(report.read_text()).outside == []  # written when the run started, and self-contained
        page = browser.open(report.as_uri())
        state = live_state(page)
        for _ in range(10):  # the controller notices the trial within a poll; the page reloads every 2 s
            if ["slow", "agent"] in state["running"]:
                break
            page.wait_for_load()
            state = live_state(page)
        assert (state["refresh"], state["timer"]) == ("2", True)
        assert ["slow", "agent"] in state["running"]
        assert state["ranked"].get("slow") == "agent"
        page.screenshot(tmp_path / "running.png")
        page.wait_for_load()  # it reloads itself while the experiment runs
        assert ["slow", "agent"] in live_state(page)["running"]
    finally:
        with release.open("w") as gate:  # lets the agent go (blocks until it listens)
            gate.write("go\n")
        returncode = run.wait(timeout=120)
    assert returncode == 0, (tmp_path / "run.out").read_text()

    for _ in range(10):  # the page was reloading: one of the next loads is the final report
        state = live_state(page)
        if state["refresh"] is None:
            break
        page.wait_for_load()
    assert state == {"refresh": None, "timer": False, "running": [], "ranked": {"slow": "done", "quick": "done"}}
    assert list(state["ranked"]) == ["slow", "quick"]  # ranked: slow passes every test
    assert 'id="live"' not in report.read_text()
    page.screenshot(tmp_path / "final.png")
    assert browser.errors() == []


def test_compiled_templates_are_kept_like_python_bytecode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    import jinja2

    from pytest_parallel_explore import templating

    def render() -> str:
        templating._environment.cache_clear()
        context = dict(task="Add.", description="", variant="v", worktree="/w", score_command="pytest")
        return templating.render("prompt.md.j2", **context)

    request.addfinalizer(templating._environment.cache_clear)  # not an environment kept from a tmp_path
    kept = tmp_path / "__pycache__"
    monkeypatch.setattr(templating, "_COMPILED", kept)
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    expected = render()
    assert not kept.exists()  # PYTHONDONTWRITEBYTECODE: nothing written

    monkeypatch.setattr(sys, "dont_write_bytecode", False)
    assert render() == expected
    assert len(list(kept.glob("__jinja2_*.cache"))) == 1

    def no_compiling(*args: object, **kwargs: object) -> None:
        raise AssertionError("compiled again")

    with monkeypatch.context() as patched:
        patched.setattr(jinja2.Environment, "compile", no_compiling)
        assert render() == expected  # from the kept code

    (tmp_path / "file").touch()
    monkeypatch.setattr(templating, "_COMPILED", tmp_path / "file" / "__pycache__")  # cannot be made
    assert render() == expected
