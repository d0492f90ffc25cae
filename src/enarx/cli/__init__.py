"""The ``enarx`` command line: a thin shell over the library. Subcommands are imported lazily."""
