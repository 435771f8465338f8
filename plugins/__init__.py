"""zoobench's own model plugins, registered through the bench.plugins entry points."""
