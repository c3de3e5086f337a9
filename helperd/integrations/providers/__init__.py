"""Running provider commands and keeping their tokens fresh: the daemon's side of providers.

`runner` runs one command safely (no shell, a clean environment, bounded, capped);
`refresher` drives `helperd.core.refresh` on the event loop: single flight, waits, runs ahead.
Only the daemon imports this package: helperctl asks the daemon, it never runs a provider.
"""
