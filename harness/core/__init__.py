"""The bottom layer: errors, file I/O, records, the plugin registry, the stage cache and its bundles, the config schema, the console."""
