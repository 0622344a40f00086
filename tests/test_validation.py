"""Bad input is refused before anything is made; without ``--explore`` the plugin is inert.

Every refusal is a ``pytest.UsageError`` (exit 4, no traceback) naming where the
problem is (the file and key path, or the flag) and what was expected.

The validator is called directly: :func:`load_spec` for a variants file, and
:func:`resolve_settings` on a command line that pytest parses in this process
for options, ini keys and the repository.  Each kind of error also runs once end
to end (``test_each_kind_of_error_reaches_the_user_as_one_line``), as a user sees it.
"""

from __future__ import annotations

import json
import math
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

from pytest_parallel_explore.agents.registry import BUILTIN_BACKENDS
from pytest_parallel_explore.config.checks import parse_duration
from pytest_parallel_explore.config.settings import resolve_settings
from pytest_parallel_explore.config.variants import SpecError, load_spec
from pytest_parallel_explore.templating import PROMPT_VARIABLES
from tests.explore_testing import GOOD_AGENT, Project, assert_refused

#: A value that means "remove this key" in ``with_setting``.
REMOVE = object()


def with_setting(spec: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """``spec`` with the dotted key ``path`` set to ``value`` (or removed), creating mappings on the way."""
    *parents, last = path.split(".")
    node = spec
    for key in parents:
        node = node.setdefault(key, {})
    if value is REMOVE:
        del node[last]
    else:
        node[last] = value
    return spec


def write_variants(folder: Path, spec: dict[str, Any] | str, name: str = "variants.yaml") -> str:
    """Write a variants file as ``Project.variants`` (a spec) or ``Project.variants_text`` (text) do; its name."""
    text = textwrap.dedent(spec) if isinstance(spec, str) else yaml.safe_dump(spec, sort_keys=False)
    (folder / name).write_text(text)
    return name


def problems(folder: Path, value: str) -> list[str]:
    """The lines of the refusal of ``load_spec(value)`` in ``folder``: one problem each, as the user sees them."""
    with pytest.raises(SpecError) as refused:
        load_spec(value, invocation_dir=folder, backends=BUILTIN_BACKENDS)
    return str(refused.value).splitlines()


def settings_refusal(project: Project, *args: str, experiment: str = "calc") -> str:
    """The ``UsageError`` message of ``pytest --explore EXPERIMENT *args`` in ``project``, without a subprocess.

    pytest parses the command line (options, ``-o`` ini keys) in this process and
    :func:`resolve_settings` runs as ``pytest_configure`` calls it, with the built-in backends;
    as in :func:`assert_refused`, nothing may be made: no data dir, branch or worktree.
    """
    config = project.pytester.parseconfig("--explore", experiment, *args)
    with pytest.raises(pytest.UsageError) as refused:
        resolve_settings(config, BUILTIN_BACKENDS)
    assert not (project.path / ".data").exists()
    assert project.git("branch", "--list", "explore/*") == ""
    assert len(project.git("worktree", "list").splitlines()) == 1
    return str(refused.value)


DURATION = "expected a duration such as 90, '90s', '20m' or '1h', got"


RUN_EXPECTED = 'expected the agent\'s shell command (e.g. "claude -p {prompt}"), got'

#: One bad setting of the calc spec each: the key path, its value, and the message after ``variants.yaml: ``.
BAD_SETTINGS = [
    # unknown keys, with the nearest valid key suggested
    ("taks", "Add.", "taks: unknown key; did you mean 'task'?"),
    ("variants.good.descripton", "x", "variants.good.descripton: unknown key; did you mean 'description'?"),
    ("score.comand", "make test", "score.comand: unknown key; did you mean 'command'?"),
    ("variants.good.agent.runn", "x", "variants.good.agent.runn: unknown key; did you mean 'run'?"),
    ("agent.modle", "x", "agent.modle: unknown key; did you mean 'model'?"),
    # wrong types
    ("task", ["add", "test"], "task: expected text, got list"),
    ("max_concurrent", "three", "max_concurrent: expected a whole number >= 1, got 'three'"),
    ("max_concurrent", 0, "max_concurrent: expected a whole number >= 1, got 0"),
    ("score.max_concurrent", 0, "score.max_concurrent: expected a whole number >= 1, got 0"),
    ("score.max_concurrent", "all", "score.max_concurrent: expected a whole number >= 1, got 'all'"),
    ("score.max_concurent", 2, "score.max_concurent: unknown key; did you mean 'max_concurrent'?"),
    ("variants", "good bad", "variants: expected a mapping of name -> description or settings, got 'good bad'"),
    ("variants.good.description", 3, "variants.good.description: expected text, got int 3"),
    ("agent", "command", "agent: expected a mapping of agent settings, got 'command'"),
    ("variants.good.agent.run", REMOVE, f"variants.good.agent.run: {RUN_EXPECTED} nothing"),
    ("variants.good.agent.run", " ", f"variants.good.agent.run: {RUN_EXPECTED} ' '"),
    ("score.weights", {"tests_pass_rate": "high"}, "score.weights.tests_pass_rate: expected a number, got 'high'"),
    # the race form of repeat
    (
        "repeat",
        "many",
        "repeat: expected a whole number >= 1, or a race such as {max: 12, stop: decided, alpha: 0.05}, got 'many'",
    ),
    ("repeat", {"max": 0}, "repeat.max: expected a whole number >= 1, got 0"),
    ("repeat", {"stop": "soon"}, "repeat.stop: expected 'decided' or 'max', got 'soon'"),
    ("repeat", {"alpha": 1.5}, "repeat.alpha: expected a number between 0 and 1 (exclusive), got 1.5"),
    ("repeat", {"margin": "small"}, "repeat.margin: expected a score difference in [0, 1), got 'small'"),
    ("repeat", {"maxx": 12}, "repeat.maxx: unknown key; did you mean 'max'?"),
    ("repeat", {"by": "tests_passed"}, "repeat.by: expected 'score' or 'solved' or 'tests', got 'tests_passed'"),
    # "on: tests" is read by YAML as {True: "tests"}: an unknown key, not a silent default
    ("repeat", {True: "tests"}, "repeat.True: unknown key; expected one of alpha, by, margin, max, stop"),
    # bad durations
    ("timeout", "soon", f"timeout: {DURATION} 'soon'"),
    ("timeout", 0, f"timeout: {DURATION} 0"),
    ("timeout", math.inf, f"timeout: {DURATION} inf"),
    ("variants.good.timeout", "20 minutes", f"variants.good.timeout: {DURATION} '20 minutes'"),
    ("score.timeout", "-5m", f"score.timeout: {DURATION} '-5m'"),
    # names, the variant list, the task
    ("variants.baseline", "x", "variants.baseline: the name 'baseline' is reserved by the plugin; choose another"),
    ("variants.Good", "x", "variants.Good: duplicate of variant 'good' (names must differ in more than case)"),
    ("variants", {}, "variants: empty; expected at least one variant (name: description)"),
    ("variants", None, "variants: empty; expected at least one variant (name: description)"),
    ("task", REMOVE, "task: missing; say what every variant must do (or pass --explore-task)"),
    # the agent (an unknown backend is refused at run start: test_each_kind_of_error_reaches_the_user_as_one_line)
    (
        "agent",
        REMOVE,
        "variants.good.agent.backend: no agent chosen; set agent.backend in the variants file ('command' with a 'run' "
        "command, or 'anthropic'), the ini key explore_agent, or ANTHROPIC_API_KEY for the built-in agent",
    ),
]


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    BAD_SETTINGS,
    ids=[f"{key}={'<removed>' if value is REMOVE else value!r}" for key, value, _ in BAD_SETTINGS],
)
def test_a_bad_setting_is_refused(tmp_path: Path, key: str, value: Any, expected: str) -> None:
    spec = with_setting(Project.calc_spec(good=GOOD_AGENT), key, value)
    assert f"variants.yaml: {expected}" in problems(tmp_path, write_variants(tmp_path, spec))


