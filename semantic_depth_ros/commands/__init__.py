"""Sub-commands of the `semantic-depth` CLI: each command module has add_arguments(parser) and main(args) -> int
(``lidar_args`` holds options two of them share)."""
