"""``python -m helperd`` runs the daemon, as the ``helperd`` command does."""

from __future__ import annotations

from helperd.daemon.main import main

main()
