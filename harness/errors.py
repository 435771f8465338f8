"""The one user-facing error type and the exit codes it maps to."""

from __future__ import annotations

EXIT_OK = 0
EXIT_BAD_INPUT = 2
EXIT_RUN_FAILED = 3


class BenchError(Exception):
    """A problem the user can fix; printed as one line without a traceback.

    The message names the file and key where there is one
    (``cases/x.yaml: train.steps: expected an integer, got 'ten'``).
    """

    # Raised while a tf.function traces (a plugin's loss, a dataset map), autograph would wrap
    # it in a StagingError with the traced source; this attribute makes it pass through as is.
    ag_pass_through = True

    def __init__(self, message: str, exit_code: int = EXIT_BAD_INPUT) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def at(where: str, key: str, message: str) -> BenchError:
    """A bad-input error located at ``where`` (a file) and ``key`` (a dotted path)."""
    return BenchError(f"{where}: {key}: {message}" if key else f"{where}: {message}")


class PluginError(BenchError):
    """A plugin broke the plugin contract (a hook that answers for another plugin's model, an
    unknown hook, a loss of the wrong shape, ...): one line naming the plugin, exit 2. Found
    during a run, it fails that device count (the report says why) and stops the later ones.
    """

    def __init__(self, plugin: str, message: str) -> None:
        super().__init__(f'plugin "{plugin}": {message}', EXIT_BAD_INPUT)
        self.plugin = plugin
