"""The command-line commands, one module per command (or family of commands); ``cli.py``
assembles them into one parser."""
