"""Stages and their tasks as data (layers/stages.toml), validated on load."""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from ..config import LAYERS_DIR, read_toml
from ..errors import ConfigurationError


@dataclass(frozen=True)
class Material:
    code: str
    name_zh: str
    name_en: str
    is_minor: bool


@dataclass(frozen=True)
class TaskSpec:
    department: str
    legal_limit_days: int
    committed_limit_days: int
    is_deemed_on_timeout: bool
    needs_leader_signoff: bool
    signoff_limit_days: int = 0  # of the committed limit, the days kept for the leader's sign-off (per-step limit)

    @property
    def review_limit_days(self) -> int:
        """The reviewer's own step: the committed limit less the sign-off step."""
        return self.committed_limit_days - (self.signoff_limit_days if self.needs_leader_signoff else 0)


@dataclass(frozen=True)
class StageSpec:
    number: int
    code: str
    name_zh: str
    name_en: str
    permit_zh: str
    permit_en: str
    materials: tuple[Material, ...]
    tasks: tuple[TaskSpec, ...]
    legal_basis_zh: str = ""
    legal_basis_en: str = ""
    fee_zh: str = ""
    fee_en: str = ""
    intake_limit_days: int = 1  # the window's committed acceptance step (legal: acceptance_limit_days)

    @property
    def departments(self) -> tuple[str, ...]:
        return tuple(t.department for t in self.tasks)

    def task(self, department: str) -> TaskSpec:
        for t in self.tasks:
            if t.department == department:
                return t
        raise KeyError(department)


@dataclass(frozen=True)
class ProcessSettings:
    acceptance_limit_days: int
    warning_days: int
    extension_days: int
    joint_legal_limit_days: int
    joint_extension_days: int
    green_channel_factor: float
    stages: dict[int, StageSpec]
    whole_process_limit_days: int = 120  # national reform target for the whole process

    def committed_days(self, task: TaskSpec, green_channel: bool) -> int:
        """The committed limit of a task, shortened on the green channel (rounded up, at least 1)."""
        if not green_channel:
            return task.committed_limit_days
        return max(1, math.ceil(task.committed_limit_days * self.green_channel_factor))


def _int(value, label: str, minimum: int = 0) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ConfigurationError(f"must be a whole number >= {minimum}, got {value!r}", where=label)
    return value


def load_process(path: Path | None = None, departments: set[str] | None = None) -> ProcessSettings:
    path = Path(path or LAYERS_DIR / "stages.toml")
    data = read_toml(path, "stage configuration")
    d = data.get("defaults", {})
    stages: dict[int, StageSpec] = {}
    for i, st in enumerate(data.get("stage", [])):
        label = f"{path}: stage #{i + 1}"
        try:
            number = _int(st["number"], f"{label}.number", 1)
            tasks = []
            for j, t in enumerate(st["tasks"]):
                tl = f"{label}.tasks[{j}]"
                if departments is not None and t["department"] not in departments:
                    raise ConfigurationError(f"unknown department {t['department']!r}", where=tl)
                legal = _int(t["legal_limit_days"], f"{tl}.legal_limit_days", 1)
                committed = _int(t["committed_limit_days"], f"{tl}.committed_limit_days", 1)
                if committed > legal:
                    raise ConfigurationError(
                        f"committed limit {committed} exceeds the legal limit {legal}", where=tl)
                signoff = _int(t.get("signoff_limit_days", 0), f"{tl}.signoff_limit_days")
                if signoff >= committed:
                    raise ConfigurationError(
                        f"sign-off step {signoff} leaves no days of the committed limit {committed}", where=tl)
                tasks.append(TaskSpec(t["department"], legal, committed,
                                      bool(t.get("deemed_on_timeout", False)), bool(t.get("leader_signoff", False)),
                                      signoff))
            if len({t.department for t in tasks}) != len(tasks) or not tasks:
                raise ConfigurationError("each stage needs its departments once each", where=label)
            materials = tuple(Material(m["code"], m["name_zh"], m["name_en"], bool(m.get("minor", False)))
                              for m in st.get("materials", []))
            if len({m.code for m in materials}) != len(materials):
                raise ConfigurationError("a material code is listed twice", where=f"{label}.materials")
            spec = StageSpec(number, st["code"], st["name_zh"], st["name_en"], st["permit_zh"], st["permit_en"],
                             materials, tuple(tasks), st.get("legal_basis_zh", ""), st.get("legal_basis_en", ""),
                             st.get("fee_zh", ""), st.get("fee_en", ""),
                             _int(st.get("intake_limit_days", 1), f"{label}.intake_limit_days", 1))
        except KeyError as exc:
            raise ConfigurationError(f"missing key {exc.args[0]!r}", where=label) from None
        if number in stages:
            raise ConfigurationError(f"stage {number} declared twice", where=label)
        stages[number] = spec
    if not stages or sorted(stages) != list(range(1, len(stages) + 1)):
        raise ConfigurationError("stages must be numbered 1..n without gaps", where=str(path))
    try:
        return ProcessSettings(
            acceptance_limit_days=_int(d.get("acceptance_limit_days", 5), "defaults.acceptance_limit_days", 1),
            warning_days=_int(d.get("warning_days", 2), "defaults.warning_days"),
            extension_days=_int(d.get("extension_days", 10), "defaults.extension_days"),
            joint_legal_limit_days=_int(d.get("joint_legal_limit_days", 45), "defaults.joint_legal_limit_days", 1),
            joint_extension_days=_int(d.get("joint_extension_days", 15), "defaults.joint_extension_days"),
            green_channel_factor=float(d.get("green_channel_factor", 1.0)),
            stages=stages,
            whole_process_limit_days=_int(d.get("whole_process_limit_days", 120), "defaults.whole_process_limit_days", 1),
        )
    except ConfigurationError as exc:
        raise ConfigurationError(exc.message, where=f"{path}: {exc.where}") from None


@lru_cache(maxsize=1)
def default_process() -> ProcessSettings:
    return load_process()
