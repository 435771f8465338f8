"""Property-based fuzzing (hypothesis) of the two loaders every user file goes through: the
case loader (``bench npu-config``, which loads, overrides and validates a case and checks
its device options, writing nothing) and the report loader (``bench compare``, ``bench
report``). Random YAML/JSON structures, deep nesting, huge numbers, unicode, mutated real
reports: the answer is always exit 0, or exit 2 with one line, never a traceback (issue 16).

Fixed budgets so CI time stays flat: ``max_examples`` per property, no example database,
derandomized (the same examples every run; a failure reproduces)."""

from __future__ import annotations

import copy
import itertools
import json
import os

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.testing import run_in_process

pytestmark = pytest.mark.slow
FUZZ = settings(max_examples=int(os.environ.get("BENCH_FUZZ_EXAMPLES", "150")), deadline=10000,
                derandomize=not os.environ.get("BENCH_FUZZ_EXAMPLES"), database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow, HealthCheck.data_too_large])
_counter = itertools.count()

# --- values ----------------------------------------------------------------------------------

NUMBERS = st.one_of(
    st.integers(), st.integers(min_value=-(2**80), max_value=2**80),
    st.sampled_from([0, 1, -1, 2**31 - 1, 2**31, 2**32, 2**63 - 1, 2**63, 10**30]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([1e12, 1e300, -0.0, 5e-324, 1.5, 0.5]))
TEXT = st.one_of(st.text(max_size=20), st.sampled_from(
    ["", "ten", "[/bold]", "<script>x</script>", "1e12", "../../x", "null", "~", "yes",
     "\u202e\u0000\ufeff", "日本語", "a|b", "2001-13-45", "0x1F", "!!binary AAA"]))
SCALARS = st.one_of(st.none(), st.booleans(), NUMBERS, TEXT)
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(TEXT, inner, max_size=4)), max_leaves=12)

CASE_KEYS = ["name", "model", "device", "devices", "precision", "batch_size", "data",
             "data.source", "data.path", "train", "train.steps", "train.epochs",
             "train.warmup_steps", "train.log_every", "eval", "eval.at_end", "eval.every_steps",
             "eval.steps", "eval.target", "eval.target.accuracy", "params", "params.hidden",
             "params.learning_rate", "params.features", "params.sleep_ms", "npu",
             "npu.precision_mode", "npu.iterations_per_loop", "npu.device_ids", "npu.loss_scale",
             "npu.profiling", "npu.profiling_options", "npu.enable_dump", "npu.dump_step",
             "npu.peak_tflops", "npu.hcom_parallel", "launcher", "seed", "timeout",
             "description", "nonsense", "train.nonsense"]
# plugins: only names that import nothing surprising (a case file's plugins are code)
PLUGINS = st.sampled_from([[], "no_such_module_zz", ["tiny_model"], ["9 bad"], [3], "",
                           ["a..b"], None, {"x": 1}])
BASE = {"model": "tiny_mlp", "train": {"steps": 20, "warmup_steps": 2, "log_every": 5}}


def _set(doc: dict, dotted: str, value) -> None:
    node = doc
    parts = dotted.split(".")
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = node[part] = {}
        node = child
    node[parts[-1]] = value


@st.composite
def case_documents(draw) -> str:
    """A case file's text: a valid case with random keys replaced, a random structure, a
    deep nesting, or random text."""
    kind = draw(st.sampled_from(["edit", "edit", "edit", "any", "deep", "text", "multi"]))
    if kind == "deep":
        depth = draw(st.integers(min_value=1, max_value=3000))
        opener, closer = draw(st.sampled_from([("[", "]"), ("{a: ", "}")]))
        return "model: tiny_mlp\nnpu: " + opener * depth + "1" + closer * depth + "\n"
    if kind == "text":
        return draw(st.text(max_size=200))
    if kind == "any":
        return yaml.safe_dump(draw(VALUES), allow_unicode=True)
    doc = copy.deepcopy(BASE)
    for key, value in draw(st.lists(st.tuples(st.sampled_from(CASE_KEYS), VALUES),
                                    max_size=4)):
        _set(doc, key, value)
    if draw(st.booleans()):
        doc["plugins"] = draw(PLUGINS)
    if kind == "multi":
        doc = {"defaults": doc, "cases": draw(st.lists(
            st.dictionaries(st.sampled_from(["name", "batch_size", "seed", "train"]), VALUES,
                            max_size=2), max_size=3))}
    return yaml.safe_dump(doc, allow_unicode=True, sort_keys=False)


OVERRIDES = st.one_of(
    st.tuples(st.sampled_from(CASE_KEYS), VALUES).map(
        lambda kv: f"{kv[0]}={json.dumps(kv[1], allow_nan=True)}"),
    st.tuples(st.sampled_from(CASE_KEYS), TEXT).map(lambda kv: f"{kv[0]}={kv[1]}"),
    st.text(max_size=30))


def _check_answer(result) -> None:
    """Exit 0, or exit 2 with exactly one line ``bench: error: ...``; never a traceback
    (an exception other than BenchError escapes ``bench_cli`` and fails the property)."""
    assert result.exit_code in (0, 2), (result.exit_code, result.stderr[-2000:])
    assert "Traceback" not in result.stderr
    if result.exit_code == 2:
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("bench: error: "), result.stderr


