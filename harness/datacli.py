"""The shared ``bench data`` command group that plugins add their data commands to."""

from __future__ import annotations

import click


def data_group(cli: click.Group) -> click.Group:
    """The ``data`` group of ``cli``, created on first use, so that several plugins can each
    add their own ``bench data ...`` commands from ``register_commands``."""
    existing = cli.commands.get("data")
    if isinstance(existing, click.Group):
        return existing

    @click.group(name="data")
    def data() -> None:
        """Prepare datasets: vocabularies, TFRecords (commands added by plugins)."""

    cli.add_command(data)
    return data
