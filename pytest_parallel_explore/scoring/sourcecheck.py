"""The check of one Python file's source, parsed and never run: what in it could forge the score.

Each use of a name :data:`NAMES` lists (through any import alias), each patch
of what :data:`PATCHED` lists, and each name computed at run time to reach a
:data:`WATCHED` module is a finding; in a test file or a conftest, using
pytest's or unittest's internals is allowed.  Which files are checked, and
how they are read, is :mod:`.suspicious`'s job.
"""

from __future__ import annotations

import ast
import dataclasses
import posixpath
from collections.abc import Callable

from .protect import is_test_file


@dataclasses.dataclass(frozen=True)
class Rule:
    """What using a name does to the test run; ``outside_tests``: only a finding in code that is not a test."""

    reason: str
    outside_tests: bool = False
    cli_ok: bool = False  # not a finding under ``if __name__ == "__main__":`` (a command line's own code)


_INTERNALS = Rule("is pytest's internals", outside_tests=True)
_UNITTEST = Rule("is beyond unittest's public testing API", outside_tests=True)
_PYTEST = Rule("is beyond pytest's public testing API", outside_tests=True)
_SKIPS = Rule("decides a test's outcome from outside the tests", outside_tests=True)
_ENDS = Rule("ends the test run early, before pytest reports")
_TRACES = Rule("traces the test run's code")
_EVERY_OBJECT = Rule("reaches every live object, pytest's own included")
_FRAMES = Rule("inspects the calling frames (the test's, pytest's)")

#: Qualified names (a module, or a name in it, and everything below) -> what using them does; the
#: longest listed prefix of a name decides.  ``None``: the public testing API, fine anywhere.
NAMES: dict[str, Rule | None] = {
    "os._exit": _ENDS,
    "os.abort": _ENDS,
    **{
        f"os.exec{kind}": Rule("replaces the test run's process")
        for kind in ("v", "ve", "vp", "vpe", "l", "le", "lp", "lpe")
    },
    "os.kill": Rule("signals a process, the test run's own included"),
    "os.killpg": Rule("signals a process group, the test run's own included"),
    # signal's constants (``signal.SIGTERM`` for a child process) are fine; handling or sending is not.
    **{
        f"signal.{name}": Rule("handles or sends signals in the test run")
        for name in ("signal", "alarm", "setitimer", "raise_signal", "pthread_kill", "set_wakeup_fd", "siginterrupt")
    },
    "atexit": Rule("runs code when the test run exits, after the tests"),
    "sys.settrace": _TRACES,
    "sys.setprofile": _TRACES,
    "sys.monitoring": _TRACES,
    "threading.settrace": _TRACES,
    "threading.setprofile": _TRACES,
    "threading.settrace_all_threads": _TRACES,
    "threading.setprofile_all_threads": _TRACES,
    "gc.get_objects": _EVERY_OBJECT,
    "gc.get_referrers": _EVERY_OBJECT,
    "gc.get_referents": _EVERY_OBJECT,
    "sys._getframe": _FRAMES,
    "sys._current_frames": _FRAMES,
    "inspect.currentframe": _FRAMES,
    "inspect.stack": _FRAMES,
    "inspect.trace": _FRAMES,
    "inspect.getouterframes": _FRAMES,
    "traceback.walk_stack": _FRAMES,
    "sys.argv": Rule("reads the test run's command line (where its report goes)", cli_ok=True),
    "sys.orig_argv": Rule("reads the test run's command line (where its report goes)", cli_ok=True),
    "_pytest": _INTERNALS,
    "pytest": _PYTEST,
    **{
        f"pytest.{name}": None
        for name in (
            "raises",
            "approx",
            "fixture",
            "mark",
            "param",
            "warns",
            "deprecated_call",
            "register_assert_rewrite",
            "MonkeyPatch",
            "FixtureRequest",
            "TempPathFactory",
            "CaptureFixture",
            "LogCaptureFixture",
            "WarningsRecorder",
            "RaisesGroup",
        )
    },
    **{f"pytest.{name}": _SKIPS for name in ("skip", "xfail", "importorskip", "exit", "fail")},
    "unittest": _UNITTEST,
    **{f"unittest.{name}": None for name in ("TestCase", "IsolatedAsyncioTestCase", "mock")},
    "unittest.SkipTest": _SKIPS,
    "unittest.case.SkipTest": _SKIPS,
}
#: ``import pytest`` and ``import unittest`` are fine; what is used of them is judged by :data:`NAMES`.
_BARE_MODULES = frozenset({"pytest", "unittest"})

#: Exceptions that make pytest or unittest report a test as skipped, xfailed, failed or the run ended.
OUTCOME_EXCEPTIONS = frozenset(
    {
        "unittest.SkipTest",
        "unittest.case.SkipTest",
        "pytest.skip.Exception",
        "pytest.xfail.Exception",
        "pytest.fail.Exception",
        "pytest.exit.Exception",
    }
)

