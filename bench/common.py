"""Result record shared by the benchmarks."""

import attrs


@attrs.frozen
class Result:
    """A figure against its baseline.  ``met`` None: reported with no verdict (a model,
    or a figure with no goal)."""

    name: str
    ratio: float
    unit: str
    goal: str
    met: object
    detail: str