def test_a_base_that_is_not_a_commit_is_refused(calc_project: Project) -> None:
    spec = with_setting(calc_project.calc_spec(good=GOOD_AGENT), "base", "nope")
    message = settings_refusal(calc_project, "--variants", calc_project.variants(spec))
    assert message == (
        f"variants.yaml: base: 'nope' is not a commit in {calc_project.path.resolve()}; "
        "expected a branch, tag or sha (see `git log`)"
    )


@pytest.mark.parametrize(
    ("template", "problem"),
    [
        ("{{ task }\n", "line 1: unexpected '}'"),
        ("{{ tsk }} in {{ worktree }}\n", "unknown variable 'tsk'; a prompt template can use task, variant, trial"),
    ],
    ids=["syntax", "unknown-variable"],
)
def test_a_broken_prompt_template_is_refused_before_any_trial(tmp_path: Path, template: str, problem: str) -> None:
    file = tmp_path / "prompt.j2"
    file.write_text(template)
    spec = {**Project.calc_spec(good=GOOD_AGENT), "prompt_template": "prompt.j2"}
    # The list of variables goes on after the three named here.
    refusal = problems(tmp_path, write_variants(tmp_path, spec))
    assert [line for line in refusal if line.startswith(f"variants.yaml: prompt_template: {file}: {problem}")]


