"""Where hwsnn writes, checked before the work starts and written so that nothing is lost.

A *network directory* is what ``hwsnn convert -o DIR`` writes: the network files
``qnet.json``, ``qnet.npz``, ``snn.json`` and ``snn.npz``, and then whatever the other
commands add (``rtl/``, ``sim/SIMULATOR/``, ``build/BOARD/``, ``report.md``, ``report/``).

- A new or empty directory is written whole: the files are made in a temporary directory
  that is renamed into place, so a failure leaves nothing behind (not even the parent
  directories it had to create).
- A network directory is converted into again in place: the new network files are made in
  a temporary directory inside it and moved over the old ones, ``qnet.json`` (the file
  every reader opens first) out first and in last, so that at no moment does the directory
  hold a mix of two networks. Everything else in it is kept, except hwsnn's own outputs
  made from the previous network (``stale_outputs``), which would describe a network that
  is no longer there.
- Any other non-empty directory, a file, or a path below a file is refused before any
  work, and so is a place hwsnn cannot write.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from ..errors import HwsnnError

# Written in this order: qnet.json, which marks a network, last.
NETWORK_FILES = ("qnet.npz", "snn.json", "snn.npz", "qnet.json")
MARKER = "qnet.json"
TEMP_PREFIX = ".hwsnn-"  # hwsnn's own temporary entries, left behind only by a crash

# What 'hwsnn sim' writes in DIR/sim/SIMULATOR (sim/run.py, cocotb and the simulators).
SIM_OUTPUTS = ("bench.json", "record.json", "report.json", "progress", "build.log",
               "test.log", "results.xml", "build", "build-waves", "waves.fst", "waves.vcd",
               "dump.fst", "dump.vcd")
# What 'hwsnn report' writes in DIR.
REPORT_OUTPUTS = ("report.md", "report/cycles_per_layer.png", "report/utilisation.png")


class OutputError(HwsnnError):
    """An output path that hwsnn cannot or must not write."""


def _format_of(path: Path) -> str | None:
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return doc.get("format") if isinstance(doc, dict) else None


def is_network_directory(path) -> bool:
    """Whether ``path`` holds network files that hwsnn wrote."""
    path = Path(path)
    return (_format_of(path / "qnet.json") == "hwsnn-qnet"
            or _format_of(path / "snn.json") == "hwsnn-snn")


def starts_with(path, text: str) -> bool:
    """Whether the file at ``path`` begins with ``text``."""
    try:
        with open(path, "rb") as f:
            return f.read(len(text.encode())) == text.encode()
    except OSError:
        return False


REPORT_SIGNATURE = "## Bit-exactness (RTL against the golden model)"  # in every report.md


def is_report(path) -> bool:
    """Whether ``path`` is a ``report.md`` that 'hwsnn report' wrote."""
    try:
        return REPORT_SIGNATURE in Path(path).read_text(errors="replace")
    except OSError:
        return False


def _foreign_entries(path: Path) -> list[str]:
    return sorted(e.name for e in path.iterdir() if not e.name.startswith(TEMP_PREFIX))


def _existing_ancestor(path: Path) -> Path:
    p = path.absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def _probe(directory: Path, what: str) -> None:
    """Create and remove a temporary directory in ``directory``: can hwsnn write there?"""
    try:
        os.rmdir(tempfile.mkdtemp(dir=directory, prefix=f"{TEMP_PREFIX}probe-"))
    except OSError as exc:
        raise OutputError(f"{what}: cannot write in {directory} ({exc.strerror or exc}); "
                          "choose a directory you can write") from None


def _below_a_file(path: Path, what: str) -> None:
    above = _existing_ancestor(path)
    if not above.is_dir():
        raise OutputError(f"{what}: {above} is a file, not a directory; choose a path "
                          "that is not inside a file")


def check_directory(path, what: str | None = None) -> Path:
    """Refuse, before any work, an output directory hwsnn cannot or must not write: a
    file, a path below a file, a non-empty directory that does not hold a network hwsnn
    wrote, a place without write permission. ``what`` names the option in messages."""
    path = Path(path)
    what = what or f"output directory {path}"
    if path.exists() and not path.is_dir():
        raise OutputError(f"{what} is a file, not a directory; choose a new directory")
    _below_a_file(path, what)
    if path.is_dir():
        foreign = _foreign_entries(path)
        if foreign and not is_network_directory(path):
            shown = ", ".join(foreign[:3]) + (", ..." if len(foreign) > 3 else "")
            raise OutputError(
                f"{what} already holds files that hwsnn did not write ({shown}); hwsnn "
                "writes only into a new or empty directory or one 'hwsnn convert' wrote: "
                "choose another directory")
        _probe(path, what)
    else:
        _probe(_existing_ancestor(path), what)
    return path


def check_file(path, what: str, *, suffixes: tuple[str, ...] = (),
               signature: bytes | None = None) -> Path:
    """Refuse, before any work, an output file hwsnn cannot or must not write: a
    directory, a path below a file, a suffix not in ``suffixes``, an existing file that
    does not start with ``signature`` (not one hwsnn wrote), a place without write
    permission."""
    path = Path(path)
    if suffixes and path.suffix.lower() not in suffixes:
        raise OutputError(f"{what}: give a file name ending in {' or '.join(suffixes)}")
    if path.is_dir():
        raise OutputError(f"{what} is a directory; give a file name")
    _below_a_file(path.parent, what)
    if path.exists() and signature is not None:
        try:
            with open(path, "rb") as f:
                head = f.read(len(signature))
        except OSError as exc:
            raise OutputError(f"{what}: cannot read {path} ({exc.strerror})") from None
        if head != signature:
            raise OutputError(f"{what} exists and is not a file hwsnn wrote; hwsnn does not "
                              "replace it: choose another name")
    _probe(_existing_ancestor(path.parent), what)
    return path


def check_place(path, what: str) -> Path:
    """Refuse, before any work, a directory hwsnn is to create or add to when it is a
    file, below a file, or not writable."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputError(f"{what}: {path} is a file, not a directory; move it away")
    _below_a_file(path, what)
    _probe(path if path.is_dir() else _existing_ancestor(path), what)
    return path


