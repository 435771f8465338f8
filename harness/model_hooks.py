"""Who answers the model hooks of one case run: the model's task, else the plain hooks of the
plugin that registered the model (this class is their adapter), else the builtins.

Plain model hooks are ``firstresult`` hooks: under bare pluggy the first plugin to return
something answers, so a plugin that forgets ``if case.model != MODEL: return None`` silently
builds every model. Here each plain implementation is asked in its place: the plugins that
declared ``registry.extend(model)`` first, then the model's task (or its own plugin's plain
hooks), then the builtins (``trylast`` fallbacks). Every other plugin is asked too, and one
that answers is refused (:class:`harness.errors.PluginError`, naming plugin, hook and model).
Which plugin answered each hook is kept in :attr:`ModelHooks.served` for the report.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any, Callable

from harness.errors import BenchError, PluginError

if TYPE_CHECKING:
    from harness.case import Case
    from harness.context import ModelSpec, RunContext
    from harness.plugins import BenchPlugins

# firstresult model hook -> the task method that answers it
FIRST_RESULT = {"build_dataset": "build_dataset", "build_model": "build_model",
                "evaluate": "evaluate", "log_interval": "log_line"}
MODEL_HOOKS = (*FIRST_RESULT, "configure_npu", "validate_case")
_ABSENT = object()


class ModelHooks:
    """The model hooks of ``case``, answered for its registered model only.

    One instance per case run in each process; it holds that run's task instance (when the
    model registered one), so task state lives as long as the run.
    """

    def __init__(self, plugins: BenchPlugins, case: Case) -> None:
        self.plugins = plugins
        self.case = case
        info = plugins.models.get(case.model)
        self.model = info.name
        self.owner = info.plugin
        self.extenders = plugins.models.extenders(info.name)
        self.served: dict[str, Any] = {}  # hook -> plugin name (configure_npu: a list)
        self.task = None
        if info.task is not None:
            self.task = _before_run(self.owner, f"{info.task.__name__}(case)", info.task, case)

    # -- the hooks ----------------------------------------------------------------------------

    def validate(self) -> None:
        """The model's own input checks (bad input: raise BenchError), then every plugin's
        ``validate_case``; run before anything is written, so any other exception is the
        plugin's bug: one line naming it."""
        if self.task is not None:
            _before_run(self.owner, "validate()", self.task.validate)
        for impl in reversed(self.plugins.hook.validate_case.get_hookimpls()):
            call = _caller(impl)
            _before_run(impl.plugin_name, "validate_case()", call, {"case": self.case})

    def configure_npu(self, options: dict[str, Any]) -> None:
        """Every configure_npu in its place; another model's plugin may look but not touch."""
        for plugin, call in self._impls("configure_npu", ("foreign",)):
            trial = copy.deepcopy(options)
            _before_run(plugin, "configure_npu()", call, {"case": self.case, "options": trial})
            keys = sorted(str(k) for k in {*trial, *options}
                          if trial.get(k, _ABSENT) != options.get(k, _ABSENT))
            if keys:
                raise self._greedy(plugin, "configure_npu",
                                   f"changed the device options ({', '.join(keys)})")
        changed: list[str] = []
        task = (lambda kwargs: self.task.configure_npu(kwargs["options"])) if self.task else None
        for group in ("extender", "task", "own", "fallback"):
            for plugin, call in self._impls("configure_npu", (group,), task):
                before = copy.deepcopy(options)
                _before_run(plugin, "configure_npu()", call, {"case": self.case,
                                                              "options": options})
                if options != before and plugin not in changed:
                    changed.append(plugin)
        self.served["configure_npu"] = changed

    def build_dataset(self, split: str, ctx: RunContext) -> Any:
        return self._first("build_dataset", {"case": self.case, "split": split, "ctx": ctx},
                           (split, ctx))

    def build_model(self, ctx: RunContext) -> ModelSpec | None:
        return self._first("build_model", {"case": self.case, "ctx": ctx}, (ctx,))

    def evaluate(self, model: Any, dataset: Any, ctx: RunContext) -> dict | None:
        return self._first("evaluate", {"case": self.case, "model": model, "dataset": dataset,
                                        "ctx": ctx}, (model, dataset, ctx))

    def log_line(self, record: dict[str, Any], ctx: RunContext) -> str | None:
        return self._first("log_interval", {"case": self.case, "record": record, "ctx": ctx},
                           (record, ctx))

    def who(self, hook: str) -> str:
        """The plugin that answered ``hook`` (the model's own plugin when none has yet)."""
        served = self.served.get(hook)
        return served if isinstance(served, str) else self.owner

    # -- dispatch -----------------------------------------------------------------------------

    def _first(self, hook: str, kwargs: dict[str, Any], args: tuple) -> Any:
        for plugin, call in self._impls(hook, ("foreign",)):
            if call(kwargs) is not None:
                raise self._greedy(plugin, hook, "returned a value")
        task = None
        if self.task is not None:
            method = getattr(self.task, FIRST_RESULT[hook])
            task = lambda _kwargs: method(*args)  # noqa: E731
        for group in ("extender", "task", "own", "fallback"):
            for plugin, call in self._impls(hook, (group,), task):
                value = call(kwargs)
                if value is not None:
                    self.served.setdefault(hook, plugin)
                    return value
        return None

    def _impls(self, hook: str, groups: tuple[str, ...],
               task: Callable[[dict], Any] | None = None) -> list[tuple[str, Callable]]:
        """(plugin, call) of ``hook`` in pluggy's call order, for the given kinds of plugin:
        ``extender``, ``task`` (``task``, the task's method), ``own`` (the model's plugin's
        plain hook; not asked when the model has a task), ``fallback`` (builtins),
        ``foreign`` (any other plugin)."""
        found: list[tuple[str, Callable]] = []
        if "task" in groups and task is not None:
            found.append((self.owner, task))
        caller = getattr(self.plugins.hook, hook)
        for impl in reversed(caller.get_hookimpls()):
            if self._kind(impl.plugin_name) in groups:
                found.append((impl.plugin_name, _caller(impl)))
        return found

    def _kind(self, plugin: str) -> str:
        if plugin in self.extenders:
            return "extender"
        if plugin == self.owner:
            return "own" if self.task is None else "own-task"  # a task's plugin: the task answers
        info = self.plugins.infos.get(plugin)
        if info is not None and info.source == "builtin":
            return "fallback"
        return "foreign"

    def _greedy(self, plugin: str, hook: str, what: str) -> PluginError:
        return PluginError(plugin, f"{hook}() {what} for model {self.model!r}, which plugin "
                                   f'"{self.owner}" registered; a model hook returns None for '
                                   f"other plugins' models (or its plugin declares "
                                   f"registry.extend({self.model!r}) in register_models)")


def _before_run(plugin: str, what: str, function: Callable, *args: Any) -> Any:
    """``function(*args)``; an exception other than BenchError (raised before the run starts,
    where a traceback would escape) becomes one line naming the plugin."""
    try:
        return function(*args)
    except BenchError:
        raise
    except Exception as exc:  # noqa: BLE001 - a plugin's bug, said in one line
        raise PluginError(plugin, f"{what}: {type(exc).__name__}: {exc}") from None


def _caller(impl: Any) -> Callable[[dict], Any]:
    function, names = impl.function, impl.argnames
    return lambda kwargs: function(*[kwargs[name] for name in names])