def test_a_prompt_template_may_use_every_variable_and_its_own(calc_project: Project) -> None:
    every = " ".join(f"{{{{ {name} }}}}" for name in PROMPT_VARIABLES)
    own = "{% set mine = 1 %}{{ mine }} {{ range(2) | list }}"  # its own variables, and jinja's globals
    (calc_project.path / "prompt.j2").write_text(f"{every} {own}\n")
    spec = {**calc_project.calc_spec(good=GOOD_AGENT), "prompt_template": "prompt.j2"}
    result = calc_project.explore("--variants", calc_project.variants(spec))
    assert result.ret == 0, result.stdout.str() + result.stderr.str()


def test_no_agent_for_any_variant_is_said_once(calc_project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    message = settings_refusal(calc_project, "--variants", "3", "--explore-task", "Make it work.")
    assert [line for line in message.splitlines() if "no agent chosen" in line] == [
        "--variants 3: agent.backend: no agent chosen; set agent.backend in the variants file ('command' with "
        "a 'run' command, or 'anthropic'), the ini key explore_agent, or ANTHROPIC_API_KEY for the built-in agent"
    ]


def test_a_variants_file_outside_the_repository_given_with_a_space_is_warned_about(
    calc_project: Project, tmp_path_factory: pytest.TempPathFactory
) -> None:
    # pytest takes "--variants FILE" for a test path before plugins load: FILE's folder pulls its rootdir out.
    outside = tmp_path_factory.mktemp("elsewhere") / "variants.yaml"
    outside.write_text(json.dumps(calc_project.calc_spec(good=GOOD_AGENT)))

    spaced = calc_project.explore("--variants", str(outside))
    assert spaced.ret == 0, spaced.stdout.str()
    spaced.stdout.fnmatch_lines([f"explore calc: warning: --variants {outside}: pytest took the file for a test path*"])
    assert f"write --variants={outside}" in spaced.stdout.str()

    joined = calc_project.explore(f"--variants={outside}")
    assert joined.ret == 0, joined.stdout.str()
    assert "pytest took the file for a test path" not in joined.stdout.str()


@pytest.mark.parametrize("name", ["../x", "a/b", "-x", ".x", "x.lock", "a..b", "x.", "a b", "a@{1}"])
def test_an_unsafe_variant_name_is_refused(tmp_path: Path, name: str) -> None:
    spec = Project.calc_spec(**{name: GOOD_AGENT})
    assert problems(tmp_path, write_variants(tmp_path, spec)) == [
        f"variants.yaml: variants.{name}: unsafe name {name!r}; names are used in paths and git refs: "
        "letters, digits, '.', '_' and '-', not starting with '.' or '-', no '..'"
    ]


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    spec = Project.calc_spec(good=GOOD_AGENT, **{"a/b": GOOD_AGENT})
    for key, value in [
        ("taks", "x"),
        ("timeout", "soon"),
        ("score.weights.x", "high"),
        ("variants.good.agent.runn", 1),
    ]:
        with_setting(spec, key, value)
    del spec["task"]

    assert problems(tmp_path, write_variants(tmp_path, spec)) == [
        "variants.yaml: taks: unknown key; did you mean 'task'?",
        "variants.yaml: task: missing; say what every variant must do (or pass --explore-task)",
        f"variants.yaml: timeout: {DURATION} 'soon'",
        "variants.yaml: score.weights.x: expected a number, got 'high'",
        "variants.yaml: variants.good.agent.runn: unknown key; did you mean 'run'?",
        "variants.yaml: variants.a/b: unsafe name 'a/b'; names are used in paths and git refs: "
        "letters, digits, '.', '_' and '-', not starting with '.' or '-', no '..'",
    ]


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        (
            "variants.yaml",
            """\
            task: Add.
            agent: {backend: command, run: "true"}
            variants:
              fast: Quick.
              slow: Careful.
              fast: Again.
            """,
            "variants.yaml: line 6: duplicate key 'fast' (each variant and setting may appear once)",
        ),
        (
            "variants.json",
            '{"task": "Add.", "agent": {"backend": "command", "run": "true"}, "variants": {"a": "", "a": ""}}',
            "variants.json: duplicate key 'a' (each variant and setting may appear once)",
        ),
        (
            "variants.yaml",
            """\
            task: Add.
            variants:
              fast: [Quick.
            """,
            "variants.yaml: line 4, column 1: not valid YAML: expected ',' or ']', but got '<stream end>' "
            "(while parsing a flow sequence at line 3)",
        ),
        (
            "variants.json",
            '{"task": "Add.", "variants": {"a": ""},}',
            "variants.json: cannot be parsed: Expecting property name enclosed in double quotes: line 1 column 40 "
            "(char 39)",
        ),
        ("variants.yaml", "- fast\n- slow\n", "variants.yaml: expected a mapping with 'task' and 'variants', got list"),
        ("variants.yaml", "", "variants.yaml: expected a mapping with 'task' and 'variants', got nothing"),
    ],
    ids=["duplicate-yaml-key", "duplicate-json-key", "yaml-syntax", "json-syntax", "a-list", "empty-file"],
)
def test_an_unreadable_file_is_refused(tmp_path: Path, name: str, text: str, expected: str) -> None:
    assert problems(tmp_path, write_variants(tmp_path, text, name)) == [expected]


