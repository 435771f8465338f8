"""The hook markers: ``@hookimpl`` marks a plugin's hook functions, ``@hookspec`` the specs."""

from __future__ import annotations

import pluggy

PROJECT = "bench"
hookimpl = pluggy.HookimplMarker(PROJECT)
hookspec = pluggy.HookspecMarker(PROJECT)
