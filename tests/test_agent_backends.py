"""Agent backends from plugins: registered with ``pytest_explore_agent_backends``, checked like the built-in ones.

The project's ``conftest.py`` registers a ``paint`` backend; its settings are
validated while the variants are loaded, before anything is created, and its
agents are built by the plugin from the registry.
"""

from __future__ import annotations

import textwrap

import pytest

from tests.explore_testing import GOOD_AGENT, Project, assert_refused

GOOD_CODE = "def add(a, b):\n    return a + b\n"

PAINT_BACKEND = textwrap.dedent(
    '''
    from pytest_parallel_explore.agents import AgentBackend, AgentOutcome, AgentStats


    class PaintAgent(AgentBackend):
        """Writes ``code`` into calc.py; ``color`` must be red or green."""

        setting_keys = frozenset({"color", "code"})

        def __init__(self, color, code):
            self.color, self.code = color, code

        @classmethod
        def validate_settings(cls, settings, where):
            problems = super().validate_settings(settings, where)
            if settings.get("color", "red") not in ("red", "green"):
                problems.append(f"{where}.color: expected 'red' or 'green', got {settings['color']!r}")
            return problems

        @classmethod
        def from_settings(cls, settings):
            return cls(settings.get("color", "red"), settings["code"])

        def run(self, task):
            (task.worktree / "calc.py").write_text(self.code)
            return AgentOutcome(AgentStats(backend="paint", model=self.color))


    def pytest_explore_agent_backends(config):
        return {"paint": PaintAgent}
    '''
)


@pytest.fixture
def paint_project(calc_project: Project) -> Project:
    """The calc project with the ``paint`` backend in a ``conftest.py`` that git does not see."""
    calc_project.write({"conftest.py": PAINT_BACKEND})
    with (calc_project.path / ".git" / "info" / "exclude").open("a") as exclude:
        exclude.write("conftest.py\n")
    return calc_project


def paint(**settings: str) -> dict[str, object]:
    return {"description": "painted", "agent": {"backend": "paint", **settings}}


def test_a_misspelt_setting_of_a_plugin_backend_is_refused_before_anything_is_made(paint_project: Project) -> None:
    spec = paint_project.calc_spec(x=paint(colour="green", code=GOOD_CODE))
    result = paint_project.explore("--variants", paint_project.variants(spec))

    assert_refused(paint_project, result, "variants.yaml: variants.x.agent.colour: unknown key; did you mean 'color'?")
    assert result.stderr.str().count("colour") == 1


def test_a_plugin_backends_problems_are_reported_with_the_others_each_once(paint_project: Project) -> None:
    spec = paint_project.calc_spec(
        x=paint(colour="green", code=GOOD_CODE), y=paint(color="blue", code=GOOD_CODE), z=GOOD_AGENT
    )
    spec["agent"]["colr"] = "red"  # a default: known to no backend
    spec["variants"]["z"]["agent"]["runn"] = "true"
    result = paint_project.explore("--variants", paint_project.variants(spec))

    assert_refused(paint_project, result)
    problems = [line.removeprefix("ERROR: ") for line in result.stderr.lines if line.strip()]
    assert problems == [
        "variants.yaml: variants.x.agent.colour: unknown key; did you mean 'color'?",
        "variants.yaml: variants.y.agent.color: expected 'red' or 'green', got 'blue'",
        "variants.yaml: variants.z.agent.runn: unknown key; did you mean 'run'?",
        "variants.yaml: agent.colr: unknown key; did you mean 'color'?",
    ]


def test_an_unknown_backend_is_refused_naming_the_registered_ones(paint_project: Project) -> None:
    spec = paint_project.calc_spec(x={"description": "", "agent": {"backend": "nope"}})
    result = paint_project.explore("--variants", paint_project.variants(spec))

    assert_refused(
        paint_project,
        result,
        "variants.yaml: variants.x.agent.backend: unknown backend 'nope'; "
        "expected 'command', 'anthropic', 'claude-code', 'codex', 'aider', 'paint' or one registered by a plugin",
    )


def test_one_backend_name_for_two_classes_is_refused(paint_project: Project) -> None:
    paint_project.write(
        {
            "other_paint.py": (
                "from pytest_parallel_explore.agents import AgentBackend\n\n"
                "class PaintAgent(AgentBackend):\n    pass\n\n"
                "def pytest_explore_agent_backends(config):\n    return {'paint': PaintAgent}\n"
            )
        }
    )
    spec = paint_project.calc_spec(x=paint(code=GOOD_CODE))
    result = paint_project.explore("--variants", paint_project.variants(spec), "-p", "other_paint")

    assert_refused(paint_project, result, "agent backend 'paint' is registered twice, by different classes")


def test_a_plugin_backend_is_built_from_its_settings_and_runs_in_a_worker(paint_project: Project) -> None:
    spec = paint_project.calc_spec(good=paint(color="green", code=GOOD_CODE), bad=paint(code="def add(a, b):\n"))
    result = paint_project.explore("--variants", paint_project.variants(spec), "-n", "1")

    assert result.ret == 0, result.stdout.str() + result.stderr.str()
    trials = paint_project.trials()
    assert [trials["good"]["score"], trials["bad"]["score"]] == [1.0, 0.0]  # bad's calc.py does not even import
    assert trials["good"]["agent"]["backend"] == "paint"
    # The settings reached the agent: good's color as given, bad's the default its from_settings chose.
    assert [trials["good"]["agent"]["model"], trials["bad"]["agent"]["model"]] == ["green", "red"]
    assert "return a + b" in paint_project.git("show", "explore/calc/good:calc.py")


@pytest.mark.parametrize(("backend", "cli"), [("claude-code", "claude"), ("codex", "codex"), ("aider", "aider")])
def test_every_cli_backend_checks_its_executable_and_prices(backend: str, cli: str) -> None:
    from pytest_parallel_explore.agents.registry import BUILTIN_BACKENDS

    validate = BUILTIN_BACKENDS[backend].validate_settings
    assert validate({"backend": backend}, "v.agent") == []
    problems = validate({"backend": backend, "executable": " ", "prices": []}, "v.agent")
    assert f"v.agent.executable: expected the {cli} command's name or path, got ' '" in problems
    assert any(p.startswith("v.agent.prices: expected a mapping of model name") for p in problems)
