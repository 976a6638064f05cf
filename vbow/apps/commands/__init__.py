"""Subcommands of the ``vbow`` command, one module each.

A command module defines ``ORDER`` (an int: its place in ``vbow --help``) and
``add_parser(sub)``, which adds its parser to ``sub`` and sets ``func`` to a callable
``(argparse.Namespace) -> int`` exit status. :func:`vbow.apps.cli.build_parser` finds every
module in this package, so a new command is a new file here.
"""
