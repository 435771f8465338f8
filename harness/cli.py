"""The ``bench`` command: parsing and printing only; the work is in run/, reports/, plugins."""

from __future__ import annotations

import io
import json
import os
import signal
import sys
from typing import Any

import click

from harness.errors import EXIT_BAD_INPUT, BenchError
from harness.version import __version__

_state: dict[str, Any] = {}


def _plugins() -> Any:
    from harness.plugins import ensure_importable_cwd, load_plugins

    if "plugins" not in _state:
        ensure_importable_cwd()
        _state["plugins"] = load_plugins()
    return _state["plugins"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="zoobench")
@click.option("-p", "disable", multiple=True, metavar="no:NAME",
              help="Disable an installed plugin for this command (also "
                   "BENCH_DISABLE_PLUGINS=NAME,...). Repeatable.")
def cli(disable: tuple[str, ...]) -> None:
    """zoobench: benchmark TensorFlow training on Ascend NPUs, GPUs and CPUs."""


def _disable_flags(argv: list[str]) -> list[str]:
    """The plugin names of ``-p no:NAME`` before the subcommand (read before click parses,
    since plugins add subcommands)."""
    names, i = [], 0
    while i < len(argv) and argv[i].startswith("-"):
        arg = argv[i]
        if arg == "-p" or (arg.startswith("-p") and not arg.startswith("--")):
            value = arg[2:].lstrip("=") if arg != "-p" else (argv[i + 1] if i + 1 < len(argv)
                                                              else "")
            i += 1 if arg != "-p" else 2
            if not value.startswith("no:") or not value[3:]:
                raise BenchError(f"-p {value}: expected no:NAME (disable an installed plugin); "
                                 f"load a plugin module with --plugin MODULE")
            names.append(value[3:])
            continue
        i += 1
    return names


def _register_commands(plugins: Any) -> None:
    for impl in reversed(plugins.pm.hook.register_commands.get_hookimpls()):
        try:
            impl.function(*[cli for _ in impl.argnames])
        except BenchError:
            raise
        except Exception as exc:  # noqa: BLE001 - a plugin's bug: one line naming it
            raise BenchError(f'plugin "{impl.plugin_name}": register_commands: '
                             f"{type(exc).__name__}: {exc}") from None


def _print_failures(outcomes: list[Any]) -> None:
    """One line per result that did not end ok: the reason (the traceback is in train.log)."""
    from harness.reports.summary import reason

    for outcome in outcomes:
        report = outcome.report
        name = report["case"]["name"]
        lines = []
        if report.get("error"):
            lines.append(f"{name}: {report['status']}: {reason(report['error'])}")
        for result in report.get("results", []):
            if result["status"] != "ok":
                lines.append(f"{name}, {result['devices']} device(s): {result['status']}: "
                             f"{reason(result.get('error'))}")
        if report.get("skipped_devices"):
            counts = ", ".join(map(str, report["skipped_devices"]))
            lines.append(f"{name}: not run at {counts} device(s): the failure would repeat")
        for line in lines:
            click.echo(f"bench: {one_line(line)}", err=True)


def _print_summary(outcomes: list[Any]) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from harness.reports.summary import fmt, fmt_input, fmt_memory, fmt_rate, summary_rows

    table = Table(title="zoobench results")
    for column in ("case", "devices", "global batch", "samples/s", "per device", "step ms",
                   "MFU", "scaling", "memory host / device", "input", "accuracy", "status",
                   "report"):
        table.add_column(column, justify="left" if column in ("case", "accuracy", "status",
                                                              "report") else "right")
    for outcome in outcomes:
        for row in summary_rows(outcome.report):
            acc = " ".join(f"{k}={fmt(v, '.3f')}" for k, v in row["accuracy"].items()) or "-"
            cells = [row["case"], str(row["devices"]), str(row["global_batch"]),
                     fmt_rate(row), fmt(row["per_device"]),
                     fmt(row["step_ms"], ".2f"), fmt(row["mfu"], ".2%"),
                     fmt(row["scaling"], ".2f"), fmt_memory(row), fmt_input(row), acc,
                     row["status"], outcome.folder]
            # Text, not markup: a case name such as "[/bold] x" is shown as written
            table.add_row(*(Text(str(cell)) for cell in cells))
    console = Console() if sys.stdout.isatty() else Console(width=200, no_color=True)
    console.print(table)


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


@cli.command()
@click.argument("cases", nargs=-1, required=True)
@click.option("--device", help="Override the case's device (cpu, gpu, npu, auto).")
@click.option("--devices", help="Override the device counts, e.g. 1,2,8.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override any case key (dotted), value read as YAML. Repeatable.")
@click.option("--out", default="reports", show_default=True, help="Folder for run folders.")
@click.option("--plugin", "plugin_modules", multiple=True, metavar="MODULE",
              help="Load a plugin module by import path. Repeatable.")
