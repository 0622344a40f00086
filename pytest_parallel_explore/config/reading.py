"""Reading ``--variants``: a YAML or JSON file, inline JSON or a number, into the data to validate.

What was read is also what xdist's workers get (:meth:`VariantsInput.to_json_text`):
they do not read the file again, so a file changed while they start changes nothing.
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any


class SpecError(Exception):
    """Problems found in a spec; becomes a UsageError at the plugin's edge."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__("\n".join(f"{source}: {p}" for p in problems))


@dataclasses.dataclass(frozen=True)
class VariantsInput:
    """``--variants`` as read: the data to validate, where it came from, and what its relative paths start from."""

    data: Any
    source: str
    base_dir: Path
    short_form: bool = False  # a number, or the seed's {name: description}: no place for agent settings
    text: str | None = None  # a file's text
    is_json: bool = False  # the file is JSON (else YAML)

    def to_json_text(self) -> str:
        """This very input in JSON, for xdist's workers: the data, or where JSON cannot carry it, the file's text."""
        carried = {"source": self.source, "base_dir": str(self.base_dir), "short_form": self.short_form}
        try:
            text = json.dumps({**carried, "data": self.data})
            if json.loads(text)["data"] == self.data:
                return text
        except (TypeError, ValueError):  # e.g. a YAML date in an agent's config
            pass
        return json.dumps({**carried, "text": self.text, "is_json": self.is_json})

    @classmethod
    def from_json_text(cls, text: str) -> VariantsInput:
        carried = json.loads(text)
        source = carried["source"]
        data = carried["data"] if "data" in carried else _parse(carried["text"], source, carried["is_json"])
        return cls(data, source, Path(carried["base_dir"]), carried["short_form"])


def read_variants(value: str, invocation_dir: Path) -> VariantsInput:
    """Read ``--variants`` (file, inline JSON or an integer), or raise :class:`SpecError`."""
    text = value.strip()
    if re.fullmatch(r"\d+", text):
        count = int(text)
        source = f"--variants {text}"
        if count < 1:
            raise SpecError(source, ["variants: expected at least 1 variant, got 0"])
        return VariantsInput({"variants": {f"run-{i}": "" for i in range(1, count + 1)}}, source, invocation_dir, True)
    if text.startswith("{"):
        source = "--variants (inline JSON)"
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SpecError(source, [f"not valid JSON: {exc}"]) from None
        if isinstance(data, dict) and "variants" not in data:  # the seed's form: name -> description
            return VariantsInput({"variants": data}, source, invocation_dir, True)
        return VariantsInput(data, source, invocation_dir)
    path = (invocation_dir / value).resolve()
    if not path.is_file():
        raise SpecError(value, ["no such file (expected a YAML or JSON variants file, inline JSON or a number)"])
    text, is_json = path.read_text(encoding="utf-8"), path.suffix == ".json"
    return VariantsInput(_parse(text, value, is_json), value, path.parent, text=text, is_json=is_json)


def _parse(text: str, source: str, is_json: bool) -> Any:
    """A variants file's data, from JSON or YAML; ``source`` names the file in errors."""
    import yaml  # imported here: only an experiment run pays for it

    duplicates: list[str] = []

    def no_duplicates(pairs: list[tuple[Any, Any]]) -> dict[Any, Any]:
        seen: dict[Any, Any] = {}
        for key, value in pairs:
            if key in seen:
                duplicates.append(f"duplicate key {key!r}")
            seen[key] = value
        return seen

    class Loader(yaml.SafeLoader):
        """SafeLoader that reports duplicate keys (with their line) instead of keeping the last."""

        def construct_mapping(self, node: Any, deep: bool = False) -> dict[Any, Any]:
            self.flatten_mapping(node)
            seen: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                key = self.construct_object(key_node, deep=deep)
                if key in seen:
                    duplicates.append(f"line {key_node.start_mark.line + 1}: duplicate key {key!r}")
                seen[key] = self.construct_object(value_node, deep=deep)
            return seen

    try:
        data = json.loads(text, object_pairs_hook=no_duplicates) if is_json else yaml.load(text, Loader=Loader)
    except yaml.MarkedYAMLError as exc:
        # str(exc) quotes the text as "<unicode string>" over several lines: say where in the file instead.
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        context = f" ({exc.context} at line {exc.context_mark.line + 1})" if exc.context and exc.context_mark else ""
        raise SpecError(source, [f"{where}not valid YAML: {exc.problem}{context}"]) from None
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise SpecError(source, [f"cannot be parsed: {exc}"]) from None
    if duplicates:
        raise SpecError(source, [f"{d} (each variant and setting may appear once)" for d in duplicates])
    return data
