"""One module per ``finecliper`` subcommand (see ``cli.main``)."""


class UsageError(ValueError):
    """A command line that cannot work (printed as one ``error:`` line, exit code 2)."""