@click.option("--hosts", help="Multi-host run: comma-separated hosts, the same on every host.")
@click.option("--rank", "host_rank", type=int, default=None,
              help="With --hosts: this host's index in the list.")
@click.option("--port-base", type=int, default=29500, show_default=True,
              help="With --hosts or under srun: worker ports start here.")
@click.option("--rank-table", type=click.Path(), default=None,
              help="NPU: an HCCL rank table to use instead of generating one (multi-host).")
@click.option("--repeat", type=click.IntRange(min=1), default=None,
              help="Independent measurements per device count (the case key repeat).")
@click.option("--input-only", is_flag=True,
              help="Time the train input pipeline alone (same batches and prefetch, no model).")
@click.option("--resume", metavar="RUN_FOLDER", default=None,
              help="Continue training from the last checkpoints of an earlier run folder.")
def run(cases: tuple[str, ...], device: str | None, devices: str | None,
        overrides: tuple[str, ...], out: str, plugin_modules: tuple[str, ...],
        hosts: str | None, host_rank: int | None, port_base: int, rank_table: str | None,
        repeat: int | None, input_only: bool, resume: str | None) -> None:
    """Run case files (YAML or CSV); one report folder per case under --out."""
    from harness.run.plan import Hosts, load, reserve_devices
    from harness.run.progress import make_progress
    from harness.run.session import execute
    from harness.run.watchdog import Watchdog

    extra = list(overrides)
    if device:
        extra.append(f"device={device}")
    if devices:
        extra.append(f"devices=[{devices}]")
    if repeat:
        extra.append(f"repeat={repeat}")
    plugins, resolved = load(list(cases), extra, list(plugin_modules), plugins=_plugins())
    cluster = None
    if hosts:
        names = tuple(h.strip() for h in hosts.split(",") if h.strip())
        if host_rank is None or not 0 <= host_rank < len(names):
            raise BenchError(f"--rank: with --hosts {hosts} give this host's index "
                             f"0..{len(names) - 1}")
        cluster = Hosts(names, host_rank, port_base)
    reserve_devices(resolved, plugins, cluster)  # before TensorFlow starts: all cases' counts
    signal.signal(signal.SIGTERM, _interrupt)
    Watchdog.ignore_after_stop = True
    outcomes = []
    for case in resolved:
        outcome = execute(case, plugins, out, make_progress(), cluster, rank_table, port_base,
                          resume=resume, input_only=input_only)
        outcomes.append(outcome)
        if outcome.report["status"] == "interrupted":
            break
    _print_summary(outcomes)
    for outcome in outcomes:
        click.echo(f"report: {outcome.folder}/report.json ({outcome.report['status']})")
    _print_failures(outcomes)
    sys.exit(max(o.exit_code for o in outcomes))


@cli.command()
@click.argument("run_folder")
@click.argument("case", required=False)
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a key of the case (e.g. data.eval_path). Repeatable.")
@click.option("--out", default="reports", show_default=True, help="Folder for the report folder.")
@click.option("--plugin", "plugin_modules", multiple=True, metavar="MODULE",
              help="Load a plugin module by import path. Repeatable.")
def evaluate(run_folder: str, case: str | None, overrides: tuple[str, ...], out: str,
             plugin_modules: tuple[str, ...]) -> None:
    """Evaluate every checkpoint of RUN_FOLDER (with its own case, or CASE); one row each."""
    from harness.reports.summary import fmt
    from harness.run.evaluate import evaluate_run
    from harness.run.progress import PlainProgress

    plugins = _plugins()
    for module_path in plugin_modules:
        plugins.load_module(module_path)
    outcome = evaluate_run(run_folder, case, plugins, out, PlainProgress(), list(overrides))
    for result in outcome.report["results"]:
        for row in result.get("checkpoint_evals") or []:
            metrics = "  ".join(f"{k} {v:.4f}" for k, v in row.items()
                                if isinstance(v, float) and k not in ("epoch", "elapsed_s"))
            click.echo(f"{result['devices']} dev  step {row['step']:>8}  epoch "
                       f"{fmt(row['epoch'], '.2f'):>6}  {metrics}  {row['checkpoint_time']}")
    click.echo(f"report: {outcome.folder}/report.json ({outcome.report['status']})")
    sys.exit(outcome.exit_code)


@cli.command(name="list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--plugin", "plugin_modules", multiple=True, metavar="MODULE",
              help="Also load a plugin module by import path. Repeatable.")
