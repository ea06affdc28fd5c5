"""Sub-commands of the `semantic-depth` CLI: each module has add_arguments(parser) and main(args) -> int."""
