"""Build step that pyproject.toml cannot express: ship `pretrained/` inside the `pfn` package.

The wheel carries the shipped checkpoints as `pfn/_pretrained/` (`pfn.checkpoint.PRETRAINED_DIR`
falls back to it where the repository's `pretrained/` is absent), so that `pfn.load("gp")`
works after a normal, non-editable install. Everything else is configured in pyproject.toml.
"""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py


class BuildPyWithPretrained(build_py):
    """`build_py` that also copies `pretrained/` to `<build>/pfn/_pretrained/` (not for editable installs)."""

    def run(self) -> None:
        super().run()
        if not self.editable_mode:
            self.copy_tree("pretrained", str(Path(self.build_lib) / "pfn" / "_pretrained"))


setup(cmdclass={"build_py": BuildPyWithPretrained})
