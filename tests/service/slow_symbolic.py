"""A symbolic stage that overruns, importable by the worker process."""

from __future__ import annotations

import time

from optim_core.losses.expression import derive


def sleepy_derive(text, variables, limits):
    time.sleep(60)
    return derive(text, variables, limits)
