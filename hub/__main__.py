"""`python -m hub` is the `govhub` command."""

from hub.cli import main

main()