@pytest.mark.parametrize(
    ("experiment", "args", "expected"),
    [
        (
            "calc",
            ["--variants", "nope.yaml"],
            "nope.yaml: no such file (expected a YAML or JSON variants file, inline JSON or a number)",
        ),
        (
            "../x",
            ["--variants", "variants.yaml"],
            "--explore: unsafe experiment name '../x'; it is used in paths and git refs: letters, digits, '.', '_' "
            "and '-'",
        ),
        ("calc", [], "--explore calc: which variants? add --variants FILE (YAML or JSON), inline JSON, or a number"),
        ("calc", ["--variants", "0"], "--variants 0: variants: expected at least 1 variant, got 0"),
        (
            "calc",
            ["--variants", '{"a": "x"'],
            "--variants (inline JSON): not valid JSON: Expecting ',' delimiter: line 1 column 10 (char 9)",
        ),
        (
            "calc",
            ["--variants", '{"a": "Pure functions"}', "--explore-task", "Add.", "-o", "explore_agent=command"],
            "--variants (inline JSON): agent.run: the command agent (ini explore_agent = command) needs the agent's "
            "shell command, which a number or {name: description} cannot give; write a variants file, or inline JSON "
            'with "task", "agent": {"backend": "command", "run": "..."} and "variants"',
        ),
    ],
    ids=["missing-file", "unsafe-experiment", "no-variants", "zero", "bad-json", "inline-no-run"],
)  # a bad --explore-timeout and a bad ini value: test_each_kind_of_error_reaches_the_user_as_one_line
def test_a_bad_command_line_is_refused(calc_project: Project, experiment: str, args: list[str], expected: str) -> None:
    calc_project.variants(calc_project.calc_spec(good=GOOD_AGENT))
    assert settings_refusal(calc_project, *args, experiment=experiment) == expected