def list_(as_json: bool, plugin_modules: tuple[str, ...]) -> None:
    """Plugins, models and device backends."""
    plugins = _plugins()
    for module_path in plugin_modules:
        plugins.load_module(module_path)
    data = {
        "plugins": [{"name": i.name, "version": i.version, "source": i.source,
                     "module": i.module} for i in plugins.infos.values()],
        "disabled": list(plugins.disabled),
        "models": [{"name": m.name, "description": m.description, "version":
                    plugins.model_version(m.name), "plugin": m.plugin, "sources": list(m.sources),
                    "task": f"{m.task.__module__}.{m.task.__qualname__}" if m.task else None,
                    "extended_by": plugins.models.extenders(m.name),
                    "params": m.params} for _, m in plugins.models.items()],
        "devices": [{"name": name, "description": cls.description,
                     "available": _available(cls)} for name, cls in plugins.devices.items()],
    }
    if as_json:
        click.echo(json.dumps(data, indent=2, default=str))
        return
    click.echo("plugins:")
    for p in data["plugins"]:
        click.echo(f"  {p['name']:<16} {p['version']:<12} {p['source']:<12} {p['module']}")
    click.echo("models:")
    for m in data["models"]:
        click.echo(f"  {m['name']:<16} {m['version']:<12} {m['description']}")
    click.echo("devices:")
    for d in data["devices"]:
        state = "available" if d["available"] else "not available"
        click.echo(f"  {d['name']:<16} {state:<14} {d['description']}")


def _available(backend_cls: Any) -> bool:
    try:
        return bool(backend_cls.available())
    except Exception:  # noqa: BLE001 - a probe that breaks means "not here"
        return False


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def env(as_json: bool) -> None:
    """The environment fingerprint that reports record."""
    from harness.reports.environment import capture_environment

    plugins = _plugins()
    devices = {name: cls.describe() for name, cls in plugins.devices.items() if _available(cls)}
    data = capture_environment(plugins)
    data["devices_available"] = devices
    if as_json:
        click.echo(json.dumps(data, indent=2, default=str))
        return
    for key, value in data.items():
        click.echo(f"{key:<18} {json.dumps(value, default=str) if isinstance(value, (dict, list)) else value}")


@cli.command()
@click.argument("paths", nargs=-1, required=True)
@click.option("--html", "html_file", metavar="FILE",
              help="Also write one self-contained HTML page with every report and a scaling chart.")
def report(paths: tuple[str, ...], html_file: str | None) -> None:
    """Re-render report.md, report.html (and the other renderers' files) from report.json files."""
    import os

    from harness.reports.store import find_reports, load_report

    plugins = _plugins()
    outcomes = []
    for path in find_reports(list(paths)):
        data = load_report(path)
        folder = os.path.dirname(path) or "."
        for filename, render in plugins.report_writers.items():
            _write_output(os.path.join(folder, filename), render(data))
        outcomes.append(_Rendered(data, folder))
    if html_file:
        from harness.reports.html import render_html_many

        _write_output(html_file, render_html_many([o.report for o in outcomes]))
    _print_summary(outcomes)
    if html_file:
        click.echo(f"html: {html_file}")


def _write_output(path: str, text: str) -> None:
    from harness.reports.store import write_atomic

    try:
        write_atomic(path, text)
    except OSError as exc:
        raise BenchError(f"{path}: cannot write: {exc.strerror}") from None


@cli.command()
@click.argument("paths", nargs=-1, required=True)
@click.option("--by", default=None, metavar="KEY",
              help="Dotted key of report.json whose values make the columns (default: the "
                   "first of cann_version, tensorflow, ... whose values differ; it is named).")
@click.option("--threshold", default=5.0, show_default=True, type=float,
              help="Percent drop in samples/s beyond which a significant change is a regression.")
@click.option("--alpha", default=0.01, show_default=True, type=float,
              help="Significance level of the Mann-Whitney U test on per-interval samples/s.")
@click.option("--format", "out_format", type=click.Choice(["table", "md", "json", "html"]),
              default="table", show_default=True)
