"""Examples, readers/writers, embedded data sets and format detectors."""

from brittle.data.schema import Example

__all__ = ["Example"]
