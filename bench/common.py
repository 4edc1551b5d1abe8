"""Result record shared by the benchmarks."""

import attrs


@attrs.frozen
class Result:
    name: str
    ratio: float
    unit: str
    goal: str
    met: bool
    detail: str