def test_a_command_agent_needs_its_run_once_for_a_number_of_variants(calc_project: Project) -> None:
    message = settings_refusal(calc_project, "--variants", "3", "--explore-task", "Add.", "-o", "explore_agent=command")
    assert message.startswith("--variants 3: agent.run: the command agent")
    assert message.count("agent.run") == 1


#: One error of each kind, as the user meets it: the variants file (a spec or its text), more arguments, the message.
ONE_OF_EACH_KIND = [
    pytest.param(
        with_setting(Project.calc_spec(good=GOOD_AGENT), "taks", "Add."),
        [],
        "variants.yaml: taks: unknown key; did you mean 'task'?",
        id="variants-file",
    ),
    pytest.param(
        "task: Add.\nvariants:\n  fast: [Quick.\n",
        [],
        "variants.yaml: line 4, column 1: not valid YAML: expected ',' or ']', but got '<stream end>' "
        "(while parsing a flow sequence at line 3)",
        id="unreadable-file",
    ),
    pytest.param(
        Project.calc_spec(good=GOOD_AGENT),
        ["--explore-timeout", "soon"],
        f"--explore-timeout: {DURATION} 'soon'",
        id="command-line-option",
    ),
    pytest.param(
        Project.calc_spec(good=GOOD_AGENT),
        ["-o", "explore_max_concurrent=many"],
        "ini explore_max_concurrent: expected a whole number >= 1, got 'many'",
        id="ini-value",
    ),
    pytest.param(
        with_setting(Project.calc_spec(good=GOOD_AGENT), "variants.good.agent.backend", "nope"),
        [],
        "variants.yaml: variants.good.agent.backend: unknown backend 'nope'; expected 'command', 'anthropic', "
        "'claude-code', 'codex', 'aider' or one registered by a plugin",
        id="unknown-agent",
    ),
]


@pytest.mark.parametrize(("variants", "args", "message"), ONE_OF_EACH_KIND)
def test_each_kind_of_error_reaches_the_user_as_one_line(
    calc_project: Project, variants: dict[str, Any] | str, args: list[str], message: str
) -> None:
    write_variants(calc_project.path, variants)
    result = calc_project.explore("--variants", "variants.yaml", *args)

    assert_refused(calc_project, result)
    assert [line for line in result.stderr.lines if line.strip()] == [f"ERROR: {message}"]


def test_outside_a_git_repository(pytester: pytest.Pytester) -> None:
    (pytester.path / "variants.yaml").write_text(yaml.safe_dump(Project.calc_spec(good=GOOD_AGENT)))
    result = pytester.runpytest_subprocess("--explore", "calc", "--variants", "variants.yaml")

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [f"ERROR: --explore: {pytester.path} is not inside a git repository; run `git init` and commit the project*"]
    )
    assert "Traceback" not in result.stdout.str() + result.stderr.str()
    assert not (pytester.path / ".data").exists()