def _make_parents(directory: Path) -> list[Path]:
    """``mkdir -p``; returns the directories it created, deepest last."""
    missing = []
    p = directory.absolute()
    while not p.exists():
        missing.append(p)
        p = p.parent
    for p in reversed(missing):
        p.mkdir()
    return list(reversed(missing))


def _remove_empty(directories: list[Path]) -> None:
    for p in reversed(directories):
        try:
            p.rmdir()
        except OSError:
            break


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_file(path, write) -> Path:
    """Write one file atomically (``write(tmp_path)`` makes it), creating its parent
    directories; on failure nothing is left, not even those directories."""
    path = Path(path)
    created = _make_parents(path.parent)
    try:
        # The same suffix: writers such as matplotlib choose the format by it.
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f"{TEMP_PREFIX}{path.stem}.",
                                   suffix=path.suffix)
        os.close(fd)
        try:
            write(tmp)
            os.chmod(tmp, 0o666 & ~_umask())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except BaseException:
        _remove_empty(created)
        raise
    return path


def write_network(directory, write, removed: list | None = None) -> Path:
    """Write a network directory: ``write(tmp)`` makes the network files in a temporary
    directory; they then become ``directory``'s (see the module documentation). The stale
    outputs removed are appended to ``removed``."""
    directory = Path(directory)
    check_directory(directory)
    if not directory.exists():
        created = _make_parents(directory.parent)
        try:
            tmp = Path(tempfile.mkdtemp(dir=directory.parent, prefix=f".{directory.name}."))
            try:
                write(tmp)
                os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp's 0700 would hide it from others
                tmp.rename(directory)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
        except BaseException:
            _remove_empty(created)
            raise
        return directory
    old_fingerprint = _fingerprint(directory)
    tmp = Path(tempfile.mkdtemp(dir=directory, prefix=f"{TEMP_PREFIX}new-"))
    try:
        write(tmp)
        new_fingerprint = _fingerprint(tmp)
        _swap_network_files(tmp, directory)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if new_fingerprint is None or new_fingerprint != old_fingerprint:
        stale = stale_outputs(directory, new_fingerprint, previous_differs=True)
        remove_outputs(directory, stale)
        if removed is not None:
            removed += stale
    return directory


