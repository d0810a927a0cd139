"""The package's version, in a module of its own: the modules that record it (DAW sessions)
name it here rather than importing the package, whose public names import the apps."""

__version__ = "0.1.0"