def test_a_repository_without_commits(project: Project) -> None:
    project.write({"calc.py": "def add(a, b):\n    raise NotImplementedError\n"})
    message = settings_refusal(project, "--variants", project.variants(project.calc_spec(good=GOOD_AGENT)))

    assert (
        f"the repository at {project.path} has no commits yet; commit the project first (variants branch from a commit)"
        in message
    )
    assert not (project.path / ".data").exists()


def test_a_dirty_tree_warns_that_the_variants_start_from_the_last_commit(calc_project: Project) -> None:
    base = calc_project.git("rev-parse", "HEAD").strip()
    uncommitted = "def add(a, b):\n    return b + a  # not committed\n"
    (calc_project.path / "calc.py").write_text(uncommitted)
    result = calc_project.explore("--variants", calc_project.variants(calc_project.calc_spec(good=GOOD_AGENT)))

    assert result.ret == 0, result.stdout.str()
    result.stdout.fnmatch_lines(
        [
            f"*warning: {calc_project.path} has uncommitted changes; the variants start from the last commit "
            f"(HEAD = {base[:12]}), without them*",
            f"*baseline scored: 0/3 tests pass at {base[:12]}*",
        ]
    )
    result.assert_outcomes(passed=1)
    # The agent's change is against the commit, not against the uncommitted file.
    patch = (calc_project.experiment_dir() / "results" / "good.patch").read_text()
    assert "-    raise NotImplementedError" in patch
    assert calc_project.git("merge-base", base, "explore/calc/good").strip() == base
    assert (calc_project.path / "calc.py").read_text() == uncommitted


def test_without_explore_the_plugin_is_inert(project: Project) -> None:
    project.write(
        {
            "tests/test_plain.py": (
                "import sys\n\n"
                "def test_loaded_but_idle():\n"
                "    assert 'pytest_parallel_explore.plugin' in sys.modules\n"
                "    heavy = {'git', 'yaml', 'jinja2', 'anthropic', 'pytest_parallel_explore.controller.session'}\n"
                "    assert not heavy & set(sys.modules)\n\n"
                "def test_other():\n"
                "    pass\n"
            ),
            "variants.yaml": yaml.safe_dump(Project.calc_spec(good=GOOD_AGENT)),
        }
    )
    project.commit()
    exclude = (project.path / ".git" / "info" / "exclude").read_text()
    before = files_in(project.path)
    result = project.pytester.runpytest_subprocess("-p", "no:cacheprovider", "-v")

    assert result.ret == 0, result.stdout.str()
    result.stdout.fnmatch_lines(["*plugins:*parallel-explore*", "*test_loaded_but_idle PASSED*", "*test_other PASSED*"])
    result.assert_outcomes(passed=2)
    assert files_in(project.path) == before
    assert (project.path / ".git" / "info" / "exclude").read_text() == exclude
    assert project.git("branch", "--list", "explore/*") == ""


def files_in(root: Path) -> set[str]:
    """Every file under ``root`` except git's own, Python's bytecode and pytester's output and temp dirs."""
    ignored = {".git", "__pycache__", "stdout", "stderr"}
    files = {p.relative_to(root) for p in root.rglob("*")}
    return {str(f) for f in files if not ignored & set(f.parts) and not f.parts[0].startswith("runpytest-")}