#: What the code under test must not assign into: the import system, the builtins, pytest itself.
PATCHED = ("sys.modules", "sys.meta_path", "sys.path_hooks", "builtins", "_pytest", "pytest", "unittest")
#: Methods that change a container in place (``sys.modules.update``, ``sys.meta_path.insert``).
_MUTATORS = frozenset(
    {"update", "pop", "popitem", "setdefault", "clear", "insert", "append", "extend", "__setitem__", "__delitem__"}
)
#: Modules whose attributes the rules watch: reaching into them by a computed name is a finding.
WATCHED = frozenset({name.split(".")[0] for name in NAMES} | {p.split(".")[0] for p in PATCHED} | {"importlib"})
#: Attributes of frames (whatever the object's name) that walk to or read another frame.
FRAME_ATTRIBUTES = {
    "f_back": "walks up to the calling frame",
    "f_locals": "reads a frame's variables",
    "f_globals": "reads a frame's globals",
}
_IMPORTERS = frozenset({"builtins.__import__", "importlib.import_module", "importlib.__import__"})
_RUNNERS = frozenset({"builtins.exec", "builtins.eval", "builtins.compile"})
_OPENERS = frozenset({"builtins.open", "io.open", "os.open", "codecs.open", "pathlib.Path", "pathlib.PurePath"})
_BUILTINS = frozenset({"open", "getattr", "setattr", "delattr", "__import__", "exec", "eval", "compile"})


def is_test_module(path: str) -> bool:
    """Whether pytest would take ``path`` for a test file or a conftest (its defaults)."""
    return is_test_file(path) or posixpath.basename(path) == "conftest.py"


def check_source(path: str, source: bytes) -> list[str]:
    """The findings in one file's source, each ``path:line: reason``, in line order."""
    try:
        tree = ast.parse(source, filename=path)
        checker = _Checker(tree, test_file=is_test_module(path))
        checker.visit(tree)
    except (SyntaxError, ValueError) as exc:
        line = getattr(exc, "lineno", None) or 1
        return [f"{path}:{line}: does not parse ({getattr(exc, 'msg', exc)}); the scored run cannot import it"]
    except (RecursionError, MemoryError):
        return [f"{path}:1: nested too deeply to check"]
    return [f"{path}:{line}: {reason}" for line, reason in sorted(checker.findings)]