@pytest.fixture(scope="module")
def warm(tmp_path_factory):
    """One ordinary npu-config call first: TensorFlow's import is not any example's cost."""
    from harness.testing import run_cli, write_case

    path = write_case(tmp_path_factory.mktemp("warm"), BASE)
    assert run_cli("npu-config", path, "--plugin", "tiny_model", "--json").exit_code == 0


@FUZZ
@given(text=case_documents(), suffix=st.sampled_from([".yaml", ".yaml", ".csv"]))
def test_fuzz_the_case_loader(warm, bench_cli, tmp_path, text, suffix):
    path = tmp_path / f"case{next(_counter)}{suffix}"
    path.write_text(text, encoding="utf-8")
    _check_answer(bench_cli("npu-config", str(path), "--plugin", "tiny_model", "--json"))


@FUZZ
@given(overrides=st.lists(OVERRIDES, min_size=1, max_size=3))
def test_fuzz_set_overrides(warm, bench_cli, tmp_path, overrides):
    path = tmp_path / "base.yaml"
    if not path.exists():
        path.write_text(yaml.safe_dump(BASE), encoding="utf-8")
    args = [item for override in overrides for item in ("--set", override)]
    _check_answer(bench_cli("npu-config", str(path), "--plugin", "tiny_model", *args))


# --- the report loader ------------------------------------------------------------------


@pytest.fixture(scope="module")
def real_report(tmp_path_factory):
    import tiny_model

    out = tmp_path_factory.mktemp("fuzz-report")
    case = {"name": "fz", "model": "tiny_mlp", "train": {"steps": 12, "warmup_steps": 2,
                                                          "log_every": 2},
            "eval": {"at_end": True}}
    outcome = run_in_process(case, str(out), [tiny_model])
    with open(os.path.join(outcome.folder, "report.json"), encoding="utf-8") as fh:
        return outcome.folder, json.load(fh)


def _get(value, path):
    for part in path:
        value = value[part]
    return value


def _paths(value, prefix=()):
    """Every path (tuple of keys / indices) into ``value``."""
    yield prefix
    if isinstance(value, dict):
        for key, child in value.items():
            yield from _paths(child, (*prefix, key))
    elif isinstance(value, list):
        for i, child in enumerate(value[:3]):
            yield from _paths(child, (*prefix, i))


FINITE = st.one_of(st.integers(min_value=-(2**70), max_value=2**70),
                   st.floats(allow_nan=False, allow_infinity=False),
                   st.sampled_from([0, 0.0, -1, 1e308, 5e-324, 2**63]))


@st.composite
def mutated_reports(draw, report) -> str:
    kind = draw(st.sampled_from(["edit", "edit", "drop", "any", "deep", "text", "numbers",
                                 "numbers", "strings"]))
    if kind == "text":
        return draw(st.text(max_size=200))
    if kind == "deep":
        depth = draw(st.integers(min_value=1, max_value=5000))
        return '{"schema": "zoobench.report/1", "case": ' + "[" * depth + "]" * depth + "}"
    if kind == "any":
        doc = draw(VALUES)
        if isinstance(doc, dict) and draw(st.booleans()):
            doc["schema"] = "zoobench.report/1"
        return json.dumps(doc, allow_nan=True)
    doc = copy.deepcopy(report)
    paths = [p for p in _paths(doc) if p]
    if kind in ("numbers", "strings"):  # keep the shape, change the values inside it
        leaf = (int, float) if kind == "numbers" else (str,)
        paths = [p for p in paths if isinstance(_get(doc, p), leaf)
                 and not isinstance(_get(doc, p), bool)]
        for path in draw(st.lists(st.sampled_from(paths), min_size=1, max_size=6)):
            _get(doc, path[:-1])[path[-1]] = draw(FINITE if kind == "numbers" else TEXT)
        return json.dumps(doc, allow_nan=True)
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        path = draw(st.sampled_from(paths))
        node = doc
        try:
            for part in path[:-1]:
                node = node[part]
            if kind == "drop" and isinstance(node, dict):
                node.pop(path[-1], None)
            else:
                node[path[-1]] = draw(VALUES)
        except (KeyError, IndexError, TypeError):
            continue  # an earlier edit removed the way there
    return json.dumps(doc, allow_nan=True)


def _mutated_folder(tmp_path, data, report) -> str:
    folder = tmp_path / f"r{next(_counter)}"
    folder.mkdir()
    (folder / "report.json").write_text(data.draw(mutated_reports(report)), encoding="utf-8")
    return str(folder)


@FUZZ
@given(data=st.data())
def test_fuzz_the_report_loader_of_compare(real_report, bench_cli, tmp_path, data):
    folder, report = real_report
    other = _mutated_folder(tmp_path, data, report)
    _check_answer(bench_cli("compare", folder, other, "--by", "run_id", "--format", "json"))


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")  # 1e308 on an axis
@settings(FUZZ, max_examples=max(1, FUZZ.max_examples // 10))  # each renders report.html
@given(data=st.data())
def test_fuzz_the_report_loader_of_report(real_report, bench_cli, tmp_path, data):
    """``bench report`` also renders report.md and report.html (plots) from what it loaded."""
    _folder, report = real_report
    _check_answer(bench_cli("report", _mutated_folder(tmp_path, data, report)))
