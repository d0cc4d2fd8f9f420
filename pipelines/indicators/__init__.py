"""Framework-of-Analysis indicators: the declarative catalogue and a pure classifier of observations."""

from tocsin.pipelines.indicators.catalogue import (
    Catalogue,
    CatalogueError,
    Indicator,
    load_catalogue,
    parse_catalogue,
)
from tocsin.pipelines.indicators.classify import Match, classify
from tocsin.pipelines.indicators.folding import fold

__all__ = [
    "Catalogue",
    "CatalogueError",
    "Indicator",
    "Match",
    "classify",
    "fold",
    "load_catalogue",
    "parse_catalogue",
]
