"""Files a user hands us (case files, reports, data, logs, version files), read one safe way:
regular files only, opened without blocking (a FIFO or a device is refused, never waited on),
size-capped, and YAML/JSON parsed strictly (a depth and a value-count cap, duplicate YAML keys
are errors, ``1e12`` is a float). Every problem is a one-line BenchError naming the file."""

from __future__ import annotations

import io
import json
import os
import re
import stat
from typing import IO, Any

import yaml

from harness.errors import BenchError

KIB, MIB, GIB = 1 << 10, 1 << 20, 1 << 30
CASE_FILE_LIMIT = 1 * MIB  # a case file; a report is larger (every interval), data far larger
REPORT_LIMIT = 256 * MIB
DATA_FILE_LIMIT = 4 * GIB
SMALL_FILE_LIMIT = 64 * KIB  # version files, configs, rank tables
MAX_DEPTH = 32  # nesting of mappings and lists in a case file (real ones have 3 or 4)
MAX_VALUES = 100_000  # values in one parsed document, YAML aliases counted as expanded


def _size(limit: int) -> str:
    for unit, name in ((GIB, "GiB"), (MIB, "MiB"), (KIB, "KiB")):
        if limit >= unit and limit % unit == 0:
            return f"{limit // unit} {name}"
    return f"{limit} bytes"


