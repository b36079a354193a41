"""Package discovery only; everything else is declared in pyproject.toml.

setuptools' `packages.find` cannot rename a directory, and the plugins live in
`plugins/` but install as `collector_plugins` (see `package-dir` there). So the
packages are found here, by setuptools, and the plugin ones renamed: a new
sub-package is picked up without anyone listing it.
"""

from setuptools import find_packages, setup

PLUGINS_DIR = "plugins"
PLUGINS_PACKAGE = "collector_plugins"

core = find_packages(include=["collector", "collector.*"])
plugins = [
    PLUGINS_PACKAGE + name[len(PLUGINS_DIR) :] for name in find_packages(include=[PLUGINS_DIR, f"{PLUGINS_DIR}.*"])
]

setup(packages=core + plugins)
