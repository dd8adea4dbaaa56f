"""The command-line commands, one module per command (or family of commands); ``cli.py``
assembles them into one parser.

Each module's ``add_*`` builds a subparser and sets ``func``; handlers import the library lazily
so that ``cgsurrogate --help`` stays fast."""