def _swap_network_files(new: Path, directory: Path) -> None:
    """Move the network files of ``new`` into ``directory``, the old ones out; undone on
    failure. The old ones go to ``new/.old`` (removed with ``new``)."""
    old = new / ".old"
    old.mkdir()
    incoming = [n for n in NETWORK_FILES if (new / n).is_file()]
    moved_out, moved_in = [], []
    try:
        for name in reversed(NETWORK_FILES):  # qnet.json first
            if (directory / name).is_file():
                os.replace(directory / name, old / name)
                moved_out.append(name)
        for name in incoming:  # qnet.json last
            os.replace(new / name, directory / name)
            moved_in.append(name)
    except BaseException:
        for name in moved_in:
            os.replace(directory / name, new / name)
        for name in reversed(moved_out):
            os.replace(old / name, directory / name)
        raise


def _fingerprint(directory: Path) -> str | None:
    """The QNet fingerprint (``hdl.verilog.fingerprint``) of a directory, or None."""
    if not (directory / MARKER).is_file():
        return None
    from ..hdl.verilog import fingerprint
    from ..snn.qnet import load
    try:
        return fingerprint(load(directory))
    except HwsnnError:
        return None


def stale_outputs(directory, fingerprint: str | None, *,
                  previous_differs: bool) -> list[Path]:
    """hwsnn's own outputs in a network directory that were made from another network
    than the one with ``fingerprint``: Verilog designs whose port description names
    another QNet, board builds whose report does, and (when ``previous_differs``: the
    network was just replaced by another) the simulation results and the report, which
    do not record their QNet. Nothing else: not a file hwsnn did not write."""
    directory = Path(directory)
    found: list[Path] = []
    rtl = directory / "rtl"
    for desc in sorted(rtl.glob("*.json")) if rtl.is_dir() else []:
        try:
            made_from = json.loads(desc.read_text())["made_from"]["qnet_sha256"]
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if made_from != fingerprint:
            found += [p for p in (desc.with_suffix(".v"), desc, desc.with_suffix(".md"))
                      if p.is_file()]
    from ..flow.build import NAME
    for report in sorted(directory.glob("build/*/report.json")):
        try:
            made_from = json.loads(report.read_text()).get("qnet_sha256")
        except (OSError, ValueError, AttributeError):
            continue
        if made_from != fingerprint:
            found.append(report)
            found += sorted(p for p in report.parent.iterdir()
                            if p.name.startswith((f"{NAME}.", f"build_{NAME}.")))
    if previous_differs:
        for work in sorted(directory.glob("sim/*/bench.json")):
            found += [work.parent / n for n in SIM_OUTPUTS if (work.parent / n).exists()]
        if is_report(directory / "report.md"):
            found += [directory / n for n in REPORT_OUTPUTS if (directory / n).is_file()]
    return found


def remove_outputs(directory, paths: list[Path]) -> None:
    """Remove ``paths`` (files or directory trees) and then the directories they leave
    empty, up to ``directory``."""
    directory = Path(directory).absolute()
    parents = set()
    for p in paths:
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
        parents.add(p.absolute().parent)
    for p in sorted(parents, key=lambda q: len(q.parts), reverse=True):
        while p != directory and directory in p.parents:
            try:
                p.rmdir()
            except OSError:
                break
            p = p.parent