@pytest.mark.parametrize(
    ("args", "api_key", "ids"),
    [
        (["--variants", "variants.json"], False, ["good", "bad"]),
        (["--variants", json.dumps(Project.calc_spec(good=GOOD_AGENT, bad="true"))], False, ["good", "bad"]),
        (
            ["--variants", '{"functional": "Pure functions", "oop": "Object-oriented"}', "--explore-task", "Add."],
            True,
            ["functional", "oop"],
        ),
        (
            [
                "--variants",
                json.dumps({"a": {"description": "Pure", "agent": {"run": GOOD_AGENT}}}),
                "--explore-task",
                "Add.",
                "-o",
                "explore_agent=command",
            ],
            False,
            ["a"],
        ),
        (["--variants", "3", "--explore-task", "Add."], True, ["run-1", "run-2", "run-3"]),
    ],
    ids=["json-file", "inline-spec", "inline-names", "inline-with-run", "number"],
)
def test_every_form_of_variants_is_accepted(
    calc_project: Project, monkeypatch: pytest.MonkeyPatch, args: list[str], api_key: bool, ids: list[str]
) -> None:
    if api_key:
        # The built-in agent is chosen by the key; collecting never calls the API.
        monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test-never-used")
    calc_project.write({"variants.json": json.dumps(Project.calc_spec(good=GOOD_AGENT, bad="true"))})
    result = calc_project.explore(*args, "--collect-only", "-q")

    assert result.ret == 0, result.stdout.str() + result.stderr.str()
    assert result.stdout.lines[: len(ids)] == [f"explore::calc[{name}]" for name in ids]
    assert result.stdout.lines[len(ids)] == ""
    assert not (calc_project.experiment_dir() / "worktrees").exists()


@pytest.mark.parametrize(
    ("value", "seconds"),
    [(90, 90.0), (1.5, 1.5), ("90", 90.0), ("90s", 90.0), ("20m", 1200.0), ("1h", 3600.0), ("1h30m", 5400.0),
     (" 2M ", 120.0), ("1h 30m 15s", 5415.0), ("0.5h", 1800.0)],
)  # fmt: skip
def test_parse_duration_reads_seconds_minutes_and_hours(value: Any, seconds: float) -> None:
    assert parse_duration(value) == seconds


@pytest.mark.parametrize(
    "value",
    [0, -1, "0s", "-5m", True, None, "", "soon", "5x", "m", "1h30", "1.5.2m", "20 minutes", math.inf, math.nan, [1]],
)
def test_parse_duration_refuses_anything_else(value: Any) -> None:
    with pytest.raises(ValueError):
        parse_duration(value)


EXPLORE_DIR_EXPECTED = "expected a folder inside the repository, not tracked by git (e.g. .data/parallel_explorer)"


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--explore-dir", "../explore-outside"], "--explore-dir '../explore-outside': {parent}/explore-outside is "
         "outside the repository {root}"),
        (["--explore-dir", "."], "--explore-dir '.': is the repository's root {root} itself"),
        (["--explore-dir", ".git/explore"], "--explore-dir '.git/explore': {root}/.git/explore is inside git's own"),
        (["-o", "explore_dir=tests"], "ini explore_dir 'tests': {root}/tests would mix the plugin's files with files "
         "git tracks (tests/test_calc.py)"),
        (["--explore-dir", "calc.py/data"], "--explore-dir 'calc.py/data': {root}/calc.py/data would mix the plugin's "
         "files with files git tracks (calc.py)"),
    ],
    ids=["outside", "root", "dot-git", "tracked-ini", "inside-a-tracked-file"],
)  # fmt: skip
def test_an_explore_dir_outside_the_repository_or_over_tracked_files_is_refused(
    calc_project: Project, args: list[str], expected: str
) -> None:
    calc_project.variants(calc_project.calc_spec(good=GOOD_AGENT))
    root = calc_project.path.resolve()
    tracked_before = calc_project.git("ls-files")
    message = settings_refusal(calc_project, "--variants", "variants.yaml", *args)

    assert message.startswith(expected.format(root=root, parent=root.parent))
    assert message.endswith(f"; {EXPLORE_DIR_EXPECTED}")
    assert not (root.parent / "explore-outside").exists()
    assert not (root / ".git" / "explore").exists()
    assert calc_project.git("ls-files") == tracked_before
    assert calc_project.git("status", "--porcelain") == ""


def test_a_command_with_a_bad_explore_dir_is_refused(calc_project: Project) -> None:
    result = calc_project.pytester.runpytest_subprocess("--explore-list", "--explore-dir", "tests")
    assert_refused(calc_project, result, "--explore-dir 'tests': ", EXPLORE_DIR_EXPECTED)
