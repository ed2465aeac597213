"""RSP image tags, collections, registry sources, menus and prune policy."""