@click.option("-o", "--output", metavar="FILE", help="Write to FILE instead of the terminal.")
@click.option("--fail-on-regression", is_flag=True, help="Exit 1 when a regression is flagged.")
def compare(paths: tuple[str, ...], by: str | None, threshold: float, alpha: float, out_format: str,
            output: str | None, fail_on_regression: bool) -> None:
    """Compare reports (files or folders); the first --by value is the baseline."""
    from harness.reports import compare as cmp

    comparison = cmp.compare_reports(list(paths), by, threshold, alpha)
    if by is None:
        click.echo(f"bench compare: --by {comparison['by']} ({comparison['by_reason']})", err=True)
    if out_format == "table" and not output:
        from rich.console import Console

        console = Console() if sys.stdout.isatty() else Console(width=200, no_color=True)
        console.print(cmp.rich_table(comparison))
    else:
        if out_format == "table":
            from rich.console import Console

            console = Console(width=200, no_color=True, record=True, file=io.StringIO())
            console.print(cmp.rich_table(comparison))
            text = console.export_text()
        elif out_format == "html":
            from harness.reports.html import render_comparison_html

            text = render_comparison_html(comparison)
        elif out_format == "json":
            text = cmp.render_json(comparison)
        else:
            text = cmp.render_markdown(comparison)
        if output:
            _write_output(output, text)
        else:
            click.echo(text, nl=False)
    flagged = comparison["regressions"]
    click.echo(f"{flagged} regression(s) flagged", err=True)
    sys.exit(1 if fail_on_regression and flagged else 0)


@cli.command(name="import-log")
@click.argument("logs", nargs=-1, required=True)
@click.option("--model", required=True,
              help="Which model's script wrote the log (a model plugin's log format).")
@click.option("--cann-version", required=True, help="CANN version of the logged run.")
@click.option("--devices", required=True, type=int, help="Device count of the logged run.")
@click.option("--batch-size", required=True, type=int, help="Batch size per device.")
@click.option("--name", help="Case name (default MODEL_Np, as the shipped cases are named).")
@click.option("--tensorflow", help="TensorFlow version of the logged run, e.g. 1.15.0.")
@click.option("--device", default="npu", show_default=True)
@click.option("--precision", default="mixed", show_default=True,
              type=click.Choice(["fp32", "mixed"]))
@click.option("--data-source", default="tfrecord", show_default=True)
@click.option("--skip", default=2, show_default=True, type=int,
              help="Leading throughput lines dropped as warmup (the ModelZoo scripts drop 2).")
@click.option("--out", default="reports", show_default=True, help="Folder for the report folder.")
def import_log(logs: tuple[str, ...], model: str, cann_version: str, devices: int,
               batch_size: int, name: str | None, tensorflow: str | None, device: str,
               precision: str, data_source: str, skip: int, out: str) -> None:
    """Turn the logs of one ModelZoo training run into a report folder."""
    from harness.reports.import_log import import_logs

    report, folder = import_logs(
        list(logs), out, _plugins(), model=model, cann_version=cann_version, devices=devices,
        batch_size=batch_size, name=name, tensorflow=tensorflow, device=device,
        precision=precision, data_source=data_source, skip=skip)
    _print_summary([_Rendered(report, folder)])
    click.echo(f"report: {folder}/report.json ({report['status']})")


class _Rendered:
    def __init__(self, report: dict, folder: str) -> None:
        self.report, self.folder = report, folder


def _asks_for_help(argv: list[str]) -> bool:
    return not argv or any(a in ("-h", "--help", "--version") for a in argv)
def one_line(text: str) -> str:
    """``text`` on one printable line: a newline, NEL or other control character from a
    file (a key, a value) is shown escaped, so an error is always exactly one line."""
    return "".join(ch if ch.isprintable() or ch == " " else ch.encode("unicode_escape").decode()
                   for ch in text)


def main(argv: list[str] | None = None) -> None:
    """Entry point: BenchError -> one line on stderr and its exit code, no traceback.

    ``-p no:NAME`` disables a plugin for this command (and its worker processes); a plugin
    that fails to load stops every command but ``--help``, which says so and goes on.
    """
    from harness.plugins import DISABLE_ENV, disabled_from_env

    argv = list(sys.argv[1:] if argv is None else argv)
    saved = os.environ.get(DISABLE_ENV)
    try:
        disabled = _disable_flags(argv)
        if disabled:
            os.environ[DISABLE_ENV] = ",".join(dict.fromkeys([*disabled_from_env(), *disabled]))
        try:
            _register_commands(_plugins())
        except BenchError as exc:
            if not _asks_for_help(argv):
                raise
            click.echo(f"bench: warning: {exc}; plugin commands are not listed", err=True)
        cli.main(args=argv, prog_name="bench", standalone_mode=False)
    except BenchError as exc:
        click.echo(f"bench: error: {one_line(str(exc))}", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(EXIT_BAD_INPUT)
    except click.Abort:
        click.echo("bench: interrupted", err=True)
        sys.exit(130)
    except KeyboardInterrupt:
        click.echo("bench: interrupted", err=True)
        sys.exit(130)
    finally:
        if saved is None:
            os.environ.pop(DISABLE_ENV, None)
        else:
            os.environ[DISABLE_ENV] = saved


if __name__ == "__main__":  # pragma: no cover
    main()
