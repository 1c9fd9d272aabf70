"""The exit statuses of `unetpp` (and the ``status`` of a `unetpp serve` error reply).

A module of its own, importing nothing, so that the CLI, its sub-commands and the Slicer adapter
that reads the statuses share one definition without importing each other.
"""

EXIT_INTERNAL_ERROR = 1  # a bug: one line, the traceback with --debug
EXIT_USER_ERROR = 2  # UNetPlusPlusError, a bad option or request, out of memory
EXIT_CANCELLED = 3  # the cancel file appeared, or Ctrl-C; nothing was written
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, what a shell reports for `cat | head`