def _aliases(tree: ast.AST) -> dict[str, str]:
    """Each name an import binds -> the qualified name it stands for (``o`` -> ``os``, ``_exit`` -> ``os._exit``)."""
    bound: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                bound[alias.asname or alias.name.split(".")[0]] = (
                    alias.name if alias.asname else alias.name.split(".")[0]
                )
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            for alias in node.names:
                if alias.name != "*":
                    bound[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    return bound


def _literal(node: ast.AST | None) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _is_main_guard(test: ast.expr) -> bool:
    return (
        isinstance(test, ast.Compare)
        and isinstance(test.left, ast.Name)
        and test.left.id == "__name__"
        and len(test.comparators) == 1
        and _literal(test.comparators[0]) == "__main__"
    )


def _under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


class _Checker(ast.NodeVisitor):
    """Walks one module, collecting ``(line, reason)`` findings."""

    def __init__(self, tree: ast.AST, *, test_file: bool) -> None:
        self.aliases = _aliases(tree)
        self.test_file = test_file
        self.in_main = False
        self.findings: set[tuple[int, str]] = set()

    def found(self, node: ast.AST, reason: str) -> None:
        self.findings.add((getattr(node, "lineno", 1), reason))

    def qualname(self, node: ast.AST) -> str | None:
        """The qualified name an expression stands for, when it is a module or a name reached from one."""
        if isinstance(node, ast.Name):
            return self.aliases.get(node.id) or (f"builtins.{node.id}" if node.id in _BUILTINS else None)
        if isinstance(node, ast.Attribute):
            base = self.qualname(node.value)
            return f"{base}.{node.attr}" if base else None
        if isinstance(node, ast.Call) and node.args:
            func, name = self.qualname(node.func), _literal(node.args[0])
            if func == "builtins.__import__" and name:
                return name.split(".")[0]
            if func in _IMPORTERS and name:
                return name
            if func == "builtins.getattr" and len(node.args) > 1:
                base, attr = self.qualname(node.args[0]), _literal(node.args[1])
                return f"{base}.{attr}" if base and attr else None
        return None

    def check_name(self, node: ast.AST, name: str) -> None:
        parts = name.split(".")
        listed = next((prefix for n in range(len(parts), 0, -1) if (prefix := ".".join(parts[:n])) in NAMES), None)
        if listed is None or name in _BARE_MODULES:
            return
        rule = NAMES[listed]
        if rule is None or (rule.outside_tests and self.test_file) or (rule.cli_ok and self.in_main):
            return
        self.found(node, f"{name} {rule.reason}")

    # -- names and imports ---------------------------------------------------

    def visit_Name(self, node: ast.Name) -> None:
        if node.id == "__builtins__":
            self.found(node, "__builtins__ reaches the builtins, to patch them")
        name = self.qualname(node)
        if name:
            self.check_name(node, name)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        name = self.qualname(node)
        if name:
            self.check_name(node, name)
        inner: ast.expr = node
        while isinstance(inner, ast.Attribute):  # the chain's names were judged whole, above
            if inner.attr in FRAME_ATTRIBUTES:
                self.found(inner, f".{inner.attr} {FRAME_ATTRIBUTES[inner.attr]}")
            elif inner.attr == "__builtins__":
                self.found(inner, ".__builtins__ reaches the builtins, to patch them")
            inner = inner.value
        if not isinstance(inner, ast.Name) or inner.id == "__builtins__":
            self.visit(inner)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self.check_name(node, alias.name)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level or not node.module:
            return
        for alias in node.names:
            self.check_name(node, node.module if alias.name == "*" else f"{node.module}.{alias.name}")

    def visit_Constant(self, node: ast.Constant) -> None:
        if isinstance(node.value, str) and "PYTEST_CURRENT_TEST" in node.value:
            self.found(node, "PYTEST_CURRENT_TEST tells the code which test is running")

    def visit_If(self, node: ast.If) -> None:
        if not _is_main_guard(node.test):
            self.generic_visit(node)
            return
        self.visit(node.test)
        outer, self.in_main = self.in_main, True
        for statement in node.body:
            self.visit(statement)
        self.in_main = outer
        for statement in node.orelse:
            self.visit(statement)

    # -- patching --------------------------------------------------------------

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        for base in node.bases:
            name = self.qualname(base)
            if name in OUTCOME_EXCEPTIONS or (name and _under(name, "_pytest.outcomes")):
                self.found(base, f"class {node.name} subclasses {name}: a test that raises it is not reported failed")
            else:
                self.visit(base)
        for child in (*node.decorator_list, *node.keywords, *node.body):
            self.visit(child)

    def check_patch(self, target: ast.expr, verb: str) -> None:
        if isinstance(target, (ast.Tuple, ast.List)):
            for element in target.elts:
                self.check_patch(element, verb)
            return
        if isinstance(target, ast.Starred):
            self.check_patch(target.value, verb)
            return
        if isinstance(target, (ast.Attribute, ast.Subscript)):
            name = self.qualname(target.value if isinstance(target, ast.Subscript) else target)
            self.check_patched(target, name, lambda: f"{verb} {ast.unparse(target)[:80]}")

    def check_patched(self, node: ast.AST, name: str | None, shown: Callable[[], str]) -> None:
        """A finding when ``name`` (assigned, deleted or changed in place) is in what :data:`PATCHED` lists."""
        patched = next((p for p in PATCHED if name and _under(name, p)), None)
        if patched:
            self.found(node, f"{shown()} patches {patched}")

    def visit_Assign(self, node: ast.Assign) -> None:
        for target in node.targets:
            self.check_patch(target, "assigning")
        self.generic_visit(node)

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        self.check_patch(node.target, "assigning")
        self.generic_visit(node)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        if node.value is not None:
            self.check_patch(node.target, "assigning")
        self.generic_visit(node)

    def visit_Delete(self, node: ast.Delete) -> None:
        for target in node.targets:
            self.check_patch(target, "deleting")
        self.generic_visit(node)

    # -- calls -----------------------------------------------------------------

    def visit_Call(self, node: ast.Call) -> None:
        func = self.qualname(node.func)
        first = node.args[0] if node.args else None
        if func in _IMPORTERS and first is not None:
            module = _literal(first)
            if module is None:
                self.found(node, f"{func.removeprefix('builtins.')}() imports a module by a computed name")
            elif module.split(".")[0] in WATCHED:
                self.found(node, f"{func.removeprefix('builtins.')}({module!r}) imports {module} out of sight")
        if func in ("builtins.getattr", "builtins.setattr", "builtins.delattr") and first is not None:
            self._check_attr_call(node, func.removeprefix("builtins."), first)
        if func in _RUNNERS and first is not None and _literal(first) is None:
            self.found(
                node, f"{func.removeprefix('builtins.')}() runs code built at run time, out of this check's sight"
            )
        opened = _literal(first) or ""
        if func in _OPENERS and opened.endswith(".py") and is_test_module(opened):
            self.found(node, f"{func}({_literal(first)!r}) reads a test file")
        if isinstance(node.func, ast.Attribute) and node.func.attr in _MUTATORS:
            container, method = self.qualname(node.func.value), node.func.attr
            self.check_patched(node, container, lambda: f"{container}.{method}()")
        name = self.qualname(node)
        if name and func not in _IMPORTERS:
            self.check_name(node, name)
        self.generic_visit(node)

    def _check_attr_call(self, node: ast.Call, func: str, target: ast.expr) -> None:
        module = self.qualname(target)
        attr = _literal(node.args[1]) if len(node.args) > 1 else None
        if attr in FRAME_ATTRIBUTES:
            self.found(node, f"{func}(..., {attr!r}) {FRAME_ATTRIBUTES[attr]}")
        if module is None or module.split(".")[0] not in WATCHED:
            return
        if attr is None:
            self.found(node, f"{func}({module}, ...) reaches into {module} by a computed name")
        elif func != "getattr":
            self.check_patched(node, f"{module}.{attr}", lambda: f"{func}({module}, {attr!r}, ...)")
