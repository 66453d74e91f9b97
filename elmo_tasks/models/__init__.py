"""The shipped model folders (``default``, ``tiny_fixture``) and the registry of public models by name."""
