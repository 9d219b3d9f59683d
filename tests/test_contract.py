"""The QNet is the whole contract between software and hardware: the golden model and the
HDL generator read a QNet (``hwsnn.snn.qnet``) and the rules derived from it
(``hwsnn.snn.widths``), never the float stages that make one. This test reads their
source, so an import inside a function counts as much as one at the top."""

import ast
from pathlib import Path

import pytest

import hwsnn

PACKAGE = Path(hwsnn.__file__).resolve().parent
# (the data sets, hwsnn.frontends.data, are allowed: the Verilog's port notes quote an image)
FORBIDDEN = ("hwsnn.frontends.pytorch", "hwsnn.frontends.graph", "hwsnn.frontends.nir_io",
             "hwsnn.snn.convert", "hwsnn.snn.quantize")


def _modules() -> list[tuple[str, Path]]:
    """(module name, file) of hwsnn.snn.golden and every module of hwsnn.hdl."""
    out = [("hwsnn.snn.golden", PACKAGE / "snn" / "golden.py")]
    for path in sorted((PACKAGE / "hdl").rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out.append((".".join(parts), path))
    return out


def imported(module: str, path: Path) -> set[str]:
    """Every module ``path`` (the source of ``module``) imports, anywhere in it, with
    relative imports resolved; ``from X import name`` counts as X and as X.name (name
    may be a submodule)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)]
                if not base or node.level - 1 > package.count(".") + 1:
                    raise AssertionError(f"{path}: relative import beyond the top package")
                stem = ".".join(base + ([node.module] if node.module else []))
            else:
                stem = node.module
            found.add(stem)
            found.update(f"{stem}.{alias.name}" for alias in node.names)
    return found


def _forbidden(names: set[str]) -> list[str]:
    return sorted(n for n in names
                  if any(n == f or n.startswith(f + ".") for f in FORBIDDEN))


def test_the_checker_resolves_imports(tmp_path):
    """Relative imports at any depth, ``from ..frontends import graph``, and imports
    inside functions are all seen."""
    src = tmp_path / "mod.py"
    src.write_text("from ..snn.qnet import INPUT\n"
                   "from ..frontends import graph\n"
                   "from ..snn import golden\n"
                   "def f():\n"
                   "    from ..snn.quantize import quantize\n"
                   "    import hwsnn.frontends.pytorch as fe\n"
                   "    from . import plan\n")
    names = imported("hwsnn.hdl.mod", src)
    assert {"hwsnn.snn.qnet", "hwsnn.frontends.graph", "hwsnn.snn.golden",
            "hwsnn.snn.quantize", "hwsnn.frontends.pytorch", "hwsnn.hdl.plan"} <= names
    assert _forbidden(names) == ["hwsnn.frontends.graph",
                                 "hwsnn.frontends.pytorch", "hwsnn.snn.quantize",
                                 "hwsnn.snn.quantize.quantize"]
    top = tmp_path / "top.py"
    top.write_text("from ..frontends.graph import INPUT\nfrom .qnet import QNet\n")
    assert _forbidden(imported("hwsnn.snn.golden", top)) == [
        "hwsnn.frontends.graph", "hwsnn.frontends.graph.INPUT"]


@pytest.mark.parametrize("module,path", _modules(), ids=[m for m, _ in _modules()])
def test_hardware_and_golden_read_only_the_qnet(module, path):
    """No module of hwsnn.hdl, nor hwsnn.snn.golden, imports the frontend, the conversion,
    the quantizer or the float graph (the generator of the bundled example designs, which
    converts models, is ``hwsnn.tools.examples``, outside hwsnn.hdl)."""
    bad = _forbidden(imported(module, path))
    assert not bad, (f"{module} imports {', '.join(bad)}: the golden model and the HDL "
                     "read only a QNet (hwsnn.snn.qnet: INPUT, PIXEL_BITS, ...) and the rules "
                     "derived from it (hwsnn.snn.widths)")


def test_the_pixel_width_is_named_once():
    """The image's source name and pixel code width come from the QNet module; the float
    graph only re-exports them."""
    from hwsnn.frontends import graph
    from hwsnn.snn import qnet
    assert graph.INPUT is qnet.INPUT and graph.INPUT_BITS == qnet.PIXEL_BITS == 8
    assert graph.INPUT_LEVELS == qnet.PIXEL_LEVELS == 255
