"""The package version, in a module that imports nothing.

The client (ApiVersions ``client_software_version``), the bench and the CLI read the
version from here rather than from the ``streamcore`` facade, so that none of them
depends on the package's public surface or its lazy imports.
"""

__version__ = "0.1.0"
