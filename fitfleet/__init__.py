"""fitfleet: Keras ``fit`` as a service. This package is the user's side: client and CLI.

Example:
    >>> from fitfleet import Client
    >>> run = Client("http://127.0.0.1:8000").submit(spec)
    >>> run.wait()
"""

from fitfleet.client import Client, FitfleetAPIError, FitfleetConnectionError, History, Run
from fitfleet.sweep import Sweep

__all__ = ["Client", "FitfleetAPIError", "FitfleetConnectionError", "History", "Run", "Sweep"]
__version__ = "0.1.0"
