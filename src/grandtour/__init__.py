"""grandtour: see what a neural network does, with the Grand Tour.

After Li, Zhao and Scheidegger, "Visualizing Neural Networks with the Grand Tour",
Distill, 2020. https://distill.pub/2020/grand-tour/

The engine (:mod:`grandtour.tour`, :mod:`grandtour.manipulate`) needs numpy only;
recording and training need the ``torch`` extra, the run store the ``store`` extra.
"""

from grandtour.errors import GrandTourError
from grandtour.tour import GeodesicTour, GrandTour

__version__ = "0.1.0"

__all__ = ["GeodesicTour", "GrandTour", "GrandTourError", "__version__"]
