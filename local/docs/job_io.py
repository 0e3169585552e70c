"""What each job script of ``spark_jobs/`` reads and writes, found by static analysis.

The modules are read with :mod:`ast`; nothing is imported. The tables are the
``Contract(schema=..., table=...)`` declarations of ``spark_jobs/clickstream/``; what a script
reads and writes is found by following the calls of its ``main`` through the ``clickstream``
package. A contract passed to ``write_partition`` / ``ensure_table`` is written;
``<CONTRACT>.name(...)`` in a function that does not write that contract is a read. MLflow is
read (``get_model_version_by_alias``, ``get_run``, ...) and written (``register_model``,
``set_registered_model_alias``, ``start_run``, ...) the same way.
"""

from __future__ import annotations

import ast
import functools
from dataclasses import dataclass, field
from pathlib import Path

JOBS = Path(__file__).resolve().parents[2] / "spark_jobs"
LIBRARY = "clickstream"

# Calls whose contract argument is a table the function writes (replaceWhere, or MERGE after).
WRITE_CALLS = frozenset({"write_partition", "ensure_table"})
# MLflow client / fluent calls: reading the registry or runs, and writing to them.
MLFLOW_READS = frozenset(
    {"get_model_version_by_alias", "get_model_version", "get_run", "search_runs", "load_model"}
)
MLFLOW_WRITES = frozenset(
    {"register_model", "set_registered_model_alias", "set_model_version_tag", "start_run"}
)

# MLflow, among the ``schema.table`` names a script reads and writes.
MLFLOW = "mlflow"


@dataclass
class _Module:
    name: str
    symbols: dict[str, ast.AST] = field(default_factory=dict)  # top-level defs and assignments
    imports: dict[str, tuple[str, str | None]] = field(default_factory=dict)  # local -> target


def _parse(module: str, path: Path, modules: frozenset[str]) -> _Module:
    """The top-level symbols of ``module`` and what it imports from the library; ``modules``
    are the library's module names, which tell ``from a import b`` of a module ``a.b`` from
    the import of a symbol ``b`` of module ``a``."""
    parsed = _Module(module)
    for node in ast.parse(path.read_text(encoding="utf-8"), filename=str(path)).body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            parsed.symbols[node.name] = node
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                if isinstance(target, ast.Name):
                    parsed.symbols[target.id] = node
        elif isinstance(node, ast.ImportFrom) and node.module:
            top = node.module.split(".")[0]
            if top != LIBRARY:
                continue
            for alias in node.names:
                local = alias.asname or alias.name
                if (
                    f"{node.module}.{alias.name}" in modules
                ):  # from clickstream.models import registry
                    parsed.imports[local] = (f"{node.module}.{alias.name}", None)
                else:  # from clickstream.pipeline.silver import build_silver_events
                    parsed.imports[local] = (node.module, alias.name)
    return parsed


class Package:
    """The ``clickstream`` modules, parsed once, and the ``Contract`` tables they declare."""

    def __init__(self) -> None:
        paths = {
            ".".join(path.relative_to(JOBS).with_suffix("").parts): path
            for path in sorted((JOBS / LIBRARY).rglob("*.py"))
            if path.name != "__init__.py"
        }
        self.names = frozenset(paths)
        self.modules: dict[str, _Module] = {
            name: _parse(name, path, self.names) for name, path in paths.items()
        }
        self.contracts = self._contracts()

    def _contracts(self) -> dict[tuple[str, str], str]:
        """(module, constant) -> ``schema.table`` of every ``X = Contract(...)``."""
        found: dict[tuple[str, str], str] = {}
        for module in self.modules.values():
            for name, node in module.symbols.items():
                value = getattr(node, "value", None)
                if not (
                    isinstance(value, ast.Call)
                    and isinstance(value.func, ast.Name)
                    and value.func.id == "Contract"
                ):
                    continue
                kwargs = {k.arg: k.value for k in value.keywords}
                parts = [kwargs.get("schema"), kwargs.get("table")]
                if not all(isinstance(p, ast.Constant) and isinstance(p.value, str) for p in parts):
                    raise ValueError(f"{module.name}.{name}: schema and table must be literals")
                found[(module.name, name)] = ".".join(p.value for p in parts)
        return found

    def resolve(self, module: _Module, name: str) -> tuple[str, str] | None:
        """Where ``name`` as used in ``module`` is defined: (module, symbol), or None."""
        seen = set()
        while (module.name, name) not in seen:
            seen.add((module.name, name))
            if name in module.symbols:
                return module.name, name
            target = module.imports.get(name)
            if target is None or target[1] is None or target[0] not in self.modules:
                return None
            module, name = self.modules[target[0]], target[1]
        return None

    def module_alias(self, module: _Module, name: str) -> _Module | None:
        target = module.imports.get(name)
        if target and target[1] is None:
            return self.modules.get(target[0])
        return None


@functools.cache
def parsed_package() -> Package:
    """The package as parsed once per process (a CLI run or a test session)."""
    return Package()


@dataclass(frozen=True)
class ScriptIO:
    """What one job script reads and writes: ``schema.table`` names and :data:`MLFLOW`."""

    reads: frozenset[str]
    writes: frozenset[str]


def _call_name(call: ast.Call) -> str | None:
    if isinstance(call.func, ast.Name):
        return call.func.id
    if isinstance(call.func, ast.Attribute):
        return call.func.attr
    return None


def script_io(script: str, package: Package | None = None) -> ScriptIO:
    """The tables (and MLflow) ``spark_jobs/<script>`` reads and writes, from its ``main``."""
    package = package or parsed_package()
    path = JOBS / script
    module = _parse(Path(script).stem, path, package.names)
    if "main" not in module.symbols:
        raise ValueError(f"spark_jobs/{script} has no main()")
    modules = {**package.modules, module.name: module}
    reads: set[str] = set()
    writes: set[str] = set()
    queue = [(module.name, "main")]
    visited: set[tuple[str, str]] = set()
    while queue:
        key = queue.pop()
        if key in visited:
            continue
        visited.add(key)
        owner = modules[key[0]]
        node = owner.symbols[key[1]]
        written: set[str] = set()
        named: set[str] = set()

        def contract(expr: ast.AST, owner: _Module = owner) -> str | None:
            if isinstance(expr, ast.Name):
                where = package.resolve(owner, expr.id)
                return package.contracts.get(where) if where else None
            return None

        for sub in ast.walk(node):
            # Follow every reference to a function, class or module-level value of the package.
            if isinstance(sub, ast.Name):
                where = package.resolve(owner, sub.id)
                if where and where not in package.contracts and where != key:
                    queue.append(where)
            elif isinstance(sub, ast.Attribute) and isinstance(sub.value, ast.Name):
                target = package.module_alias(owner, sub.value.id)
                if target and sub.attr in target.symbols:
                    queue.append((target.name, sub.attr))
            if not isinstance(sub, ast.Call):
                continue
            name = _call_name(sub)
            if name in WRITE_CALLS:
                written.update(t for t in map(contract, sub.args) if t)
            elif name == "name" and isinstance(sub.func, ast.Attribute):
                table = contract(sub.func.value)
                if table:
                    named.add(table)
            if name in MLFLOW_READS:
                reads.add(MLFLOW)
            if name in MLFLOW_WRITES:
                writes.add(MLFLOW)
        writes |= written
        reads |= named - written
    return ScriptIO(frozenset(reads), frozenset(writes))


def contract_tables() -> list[str]:
    """Every ``schema.table`` declared with ``Contract(...)`` in ``spark_jobs/clickstream/``."""
    return sorted(set(parsed_package().contracts.values()))
