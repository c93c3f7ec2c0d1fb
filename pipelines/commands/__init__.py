"""One module per ``mast`` subcommand: its parser and its handler, nothing else. A command
composes library modules of ``pipelines`` and never imports another command."""
