"""The composition root: the app factory, the service wiring and the CLI.

The only place that knows every package; everything else in `eventlog/` is the ground they stand on.
"""
