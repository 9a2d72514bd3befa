"""An example threshold-probe pipeline plugin (see docs/pipelines.md)."""

from tp_example_plugin.module_file import ModuleFilePipeline

__all__ = ["ModuleFilePipeline"]