def open_regular(path: str, what: str = "file", limit: int = DATA_FILE_LIMIT) -> IO[bytes]:
    """``path`` opened for reading as bytes, after checking that it is a regular file no
    larger than ``limit``. The open itself never blocks (O_NONBLOCK: a FIFO without a writer
    would hang a plain open)."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
    try:
        fd = os.open(path, flags | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise BenchError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise BenchError(f"{path}: is a directory, expected a {what}") from None
    except OSError as exc:
        raise BenchError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise BenchError(f"{path}: is a directory, expected a {what}")
        if not stat.S_ISREG(info.st_mode):
            raise BenchError(f"{path}: not a regular file (a FIFO, device or socket is never "
                             f"read as a {what})")
        if info.st_size > limit:
            raise BenchError(f"{path}: {info.st_size} bytes; a {what} may have at most "
                             f"{_size(limit)}")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return open(fd, "rb", closefd=True)
    except BaseException:
        os.close(fd)
        raise


def read_user_bytes(path: str, what: str = "file", limit: int = DATA_FILE_LIMIT) -> bytes:
    with open_regular(path, what, limit) as fh:
        try:
            blob = fh.read(limit + 1)
        except OSError as exc:
            raise BenchError(f"{path}: cannot read: {exc.strerror}") from None
    if len(blob) > limit:  # it grew after the check
        raise BenchError(f"{path}: a {what} may have at most {_size(limit)}")
    return blob


def read_user_text(path: str, what: str = "file", limit: int = DATA_FILE_LIMIT) -> str:
    """The file as UTF-8 text; a leading byte-order mark is dropped (Windows editors add one)."""
    blob = read_user_bytes(path, what, limit)
    try:
        return blob.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise BenchError(f"{path}: not UTF-8 text (byte {exc.start})") from None


def open_user_text(path: str, what: str = "file", limit: int = DATA_FILE_LIMIT,
              errors: str = "strict") -> IO[str]:
    """A checked text stream (UTF-8, BOM dropped) for files read line by line."""
    return io.TextIOWrapper(open_regular(path, what, limit), encoding="utf-8-sig",
                            errors=errors)


def read_setting(path: str, limit: int = SMALL_FILE_LIMIT) -> str | None:
    """A small system file (an install's version.info) as text, or None when it is absent,
    not a regular file, too large or unreadable: a fingerprint never fails or hangs on one."""
    try:
        return read_user_bytes(path, "version file", limit).decode("utf-8", errors="replace")
    except BenchError:
        return None


# --- strict parsing -----------------------------------------------------------------------


class StrictLoader(yaml.SafeLoader):
    """PyYAML's safe loader (the pure-Python one: its recursion stops with RecursionError,
    where a C parser could overflow the stack) that refuses duplicate keys and reads
    ``1e12`` as a float (YAML 1.1 wants ``1.0e+12``; users type ``1e12``)."""

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        if isinstance(node, yaml.MappingNode):
            seen: set = set()
            for key_node, _value in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    duplicate = key in seen
                except TypeError:
                    continue  # an unhashable key: the base class says so
                if duplicate:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key {key!r}", key_node.start_mark)
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


StrictLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"))


def check_shape(value: Any, where: str, max_depth: int = MAX_DEPTH,
                max_values: int | None = MAX_VALUES) -> Any:
    """``value`` if its mappings and lists nest at most ``max_depth`` deep and it holds at
    most ``max_values`` values (walked without recursion; shared YAML aliases count each
    time they appear, so an alias bomb stops here)."""
    stack: list[tuple[Any, int, Any]] = [(value, 1, None)]
    count = 0
    limit = max_values if max_values is not None else -1
    while stack:
        node, depth, chain = stack.pop()
        count += 1
        if count == limit + 1:
            raise BenchError(f"{where}: more than {max_values} values (YAML aliases count "
                             f"each time they are used)")
        if isinstance(node, dict):
            children = node.items()
        elif isinstance(node, (list, tuple)):
            children = enumerate(node)
        else:
            continue
        if depth > max_depth:
            raise BenchError(f"{where}: {_dotted(chain)}: nested deeper than {max_depth} levels")
        stack.extend((child, depth + 1, (key, chain)) for key, child in children)
    return value


def _dotted(chain: Any) -> str:
    """``(key, (parent key, ...))`` -> ``npu.a[0][0]``."""
    parts: list[str] = []
    while chain is not None:
        key, chain = chain
        parts.append(f"[{key}]" if isinstance(key, int) and not isinstance(key, bool) else f".{key}")
    text = "".join(reversed(parts)).lstrip(".")
    return text or "the top"


def _yaml_problem(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    where = f"line {mark.line + 1}: " if mark is not None else ""
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    if isinstance(exc, yaml.constructor.ConstructorError):
        return f"{where}{problem}"  # a duplicate key, an unknown tag
    return f"{where}YAML syntax error: {problem}"


def _first(exc: Exception) -> str:
    return str(exc).splitlines()[0].split(";")[0] if str(exc) else type(exc).__name__


_FLOW = re.compile(r"""[\[\]{}'"#\n]""")


def flow_depth(text: str, limit: int) -> int | None:
    """The line where YAML flow brackets (``[`` ``{``) first nest deeper than ``limit``, or
    None. PyYAML's scanner is quadratic in flow depth (a 1 MiB file of ``[`` would scan for
    hours), so this linear pass runs first. Quoted scalars and comments are skipped; a quote
    counts only where a scalar can start, so ``don't`` stays plain text."""
    depth, line, i = 0, 1, 0
    while True:
        match = _FLOW.search(text, i)
        if match is None:
            return None
        ch, i = match.group(), match.end()
        if ch == "\n":
            line += 1
        elif ch in "[{":
            depth += 1
            if depth > limit:
                return line
        elif ch in "]}":
            depth = max(0, depth - 1)
        elif ch == "#":
            if match.start() == 0 or text[match.start() - 1] in " \t\n":
                end = text.find("\n", i)
                i = len(text) if end < 0 else end
        else:  # a quote: a quoted scalar if it starts one
            before = _before(text, match.start())
            if before and before not in "\n:,[{-?":
                continue
            end = i
            while True:
                end = text.find(ch, end)
                if end < 0:
                    return None  # unclosed: PyYAML reports it
                if ch == "'" and text.startswith("''", end):
                    end += 2
                elif ch == '"' and _escaped(text, end):
                    end += 1
                else:
                    break
            line += text.count("\n", i, end)
            i = end + 1


def _before(text: str, at: int) -> str:
    """The last character before ``at`` that is not a space or tab ("" at the start)."""
    at -= 1
    while at >= 0 and text[at] in " \t":
        at -= 1
    return text[at] if at >= 0 else ""


def _escaped(text: str, end: int) -> bool:
    """Whether the quote at ``end`` follows an odd number of backslashes."""
    slashes = 0
    while end - slashes - 1 >= 0 and text[end - slashes - 1] == "\\":
        slashes += 1
    return slashes % 2 == 1


def parse_yaml(text: str, where: str, max_depth: int = MAX_DEPTH,
               max_values: int = MAX_VALUES) -> Any:
    """One YAML document, strictly (see :class:`StrictLoader`), with the shape caps."""
    too_deep = flow_depth(text, max_depth)
    if too_deep is not None:
        raise BenchError(f"{where}: line {too_deep}: nested deeper than {max_depth} levels")
    try:
        value = yaml.load(text, Loader=StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise BenchError(f"{where}: {_yaml_problem(exc)}") from None
    except RecursionError:
        raise BenchError(f"{where}: nested deeper than {max_depth} levels") from None
    except (ValueError, OverflowError) as exc:  # e.g. a 5000-digit number, a 13th month
        raise BenchError(f"{where}: YAML value not readable: {_first(exc)}") from None
    return check_shape(value, where, max_depth, max_values)


def parse_json(text: str, where: str, max_depth: int = MAX_DEPTH,
               max_values: int | None = None) -> Any:
    """A JSON document with the shape caps; ``NaN`` / ``Infinity`` (which older zoobench
    reports hold) read as null, as the report writer now writes them."""
    try:
        value = json.loads(text, parse_constant=lambda _name: None)
    except json.JSONDecodeError as exc:
        raise BenchError(f"{where}: line {exc.lineno}: not valid JSON: {exc.msg}") from None
    except RecursionError:
        raise BenchError(f"{where}: nested deeper than {max_depth} levels") from None
    except ValueError as exc:  # a number of more than 4300 digits
        raise BenchError(f"{where}: JSON value not readable: {_first(exc)}") from None
    return check_shape(value, where, max_depth, max_values)
