"""One module per command: the function its click command calls (as mkdocs' commands/)."""
