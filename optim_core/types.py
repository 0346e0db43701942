"""Array aliases and the shape vocabulary shared by the engine, the losses and the rules.

K runs, d parameters, T recorded points, n samples.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float64]
Params = Array  # (K, d)
Grads = Array  # (K, d)
Hess = Array  # (K, d, d)
Values = Array  # (K,)
Column = Array  # (K, 1) one hyperparameter per run
