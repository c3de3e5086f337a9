"""Shadows uvloop for the default helperd of the bench (on PYTHONPATH): the goals are judged on
the default install, which has no uvloop; the ``fast`` extra's daemon runs beside it."""

raise ImportError("uvloop is hidden from this daemon by bench/no_uvloop")
